"""Type annotations used across brainstate and its companion libraries: arrays and shapes
(``ArrayLike``, ``Shape``, ``Size``, ``DTypeLike``), paths and filters (``PathParts``,
``Filter``), ``PyTree[...]``, ``SeedOrKey`` and the ``Missing`` sentinel.

They are annotations: apart from ``isinstance`` checks against the ``Key`` and
``SupportsDType`` protocols, nothing is checked at run time.

Example::

    from brainstate.typing import ArrayLike, Shape, PyTree

    def zeros(shape: Shape, like: ArrayLike) -> PyTree[float, 'T']: ...
"""

from __future__ import annotations

import functools
import re
from types import EllipsisType
from typing import (Any, Callable, Generic, Hashable, List, Protocol, Sequence, Tuple, TypeVar,
                    Union, runtime_checkable)

import jax
import numpy as np

__all__ = [
    'PathParts', 'Predicate', 'Filter', 'FilterLiteral',
    'Array', 'ArrayLike', 'Shape', 'Size', 'Axes', 'DType', 'DTypeLike', 'SupportsDType',
    'PyTree', 'SeedOrKey', 'Key', 'Missing', 'K', '_T', '_Annotation',
]

K = TypeVar('K', bound='Key')
_T = TypeVar('_T')
_Annotation = TypeVar('_Annotation')


@runtime_checkable
class Key(Hashable, Protocol):
    """A part of a path in a module tree: hashable and orderable (attribute names, indices,
    dictionary keys)."""

    def __lt__(self, value, /) -> bool:
        ...


PathParts = Tuple[Key, ...]
"""A path in a module tree, e.g. ``('layers', 0, 'weight')``."""

Predicate = Callable[[PathParts, Any], bool]
"""A filter function ``predicate(path, obj) -> bool``."""

FilterLiteral = Union[type, str, Predicate, bool, EllipsisType, None]
"""A single filter: a class, a tag, a predicate, a boolean, ``...`` or ``None``."""

Filter = Union[FilterLiteral, Tuple['Filter', ...], List['Filter']]
"""A filter or a sequence of filters (any of which may match)."""


class _Array(Generic[_Annotation]):
    """An array annotated with a shape description, e.g. ``Array['batch, features']``."""


_Array.__module__ = 'builtins'


def _item_to_str(item) -> str:
    """Render one item of an ``Array[...]`` annotation."""
    if isinstance(item, (type, EllipsisType)):
        return item.__name__ if isinstance(item, type) else '...'
    if isinstance(item, slice):
        if item.step is not None:
            raise NotImplementedError('Array annotations do not support slice steps.')
        return f'{_item_to_str(item.start)}: {_item_to_str(item.stop)}'
    return repr(item)


def _maybe_tuple_to_str(item) -> str:
    """Render an ``Array[...]`` annotation item, or a tuple of them."""
    if isinstance(item, tuple):
        return '()' if not item else ', '.join(_item_to_str(i) for i in item)
    return _item_to_str(item)


class Array:
    """A JAX array; ``Array['m, n']`` documents its shape (``Array[float, 'batch']`` also its
    dtype). The annotation is documentation only."""

    def __class_getitem__(cls, item):
        return _Array[_maybe_tuple_to_str(item)]


Array.__module__ = 'builtins'

_STRUCTURE_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class _MetaPyTree(type):
    def __call__(cls, *args, **kwargs):
        raise RuntimeError('PyTree cannot be instantiated: it is a type annotation only.')

    def __getitem__(cls, item):
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError('The subscript of PyTree must be PyTree[leaftype] or '
                                 'PyTree[leaftype, structure].')
            leaftype, structure = item
            if not isinstance(structure, str):
                raise ValueError(f'The structure annotation of PyTree[leaftype, structure] must '
                                 f'be a string, got {structure!r}.')
            structure = ' '.join(structure.split())
            _check_structure(structure)
        else:
            leaftype, structure = item, None
        try:
            hash(leaftype)
        except TypeError:
            raise TypeError(f'The leaf type of PyTree[...] must be hashable, got '
                            f'{leaftype!r}.') from None
        return _pytree_class(leaftype, structure)


def _check_structure(structure: str):
    names = structure.split()
    if not names:
        raise ValueError('The structure annotation of PyTree must be a non-empty string.')
    inner = names[1:] if names[0] == '...' else names
    inner = inner[:-1] if inner and inner[-1] == '...' else inner
    if not inner or (names[0] == '...' and names[-1] == '...'):
        raise ValueError(f'Invalid PyTree structure {structure!r}: it must name a structure, '
                         f'with at most one "..." at its start or its end.')
    for name in inner:
        if not _STRUCTURE_NAME.match(name):
            raise ValueError(f'Invalid PyTree structure {structure!r}: each name must be a '
                             f'valid identifier, and "..." may only begin or end it.')


@functools.lru_cache(maxsize=None)
def _pytree_class(leaftype, structure):
    name = 'PyTree' if structure is None else f'PyTree[{structure!r}]'
    return type(name, (PyTree,), {'leaftype': leaftype, 'structure': structure,
                                  '__module__': 'builtins'})


class PyTree(metaclass=_MetaPyTree):
    """Any JAX pytree. ``PyTree[LeafType]``: a pytree whose leaves are ``LeafType``;
    ``PyTree[LeafType, 'T']``: one whose structure is named ``T`` (several arguments annotated
    ``'T'`` share a structure; ``'S T'`` composes, ``'... T'`` / ``'T ...'`` match a suffix or
    a prefix). Annotation only: it cannot be instantiated."""
    leaftype = Any
    structure = None


PyTree.__module__ = 'builtins'

Size = Union[int, Sequence[int], np.integer, Sequence[np.integer]]
"""A size: an integer, or a sequence of them."""

Shape = Sequence[int]
"""An array shape, e.g. ``(3, 4)``."""

Axes = Union[int, Sequence[int]]
"""An axis or several axes."""

try:  # physical units are optional
    import brainunit as _u
    _Quantity = (_u.Quantity,)
except Exception:  # pragma: no cover - brainunit absent
    _Quantity = ()

ArrayLike = Union[(jax.Array, np.ndarray, np.bool_, np.number, bool, int, float, complex)
                  + _Quantity]
"""What converts to an array without ambiguity: JAX and NumPy arrays, NumPy and Python
scalars (and brainunit quantities when brainunit is installed)."""

DType = np.dtype
"""A NumPy dtype."""


@runtime_checkable
class SupportsDType(Protocol):
    """Any object with a ``dtype`` attribute (arrays, dtypes themselves)."""

    @property
    def dtype(self) -> DType:
        ...


DTypeLike = Union[str, type, np.dtype, SupportsDType]
"""A dtype specification: a name (``'float32'``), a type (``np.float32``, ``float``), a
``np.dtype`` or an object with a ``dtype``."""

SeedOrKey = Union[int, jax.Array, np.ndarray]
"""A random seed or a JAX PRNG key."""


class Missing:
    """A sentinel for "no value given", where ``None`` is a meaningful value::

        _MISSING = Missing()
        def f(x=_MISSING):
            if x is _MISSING: ...
    """

    def __repr__(self):
        return 'Missing'
