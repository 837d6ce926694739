"""The published BrainState State API on top of our State: copies, references, tags, hooks.

``State`` (brainstate/_state.py) inherits :class:`StateAPI`; this file holds the methods that
only reshape or copy a state, so the core of ``State`` (its value, tracing) stays small.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from typing import Any, Callable, Dict, Optional

import jax
import numpy as np

from .typing import Missing

__all__ = ['StateAPI', 'TreefyState']

# Attributes that belong to one State object, never copied to another.
_IDENTITY = ('_id', '_owner', '_hook_mgr', '_level', '_been_writen', '_source')


def _own_type(state) -> type:
    """The class of a state as its user made it (a packed state's storage class is a subclass
    of it of the same name: see brainstate/_state_pack.py)."""
    cls = type(state)
    return cls.__dict__.get('_packed_base', cls)


class StateAPI:
    """Mixin of :class:`brainstate.State` with the published library's helper methods."""

    _level = 0
    _been_writen = False

    # -- tags ---------------------------------------------------------------------------------
    def add_tag(self, tag: str) -> None:
        """Add ``tag`` to the state's set of tags (see :class:`brainstate.util.filter.WithTag`)."""
        if self.tag is None:
            self.tag = set()
        self.tag.add(tag)

    # -- trace-stack level (see StateTraceStack) ----------------------------------------------
    @property
    def stack_level(self) -> int:
        """How many :class:`StateTraceStack` were active when the state was created: enclosing
        traces at a lower level do not record it."""
        return self._level

    @stack_level.setter
    def stack_level(self, level: int):
        self.__dict__['_level'] = level

    def increase_stack_level(self):
        self.__dict__['_level'] = self._level + 1

    def decrease_stack_level(self):
        self.__dict__['_level'] = max(self._level - 1, 0)

    def check_valid_trace(self, error_msg: Callable[[], str]) -> None:
        """Kept for compatibility: brainstate's states are valid in every trace."""

    @property
    def source_info(self):
        """Where the state was created (a JAX ``SourceInfo``)."""
        info = self.__dict__.get('_source')
        if info is None:
            from jax.extend import source_info_util
            info = source_info_util.current()
            self.__dict__['_source'] = info
        return info

    _source_info = source_info

    def raise_error_with_source_info(self, error: Exception):
        """Raise ``error``."""
        raise error

    def check_if_deleted(self):
        """Kept for compatibility (a State is never deleted)."""

    # -- values -------------------------------------------------------------------------------
    def numel(self) -> int:
        """The total number of elements over the leaves of the value."""
        return int(sum(np.prod(a.shape, dtype=np.int64) for a in self._avals))

    def value_call(self, func: Callable) -> Any:
        """``jax.tree.map(func, state.value)``."""
        return jax.tree.map(func, self.value)

    # -- copies and references -----------------------------------------------------------------
    def _metadata_items(self) -> Dict[str, Any]:
        """The attributes that describe the state besides its value (name, tag, metadata)."""
        out = {'name': self.name, 'tag': None if self.tag is None else set(self.tag)}
        for key, item in self._metadata.items():
            out.setdefault(key, item)
        for key, item in vars(self).items():
            if not key.startswith('_') and key not in out:
                out[key] = item
        return out

    def copy(self):
        """A new, independent state of the same class with the same value and metadata
        (its hooks and its place in a module tree are not copied)."""
        return _new_state(_own_type(self), self._value, self._metadata_items(), source=self)

    def replace(self, value: Any = Missing, **kwargs):
        """A new state of the same class with ``value`` (and attributes ``kwargs``) replaced.
        Given a State of the same class as ``value``, returns that state."""
        from ._state import State
        if value is Missing:
            value = kwargs.pop('_value', Missing)
        if '_name' in kwargs:
            kwargs['name'] = kwargs.pop('_name')
        if isinstance(value, State):
            if _own_type(value) is not _own_type(self):
                raise ValueError(f'Cannot replace value from incompatible container, expected '
                                 f'{type(self).__name__}, got {type(value).__name__}')
            return value.replace(**kwargs) if kwargs else value
        metadata = self._metadata_items()
        metadata.update(kwargs)
        return _new_state(_own_type(self), self._value if value is Missing else value, metadata,
                          source=self)

    def copy_from(self, other) -> None:
        """Take the value and metadata of ``other`` (a state of the same class)."""
        if _own_type(self) is not _own_type(other):
            raise ValueError(f'Cannot copy from incompatible container, expected '
                             f'{type(self).__name__}, got {type(other).__name__}')
        if self is other:
            return
        keep = {k: self.__dict__[k] for k in _IDENTITY if k in self.__dict__}
        values = {k: v for k, v in vars(other).items() if k not in _IDENTITY}
        if values.pop('_pack_slots', None) is not None:
            values['_value'] = other._value  # (other is packed: its value, on its own)
        self.__dict__.clear()
        self.__dict__.update(values)
        self.__dict__.update(keep)
        self._metadata = dict(other._metadata)

    def to_state_ref(self) -> 'TreefyState':
        """A pytree snapshot of the state: its class, value and metadata."""
        return TreefyState(_own_type(self), self._value, _been_writen=self._been_writen,
                           **self._metadata_items())

    def update_from_ref(self, state_ref: 'TreefyState') -> None:
        """Take the value and metadata of a :class:`TreefyState`."""
        metadata = state_ref.get_metadata()
        written = metadata.pop('_been_writen', True)
        for key, item in metadata.items():
            if key == 'name':
                self.name = item
            elif key == 'tag':
                self.tag = item
            elif not key.startswith('_'):
                setattr(self, key, item)
        if written:
            self.value = state_ref.value
        else:
            self.restore_value(state_ref.value)

    @classmethod
    def init(cls, fn, in_size, batch_size: int = None, tag: str = None):
        """A state holding ``braintools.init.param(fn, in_size, batch_size)``."""
        from braintools.init import param
        return cls(param(fn, in_size, batch_size), tag=tag)

    # -- hooks ----------------------------------------------------------------------------------
    @property
    def hooks(self):
        """This state's :class:`brainstate.HookManager`."""
        manager = self.__dict__.get('_hook_mgr')
        if manager is None:
            from ._state_hooks import HookManager
            manager = HookManager()
            self.__dict__['_hook_mgr'] = manager
        return manager

    @hooks.setter
    def hooks(self, manager):
        self.__dict__['_hook_mgr'] = manager
        from ._state_observe import refresh
        refresh(manager)

    _hooks_manager = hooks

    def register_hook(self, hook_type: str, callback: Callable, priority: int = 0,
                      name: Optional[str] = None, enabled: bool = True):
        """Run ``callback(context)`` on this state's ``hook_type`` operations (``'read'``,
        ``'write_before'``, ``'write_after'``, ``'restore'``, ``'init'``). Returns a handle
        (``handle.remove()``)."""
        return self.hooks.register_hook(hook_type, callback, priority, name, enabled)

    def unregister_hook(self, handle) -> bool:
        """Remove a hook of this state."""
        return self.hooks.unregister_hook(handle)

    def list_hooks(self, hook_type: Optional[str] = None) -> list:
        return self.hooks.get_hooks(hook_type)

    def clear_hooks(self, hook_type: Optional[str] = None) -> None:
        self.hooks.clear_hooks(hook_type)

    def has_hooks(self, hook_type: Optional[str] = None) -> bool:
        manager = self.__dict__.get('_hook_mgr')
        if manager is None:
            if hook_type is not None:
                from ._state_hooks import HOOK_TYPES
                if hook_type not in HOOK_TYPES:
                    raise ValueError(f'Invalid hook type: {hook_type!r}')
            return False
        return manager.has_hooks(hook_type)

    @contextlib.contextmanager
    def temporary_hook(self, hook_type: str, callback: Callable, priority: int = 0):
        """A hook of this state for the duration of a ``with`` block."""
        handle = self.register_hook(hook_type, callback, priority)
        try:
            yield handle
        finally:
            self.unregister_hook(handle)


