"""Frozen dataclasses that are pytrees (``dataclass``, ``field``, ``PyTreeNode``) and an
immutable, hashable mapping (``FrozenDict`` with ``freeze`` / ``unfreeze`` / ``copy`` / ``pop``).

Example::

    @brainstate.util.dataclass
    class Params:
        w: jax.Array
        act: str = brainstate.util.field(pytree_node=False, default='relu')

    jax.tree.leaves(Params(jnp.ones(2)))     # [w]; `act` is static
"""

from __future__ import annotations

import dataclasses
from collections.abc import ItemsView, KeysView, Mapping, ValuesView
from typing import Any, Iterator, TypeVar

import jax

__all__ = ['field', 'is_dataclass', 'dataclass', 'PyTreeNode', 'FrozenDict', 'freeze',
           'unfreeze', 'copy', 'pop', 'pretty_repr']

T = TypeVar('T')

_MARK = '_brainstate_dataclass'


def is_dataclass(cls: Any) -> bool:
    """Whether ``cls`` (or an instance) was made by :func:`dataclass`."""
    return dataclasses.is_dataclass(cls) and getattr(cls, _MARK, False) is True


def field(pytree_node: bool = True, **kwargs) -> dataclasses.Field:
    """A dataclass field; ``pytree_node=False`` makes it static (part of the tree structure,
    not a leaf)."""
    metadata = dict(kwargs.pop('metadata', {}) or {})
    if 'pytree_node' in metadata and metadata['pytree_node'] != pytree_node:
        raise ValueError(f"Conflicting pytree_node metadata: metadata has "
                         f"{metadata['pytree_node']!r}, argument has {pytree_node!r}.")
    metadata['pytree_node'] = pytree_node
    return dataclasses.field(metadata=metadata, **kwargs)


def dataclass(cls=None, **kwargs):
    """Make ``cls`` a frozen dataclass registered as a pytree (fields are children unless
    declared with ``field(pytree_node=False)``), with a ``replace(**updates)`` method."""
    if cls is None:
        return lambda c: dataclass(c, **kwargs)
    if _MARK in cls.__dict__:
        return cls
    kwargs.setdefault('frozen', True)
    cls = dataclasses.dataclass(**kwargs)(cls)
    children, static = [], []
    for f in dataclasses.fields(cls):
        if f.init:
            (children if f.metadata.get('pytree_node', True) else static).append(f.name)

    def replace(self, **updates):
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **updates)

    cls.replace = replace
    _register(cls, children, static)
    setattr(cls, _MARK, True)
    return cls


def _register(cls, children, static):
    if hasattr(jax.tree_util, 'register_dataclass'):
        jax.tree_util.register_dataclass(cls, data_fields=children, meta_fields=static)
        return

    def flatten_with_keys(obj):
        return ([(jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in children],
                tuple(getattr(obj, n) for n in static))

    def flatten(obj):
        return [getattr(obj, n) for n in children], tuple(getattr(obj, n) for n in static)

    def unflatten(meta, leaves):
        return cls(**dict(zip(static, meta)), **dict(zip(children, leaves)))

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)


class PyTreeNode:
    """Subclass it to get a :func:`dataclass` (frozen, a pytree)::

        class Point(brainstate.util.PyTreeNode):
            x: float
            y: float
    """

    def __init_subclass__(cls, **kwargs):
        dataclass(cls, **kwargs)

    def __init__(self, *args, **kwargs):
        raise NotImplementedError('PyTreeNode is a base class')

    def replace(self, **updates):
        raise NotImplementedError('Implemented by dataclass decorator')


def _deep_thaw_dicts(obj):
    if isinstance(obj, FrozenDict):
        return obj._data
    if isinstance(obj, dict):
        return {k: _deep_thaw_dicts(v) for k, v in obj.items()}
    return obj


