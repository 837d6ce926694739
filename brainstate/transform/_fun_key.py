"""What a function can see: the key under which an eager transform reuses its compiled program.

An eager transform (``grad(loss, params)(x)``, ``for_loop(body, xs)``, ``vmap(f)(xs)``...) is
usually built inline, so each call makes a new transform object around the same Python
function. :func:`function_key` describes that function by everything that decides what tracing
it would produce, so that a call with an equal key (and the same argument signature and state
layout) can run the program compiled for an earlier call without tracing again:

* a function: its code object, its defaults, the contents of its closure cells and the current
  values of the globals its code names (nested functions' code included);
* a bound method: the function and the object it is bound to; a ``functools.partial``: the
  function and the bound arguments; a brainstate transform object: its kind, function and
  options (``_cache_key``);
* an object of the user's (a Module, a config object...): its class and, recursively, every
  attribute in its ``__dict__``; lists, tuples, dicts and sets: their elements;
* Python scalars and strings by value; arrays, States, modules, classes and library objects
  (functions of JAX, NumPy... included) by identity (a State's value is an input of the
  program, not part of it; JAX arrays are immutable, so an equal identity is an equal value —
  the key holds them so an identity is never reused).

So changing a closure value, a global or an attribute the function reads (``m.k = 10.``) gives
a new key, and the next call traces again, as Python semantics require. What the key cannot see
is frozen into the program exactly as under ``jax.jit``: class attributes, a NumPy array mutated
in place, values Python computes at trace time from outside sources (NumPy's global random
generator, the clock, files). An object graph too large to describe cheaply (over
:data:`BUDGET` items) gives no key, and every call traces (always correct, just slower).
"""

from __future__ import annotations

import functools
import types
import weakref
from typing import Any

import numpy as np

__all__ = ['function_key', 'BUDGET']

BUDGET = 4096
_BY_VALUE = (int, bool, str, bytes, type(None), type(Ellipsis), range)
# Libraries whose objects are described by identity (functions and arrays of JAX and NumPy...).
_LIBRARY_PREFIXES = ('jax', 'jaxlib', 'numpy', 'builtins', 'functools', 'optax', 'brainunit',
                     'ml_dtypes', 'typing', 'collections', 'abc', 'enum')
_code_names = weakref.WeakKeyDictionary()  # code -> global names (fresh code is freed)


class _GiveUp(Exception):
    pass


class _Ref:
    """An object keyed by identity; holding it keeps its ``id`` from being reused."""

    __slots__ = ('obj',)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return type(other) is _Ref and other.obj is self.obj


def _names_of(code: types.CodeType) -> tuple:
    """The global names a code object (and the code nested in it) can read."""
    names = _code_names.get(code)
    if names is None:
        found = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                found.update(_names_of(const))
        names = _code_names[code] = tuple(sorted(found))
    return names


_State = None  # brainstate.State (imported on first use: this module loads before it)
_identity_kinds: dict = {}  # type -> whether its objects are described by identity


def _is_identity_kind(kind) -> bool:
    found = _identity_kinds.get(kind)
    if found is None:
        global _State
        if _State is None:
            from .._state import State as _State
        module = getattr(kind, '__module__', '') or ''
        found = _identity_kinds[kind] = (
            issubclass(kind, (_State, type, types.ModuleType)) or
            module.split('.', 1)[0] in _LIBRARY_PREFIXES)
    return found


class _Walker:
    def __init__(self):
        self.left = BUDGET
        self.seen: dict[int, int] = {}

    def key(self, obj: Any):
        self.left -= 1
        if self.left < 0:
            raise _GiveUp()
        kind = type(obj)
        if kind is str:  # (itself: no other description is a str)
            return obj
        if kind in _BY_VALUE:
            return (kind, obj)
        if kind is float:  # by bits: -0.0 and 0.0 differ, a NaN equals itself
            return (float, obj.hex())
        if kind is complex:
            return (complex, obj.real.hex(), obj.imag.hex())
        key = self.key
        if kind is tuple:  # (immutable: a cycle through it passes a mutable object too)
            self.left -= len(obj)  # (strings are not walked: counted here; a bound, not a tally)
            return (tuple, tuple([x if type(x) is str else key(x) for x in obj]))
        ident = id(obj)
        seen = self.seen
        if ident in seen:  # a cycle or shared object: refer to its first description
            return ('@', seen[ident])
        seen[ident] = len(seen)
        if kind is list:
            return (list, tuple([key(x) for x in obj]))
        if kind is types.FunctionType:
            return self.function(obj)
        if kind is dict:
            return (dict, tuple([(key(k), key(v)) for k, v in obj.items()]))
        if kind is types.MethodType:
            return ('method', key(obj.__func__), key(obj.__self__))
        if kind is functools.partial:
            return ('partial', key(obj.func), key(obj.args), key(obj.keywords))
        if kind is set or kind is frozenset:
            return (kind, frozenset([key(x) for x in obj]))
        cache_key = getattr(kind, '_cache_key', None)
        if cache_key is not None:  # a brainstate transform object (or a user's own rule)
            return ('transform', kind, key(cache_key(obj)))
        if isinstance(obj, tuple) and hasattr(obj, '_fields'):  # a namedtuple
            return (kind, tuple([key(x) for x in obj]))
        if _is_identity_kind(kind):
            if isinstance(obj, np.generic):  # a NumPy scalar: by value and bits
                return (kind, obj.tobytes())
            return _Ref(obj)
        attrs = getattr(obj, '__dict__', None)
        if attrs is None:
            return _Ref(obj)
        return ('object', kind, tuple([(name, key(value)) for name, value in attrs.items()]))

    def function(self, fun: types.FunctionType):
        module = getattr(fun, '__module__', None) or ''
        if module.split('.', 1)[0] in _LIBRARY_PREFIXES:
            # A library's function (``jax.vmap``, a ``jnp`` function held as an option): by
            # identity, as its other objects; walking its globals would describe half of JAX.
            return _Ref(fun)
        code = fun.__code__
        glob = fun.__globals__
        closure = fun.__closure__ or ()
        cells = []
        for cell in closure:
            try:
                cells.append(self.key(cell.cell_contents))
            except ValueError:  # an empty cell
                cells.append('<empty>')
        return ('function', _Ref(code), self.key(fun.__defaults__),
                self.key(fun.__kwdefaults__), tuple(cells),
                tuple((name, self.key(glob[name])) for name in _names_of(code)
                      if name in glob))


def function_key(obj: Any) -> tuple | None:
    """A hashable description of what ``obj`` (a function, method, partial, transform object,
    or a tuple of them with options) would trace to; None when it is too large to describe."""
    try:
        return _Walker().key(obj)
    except _GiveUp:
        return None
    except TypeError:  # something unhashable by value slipped through: no key
        return None
