"""Errors and small helpers of the jaxpr utilities (``eqns_to_jaxpr``...)."""

from __future__ import annotations

from collections.abc import MutableMapping, MutableSet

from jax.extend.core import Var

from .._errors import BrainStateError

__all__ = ['IRError', 'IRValidationError', 'UnsupportedPrimitiveError', 'check_all_vars',
           'IdentitySet', 'IdentityMap', 'make_var_factory']


class IRError(BrainStateError):
    """Base class of the errors of the jaxpr utilities."""


class IRValidationError(IRError, ValueError):
    """A malformed jaxpr input (also a ValueError)."""


class UnsupportedPrimitiveError(IRError):
    """A primitive or control-flow construct a jaxpr utility cannot handle."""


def check_all_vars(varseq, name: str):
    """IRValidationError unless every item of ``varseq`` is a jaxpr ``Var``."""
    for v in varseq:
        if not isinstance(v, Var):
            raise IRValidationError(f'{name} must contain only Var instances; got '
                                    f'{type(v).__name__}.')


class IdentitySet(MutableSet):
    """A set whose members are compared by identity (``is``), not equality: for jaxpr
    ``Var`` objects, arrays and other objects whose ``==`` is not a plain bool.

    Example::

        seen = IdentitySet(jaxpr.invars)
        used_inputs = [v for eqn in jaxpr.eqns for v in eqn.invars if v in seen]
    """

    def __init__(self, iterable=None):
        self._members = {}
        if iterable is not None:
            self.update(iterable)

    def __contains__(self, item) -> bool:
        return id(item) in self._members

    def __iter__(self):
        return iter(self._members.values())

    def __len__(self) -> int:
        return len(self._members)

    def add(self, item) -> None:
        self._members[id(item)] = item

    def discard(self, item) -> None:
        self._members.pop(id(item), None)

    def update(self, iterable) -> None:
        """Add every item of ``iterable``."""
        for item in iterable:
            self.add(item)

    def __repr__(self):
        return f'IdentitySet({list(self._members.values())!r})'

    __str__ = __repr__


class IdentityMap(MutableMapping):
    """A dict whose keys are compared by identity (``is``), not equality; it keeps its keys
    alive, so an ``id`` is never reused while it is a key."""

    def __init__(self, mapping=None):
        self._items = {}
        if mapping is not None:
            self.update(mapping)

    def __getitem__(self, key):
        return self._items[id(key)][1]

    def __setitem__(self, key, value):
        self._items[id(key)] = (key, value)

    def __delitem__(self, key):
        del self._items[id(key)]

    def __contains__(self, key) -> bool:
        return id(key) in self._items

    def __iter__(self):
        return iter([key for key, _ in self._items.values()])

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self):
        return f'IdentityMap({dict((repr(k), v) for k, v in self._items.values())!r})'

    __str__ = __repr__


def make_var_factory():
    """A function ``factory(aval) -> Var`` making fresh jaxpr variables (for building
    equations by hand)."""
    def factory(aval):
        return Var(aval)
    return factory