@jax.tree_util.register_pytree_with_keys_class
class FrozenDict(Mapping):
    """An immutable, hashable dict (nested dicts frozen too); a pytree with sorted keys."""
    __slots__ = ('_data', '_hash')

    def __init__(self, *args, **kwargs):
        self._data = _deep_thaw_dicts(dict(*args, **kwargs))
        self._hash = None

    def __getitem__(self, key):
        value = self._data[key]
        return FrozenDict(value) if isinstance(value, dict) else value

    def __setitem__(self, key, value):
        raise TypeError('FrozenDict does not support item assignment')

    def __delitem__(self, key):
        raise TypeError('FrozenDict does not support item deletion')

    def __contains__(self, key) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return self.pretty_repr()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self.items()))
        return self._hash

    def __eq__(self, other) -> bool:
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, dict):
            return self._data == other
        return NotImplemented

    def __reduce__(self):
        return FrozenDict, (self.unfreeze(),)

    def keys(self):
        return FrozenKeysView(self)

    def values(self):
        return FrozenValuesView(self)

    def items(self):
        return ItemsView(self)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def copy(self, add_or_replace: Mapping | None = None) -> 'FrozenDict':
        """A new FrozenDict with entries added or replaced."""
        return type(self)({**self._data, **dict(add_or_replace or {})})

    def pop(self, key):
        """``(FrozenDict without key, value)``."""
        if key not in self._data:
            raise KeyError(key)
        value = self[key]
        rest = dict(self._data)
        del rest[key]
        return type(self)(rest), value

    def unfreeze(self) -> dict:
        """A plain (deeply mutable) dict."""
        return unfreeze(self)

    def pretty_repr(self, indent: int = 2) -> str:
        if not self._data:
            return 'FrozenDict({})'
        return f'FrozenDict({_format_dict(self._data, 0, indent)})'

    def tree_flatten_with_keys(self):
        keys = sorted(self._data, key=lambda k: (type(k).__module__, type(k).__qualname__,
                                                 repr(k)))
        return [(jax.tree_util.DictKey(k), self._data[k]) for k in keys], tuple(keys)

    @classmethod
    def tree_unflatten(cls, keys, values):
        return cls(dict(zip(keys, values)))


class FrozenKeysView(KeysView):
    def __repr__(self):
        return f'FrozenDict.keys({list(self)})'


class FrozenValuesView(ValuesView):
    def __repr__(self):
        return f'FrozenDict.values({list(self)})'


def _format_dict(d, level, indent):
    if not isinstance(d, dict):
        return repr(d)
    if not d:
        return '{}'
    pad = ' ' * indent
    items = [f'{pad * (level + 1)}{k!r}: {_format_dict(v, level + 1, indent)}'
             for k, v in d.items()]
    return '{\n' + ',\n'.join(items) + f'\n{pad * level}}}'


def freeze(x: Mapping) -> FrozenDict:
    """``x`` as a FrozenDict (itself if it is one)."""
    return x if isinstance(x, FrozenDict) else FrozenDict(x)


def unfreeze(x):
    """Plain nested dicts from FrozenDicts and dicts (other values unchanged)."""
    if isinstance(x, FrozenDict):
        x = x._data
    if isinstance(x, dict):
        return {k: unfreeze(v) for k, v in x.items()}
    return x


def copy(x, add_or_replace: Mapping | None = None):
    """A copy of a FrozenDict or dict with entries added or replaced."""
    if isinstance(x, FrozenDict):
        return x.copy(add_or_replace)
    if isinstance(x, dict):
        return {**x, **dict(add_or_replace or {})}
    raise TypeError(f'Expected FrozenDict or dict, got {type(x)}')


def pop(x, key):
    """``(x without key, value)`` for a FrozenDict or dict (``x`` unchanged)."""
    if isinstance(x, FrozenDict):
        return x.pop(key)
    if isinstance(x, dict):
        rest = dict(x)
        value = rest.pop(key)
        return rest, value
    raise TypeError(f'Expected FrozenDict or dict, got {type(x)}')


def pretty_repr(x, indent: int = 2) -> str:
    """A multi-line repr of (frozen) dicts."""
    if isinstance(x, FrozenDict):
        return x.pretty_repr(indent)
    if isinstance(x, dict):
        return _format_dict(x, 0, indent)
    return repr(x)