def _new_state(cls, value, metadata: dict, source=None):
    """A new state of class ``cls`` without running ``cls.__init__`` (subclasses may take other
    constructor arguments), initialized as ``State.__init__`` would."""
    from ._state import State
    metadata = dict(metadata)
    name = metadata.pop('name', None)
    obj = object.__new__(cls)
    if source is not None:  # keep subclass attributes (e.g. HiddenTreeState's name2index)
        for key, item in vars(source).items():
            if not key.startswith('_') and key not in ('name', 'tag') and key not in metadata:
                obj.__dict__[key] = item
    State.__init__(obj, value, name=name, **metadata)
    return obj


@dataclasses.dataclass
class StateMetadata:
    """A value with metadata: ``State(StateMetadata(value, {'tag': 'x'}))`` creates a state
    with that metadata."""
    raw_value: Any
    metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)


class TreefyState:
    """A pytree snapshot of a State: its class (``type``), ``value`` (the pytree child) and
    metadata (static). ``to_state()`` makes a new State from it."""

    def __init__(self, type: type, value: Any, **metadata):
        self.type = type
        self.value = value
        vars(self).update(metadata)

    @property
    def name(self) -> Optional[str]:
        return vars(self).get('name', vars(self).get('_name'))

    @name.setter
    def name(self, name: str) -> None:
        vars(self)['name'] = name

    def replace(self, value) -> 'TreefyState':
        """The same snapshot with another value."""
        return TreefyState(self.type, value, **self.get_metadata())

    def to_state(self):
        """A new State of class ``type`` holding ``value`` with this metadata."""
        metadata = {k: v for k, v in self.get_metadata().items() if not k.startswith('_')}
        return _new_state(self.type, self.value, metadata)

    def copy(self) -> 'TreefyState':
        return jax.tree.map(lambda x: x, self)

    def get_metadata(self) -> Dict[str, Any]:
        """Every attribute but ``type`` and ``value``."""
        metadata = vars(self).copy()
        metadata.pop('type', None)
        metadata.pop('value', None)
        return metadata

    def __eq__(self, other):
        if not isinstance(other, TreefyState):
            return NotImplemented
        return (self.type is other.type and self.get_metadata() == other.get_metadata()
                and jax.tree.structure(self.value) == jax.tree.structure(other.value)
                and all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(self.value),
                                                             jax.tree.leaves(other.value))))

    __hash__ = object.__hash__

    def __repr__(self):
        def short(leaf):
            try:
                return jax.ShapeDtypeStruct(np.shape(leaf), jax.numpy.result_type(leaf))
            except Exception:
                return leaf
        items = [f'value={jax.tree.map(short, self.value)!r}']
        items += [f'{k}={v!r}' for k, v in self.get_metadata().items()
                  if not k.startswith('_') and v is not None]
        return f'TreefyState[{self.type.__name__}]({", ".join(items)})'


def _freeze(value):
    if isinstance(value, set):
        return tuple(sorted(value, key=repr))
    return value


def _treefy_flatten_with_keys(x: TreefyState):
    metadata = tuple((k, v) for k, v in x.get_metadata().items())
    return ((jax.tree_util.GetAttrKey('value'), x.value),), (x.type, _Static(metadata))


def _treefy_flatten(x: TreefyState):
    metadata = tuple((k, v) for k, v in x.get_metadata().items())
    return (x.value,), (x.type, _Static(metadata))


def _treefy_unflatten(static, children):
    return TreefyState(static[0], children[0], **dict(static[1].items))


class _Static:
    """Metadata as pytree aux data: compared by value (sets and dicts included)."""

    def __init__(self, items):
        self.items = items

    def __eq__(self, other):
        return isinstance(other, _Static) and self.items == other.items

    def __hash__(self):
        try:
            return hash(tuple((k, _freeze(v)) for k, v in self.items))
        except TypeError:
            return hash(tuple(k for k, _ in self.items))


jax.tree_util.register_pytree_with_keys(TreefyState, _treefy_flatten_with_keys, _treefy_unflatten,
                                        flatten_func=_treefy_flatten)
