"""Filters select states (or modules) from a module tree by type, tag, path or any predicate.

A filter is anything :func:`to_predicate` accepts:

* a class (``brainstate.ParamState``): the object is an instance of it;
* a string: the object's ``tag`` metadata equals it (``State(..., tag='fast')``);
* ``...`` or ``True``: everything; ``False`` or ``None``: nothing;
* a callable ``predicate(path, obj) -> bool``;
* a list or tuple of filters: any of them;
* the combinators below, which compose: ``All(ParamState, Not(PathContains('bias')))``.
"""

from __future__ import annotations

import builtins
from typing import Any, Callable

import jax

__all__ = ['to_predicate', 'All', 'Any', 'Not', 'OfType', 'WithTag', 'PathContains', 'Everything',
           'Nothing']

Predicate = Callable[[tuple, Any], bool]


def to_predicate(filter) -> Predicate:
    """Turn a filter into a ``predicate(path, obj) -> bool``."""
    if isinstance(filter, type):
        return OfType(filter)
    if isinstance(filter, str):
        return WithTag(filter)
    if filter is Ellipsis or filter is True:
        return Everything()
    if filter is False or filter is None:
        return Nothing()
    if isinstance(filter, (list, tuple)):
        return Any(*filter)
    if callable(filter):
        return filter
    raise TypeError(
        f'Invalid collection filter: {filter!r}. Use a State class (brainstate.ParamState), a tag string, '
        f'`...` for everything, a predicate `f(path, state) -> bool`, or a combinator from '
        f'brainstate.util.filter (All, Any, Not, OfType, WithTag, PathContains).')


def _path_entry(entry):
    """The key inside a JAX key-path entry (``DictKey('w')`` -> ``'w'``); others as they are."""
    if isinstance(entry, jax.tree_util.DictKey):
        return entry.key
    if isinstance(entry, jax.tree_util.GetAttrKey):
        return entry.name
    if isinstance(entry, jax.tree_util.SequenceKey):
        return entry.idx
    if isinstance(entry, jax.tree_util.FlattenedIndexKey):
        return entry.key
    return entry


class _Filter:
    def __call__(self, path: tuple, obj) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        args = ', '.join(repr(a) for a in getattr(self, '_args', ()))
        return f'{type(self).__name__}({args})'

    def __eq__(self, other):
        return type(self) is type(other) and self._args == other._args

    def __hash__(self):
        try:
            return hash((type(self), self._args))
        except TypeError:  # wraps an unhashable predicate: equal filters still hash equal
            return hash(type(self))

    def __setattr__(self, name, value):
        raise AttributeError(f'{type(self).__name__} is immutable; create a new filter instead.')


class OfType(_Filter):
    """Objects that are instances of ``type``."""

    def __init__(self, type: type):
        object.__setattr__(self, 'type', type)
        object.__setattr__(self, '_args', (type,))

    def __call__(self, path, obj):
        if isinstance(obj, self.type):
            return True
        # A reference to a state (TreefyState) names its class in `.type`.
        held = getattr(obj, 'type', None)
        return isinstance(held, builtins.type) and issubclass(held, self.type)


class WithTag(_Filter):
    """Objects tagged ``tag`` (``State(value, tag=...)``: a state's ``tag`` is a set)."""

    def __init__(self, tag: str):
        if not isinstance(tag, str):
            raise TypeError(f'WithTag takes a string tag, got {type(tag).__name__}: {tag!r}.')
        object.__setattr__(self, 'tag', tag)
        object.__setattr__(self, '_args', (tag,))

    def __call__(self, path, obj):
        tag = getattr(obj, 'tag', None)
        if isinstance(tag, (set, frozenset, tuple, list)):
            return self.tag in tag
        return tag == self.tag


class PathContains(_Filter):
    """Objects whose path in the module tree contains ``key`` (an attribute name or index)."""

    def __init__(self, key):
        object.__setattr__(self, 'key', key)
        object.__setattr__(self, '_args', (key,))

    def __call__(self, path, obj):
        return any(_path_entry(entry) == self.key for entry in path)


class Any(_Filter):
    """Objects matched by at least one of the filters."""

    def __init__(self, *filters):
        object.__setattr__(self, '_args', filters)
        object.__setattr__(self, 'predicates', tuple(to_predicate(f) for f in filters))

    def __call__(self, path, obj):
        return any(p(path, obj) for p in self.predicates)


class All(_Filter):
    """Objects matched by every one of the filters."""

    def __init__(self, *filters):
        object.__setattr__(self, '_args', filters)
        object.__setattr__(self, 'predicates', tuple(to_predicate(f) for f in filters))

    def __call__(self, path, obj):
        return all(p(path, obj) for p in self.predicates)


class Not(_Filter):
    """Objects the filter does not match."""

    def __init__(self, filter):
        object.__setattr__(self, '_args', (filter,))
        object.__setattr__(self, 'predicate', to_predicate(filter))

    def __call__(self, path, obj):
        return not self.predicate(path, obj)


class Everything(_Filter):
    """Every object."""
    _args = ()

    def __call__(self, path, obj):
        return True


class Nothing(_Filter):
    """No object."""
    _args = ()

    def __call__(self, path, obj):
        return False
