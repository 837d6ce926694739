"""HiData: a named, nested container of arrays (a pytree) with dict- and attribute-style
access, used for structured model states and parameters.

Example::

    class GateState(brainstate.nn.HiData):
        m: jax.Array
        h: jax.Array

    s = GateState(m=jnp.zeros(3), h=jnp.ones(3))
    s.m, s['h'], s.replace(m=jnp.ones(3))
    jax.tree.map(lambda v: v * 2, s)          # a pytree: children are its leaves
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict

import jax

__all__ = ['HiData']


def is_dataclass(cls) -> bool:
    """Whether ``cls`` is a brainstate data class (HiData and its subclasses)."""
    return hasattr(cls, '_brainstate_dataclass')


def _register(cls):
    """Make ``cls`` a dataclass (keeping HiData's constructor) and a pytree whose leaves are
    its children and whose static part is its name and keys."""
    dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    cls._brainstate_dataclass = True

    def flatten(data):
        keys = tuple(data.children.keys())
        return tuple(data.children[k] for k in keys), (keys, data.name)

    def flatten_with_keys(data):
        keys = tuple(data.children.keys())
        return (tuple((jax.tree_util.GetAttrKey(k), data.children[k]) for k in keys),
                (keys, data.name))

    def unflatten(aux, leaves):
        keys, name = aux
        obj = object.__new__(cls)
        object.__setattr__(obj, 'children', dict(zip(keys, leaves)))
        object.__setattr__(obj, 'name', name)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


class HiData:
    """A container of named children (arrays, other HiData, ``None``) and an optional
    ``name``. Subclasses are data classes and pytrees automatically."""

    __module__ = 'brainstate.nn'
    name: str = None
    children: Dict[str, Any] = dataclasses.field(default_factory=dict, kw_only=True)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register(cls)

    def __init__(self, children: Dict[str, Any] | None = None, name: str | None = None,
                 **kwargs):
        object.__setattr__(self, 'children', dict(children) if children is not None else {})
        object.__setattr__(self, 'name', name)
        self.children.update(kwargs)

    def __len__(self):
        return len(self.children)

    def __getattr__(self, key: str):
        if key in ('children', 'name') or key.startswith('__'):
            raise AttributeError(key)
        try:
            return self.__dict__['children'][key]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' has no attribute '{key}'") from None

    def __getitem__(self, key: str):
        return self.children[key]

    def __contains__(self, key: str) -> bool:
        return key in self.children

    def keys(self):
        return self.children.keys()

    def items(self):
        return self.children.items()

    def values(self):
        return self.children.values()

    def __repr__(self) -> str:
        return self._repr_recursive(0)

    def _repr_recursive(self, indent: int = 0) -> str:
        pad = '  ' * indent
        name = f"'{self.name}'" if self.name else 'None'
        if not self.children:
            return f'{pad}HiData(name={name})'
        lines = [f'{pad}HiData(', f'{pad}  name={name},']
        items = list(self.children.items())
        for i, (key, value) in enumerate(items):
            comma = '' if i == len(items) - 1 else ','
            if isinstance(value, HiData):
                text = value._repr_recursive(indent + 1).lstrip()
            else:
                text = self._format_value(value)
            lines.append(f'{pad}  {key}={text}{comma}')
        lines.append(f'{pad})')
        return '\n'.join(lines)

    def _format_value(self, value) -> str:
        if value is None:
            return 'None'
        if hasattr(value, 'shape') and hasattr(value, 'dtype'):
            return f'Array(shape={value.shape}, dtype={value.dtype})'
        text = repr(value)
        return text if len(text) <= 60 else f'{text[:57]}...'

    def clone(self) -> 'HiData':
        """A copy (children with a ``clone`` method are cloned too)."""
        children = {k: (v.clone() if v is not None and hasattr(v, 'clone') else v)
                    for k, v in self.children.items()}
        return self.__class__(children=children, name=self.name)

    @property
    def state_size(self) -> int:
        """The number of non-``None`` leaves (nested HiData counted through)."""
        return sum(v.state_size if isinstance(v, HiData) else 1
                   for v in self.children.values() if v is not None)

    @property
    def dtype(self):
        """The dtype of the first array child."""
        for v in self.children.values():
            if v is None:
                continue
            if isinstance(v, HiData):
                try:
                    return v.dtype
                except ValueError:
                    continue
            if hasattr(v, 'dtype'):
                return v.dtype
        raise ValueError('No array children found to determine dtype')

    def add(self, *args, **updates) -> 'HiData':
        """A new HiData with the children of ``args`` (HiData or dicts) and ``updates``."""
        children = dict(self.children)
        for arg in args:
            if not isinstance(arg, (HiData, dict)):
                raise AssertionError(f'Argument must be of type HiData or Dict, got {type(arg)}')
            children.update(arg.items())
        children.update(updates)
        return self.__class__(children=children, name=self.name)

    def pop(self, *keys) -> 'HiData':
        """A new HiData without ``keys``."""
        children = dict(self.children)
        for key in keys:
            children.pop(key)
        return self.__class__(children=children, name=self.name)

    def replace(self, **updates) -> 'HiData':
        """A new HiData with some children replaced."""
        return self.__class__(children={**self.children, **updates}, name=self.name)

    def to_dict(self) -> dict:
        """Nested plain dicts."""
        return {k: v.to_dict() if isinstance(v, HiData) else v for k, v in self.children.items()}

    @classmethod
    def from_dict(cls, d: dict) -> 'HiData':
        """Build from nested dicts (nested dicts become HiData)."""
        return cls(children={k: cls.from_dict(v) if isinstance(v, dict) else v
                             for k, v in d.items()})


_register(HiData)
