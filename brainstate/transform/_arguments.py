"""Splitting a call's arguments into static values and array leaves, and keying caches on them.

Shared by every transform that traces a function per argument signature (jit, make_jaxpr, ...).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from .._errors import ArgumentTypeError, ArgumentValueError, StateArgumentError, TracerLeakError
from .._state import State

__all__ = ['ArgumentSpec', 'CallSignature', 'normalize_argnums', 'describe_argument_path']

from jax._src.array import ArrayImpl as _ArrayImpl  # (not jnp.zeros(()): no backend at import)
_Tracer = jax.core.Tracer


def normalize_argnums(argnums, name: str) -> tuple[int, ...]:
    if argnums is None:
        return ()
    if isinstance(argnums, int):
        argnums = (argnums,)
    out = tuple(argnums)
    for n in out:
        if not isinstance(n, int):
            raise ArgumentTypeError(f'{name} must be int or a sequence of ints, got {argnums!r}.')
    return out


def _normalize_argnames(argnames, name: str) -> tuple[str, ...]:
    if argnames is None:
        return ()
    if isinstance(argnames, str):
        return (argnames,)
    try:
        out = tuple(argnames)
    except TypeError:
        out = None
    if out is None or not all(isinstance(n, str) for n in out):
        raise ArgumentTypeError(f'{name} must be a str or a sequence of str (argument names), '
                                f'got {argnames!r}.')
    return out


def _slow_leaf_signature(leaf, fun_name: str, where: Callable[[], str],
                         allow_tracers: bool = False):
    if isinstance(leaf, _Tracer):
        if allow_tracers:
            aval = leaf.aval
            return (aval.shape, aval.dtype, getattr(aval, 'weak_type', False))
        raise TracerLeakError(
            f'{fun_name} (a brainstate transform) was called with a JAX tracer at '
            f'{where()}: it is running inside a raw JAX transform such as `jax.jit`, '
            f'`jax.vmap` or `jax.grad`, which would lose its state updates. Use the brainstate '
            f'transform for the outer function too (brainstate.transform.jit, .vmap, .grad).')
    if isinstance(leaf, State):
        raise StateArgumentError(
            f'{fun_name} received State {leaf.label()} as an argument at {where()}. States are '
            f'not values: read the state inside the function (the transform threads it for '
            f'you), or pass `state.value`.')
    if isinstance(leaf, jax.Array):
        # Typed PRNG key arrays are jax.Arrays without a weak_type attribute.
        return (leaf.shape, leaf.dtype, getattr(leaf, 'weak_type', False))
    if isinstance(leaf, jax.ShapeDtypeStruct):  # eval_shape / make_jaxpr on shapes only
        return (leaf.shape, leaf.dtype, bool(leaf.weak_type))
    if isinstance(leaf, (bool, int, float, complex)):
        return (type(leaf),)
    if isinstance(leaf, (np.ndarray, np.generic)):
        return (leaf.shape, leaf.dtype, False)
    raise ArgumentTypeError(
        f'{fun_name} received a {type(leaf).__name__} at {where()}, which is not an array. '
        f'Pass arrays (or pytrees of arrays), or mark the argument static with '
        f'`static_argnums=` / `static_argnames=`.')


def describe_argument_path(path, positions=None) -> str:
    """Name a leaf of ``(args, kwargs)`` for a message as the user wrote the call: "positional
    argument 1['w']", "keyword argument 'scale'". ``positions``: the place in the call of each
    entry of ``args``, where static arguments were taken out of it. The one describer of
    argument leaves (jit, make_jaxpr, StatefulFunction, vmap)."""
    if len(path) < 2:
        return jax.tree_util.keystr(path) or 'the argument'
    head, rest = path[1], jax.tree_util.keystr(path[2:])
    if path[0].idx == 0:
        index = head.idx if positions is None else positions[head.idx]
        return f'positional argument {index}{rest}'
    return f'keyword argument {head.key!r}{rest}'


def _describe_leaf(treedef, index: int, positions=None) -> str:
    """Name the ``index``-th leaf of ``treedef`` (an ``(args, kwargs)`` structure)."""
    dummy = jax.tree.unflatten(treedef, list(range(treedef.num_leaves)))
    for path, leaf in jax.tree_util.tree_flatten_with_path(dummy)[0]:
        if leaf == index:
            return describe_argument_path(path, positions)
    return f'leaf {index}'


def leaf_aval(leaf):
    """The ShapeDtypeStruct a leaf is traced at (keeping JAX's weak types for Python numbers)."""
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return leaf
    aval = jax.typeof(leaf)
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)


class CallSignature(NamedTuple):
    """What a cache is keyed on, and the pieces needed to trace or run a call."""
    key: Any
    leaves: list            # the array leaves of the non-static arguments
    treedef: Any            # structure of (dynamic args, dynamic kwargs)
    static_args: tuple      # ((position, value), ...)
    static_kwargs: tuple    # ((name, value), ...)


class ArgumentSpec:
    """How a transform treats its function's arguments: which are static, which donated."""

    def __init__(self, fun: Callable, static_argnums=(), static_argnames=(), donate_argnums=(),
                 donate_argnames=()):
        self.fun = fun
        self.fun_name = getattr(fun, '__name__', type(fun).__name__)
        self.static_argnums = normalize_argnums(static_argnums, 'static_argnums')
        if isinstance(static_argnames, str):
            static_argnames = (static_argnames,)
        self.static_argnames = tuple(static_argnames or ())
        self.donate_argnums = normalize_argnums(donate_argnums, 'donate_argnums')
        self.donate_argnames = _normalize_argnames(donate_argnames, 'donate_argnames')
        self.has_static = bool(self.static_argnums or self.static_argnames)
        if not (self.static_argnums or self.static_argnames or self.donate_argnums or
                self.donate_argnames):
            return  # nothing to check against the signature (and inspect is slow)
        try:
            params = dict(inspect.signature(fun).parameters)
        except (TypeError, ValueError):
            params = {}
        positional = [name for name, p in params.items()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if any(i < 0 for i in self.static_argnums + self.donate_argnums):
            if not params:
                raise ArgumentValueError(
                    f'{self.fun_name}: negative static_argnums/donate_argnums need '
                    f'a function with an inspectable signature.')
            n = len(positional)
            self.static_argnums = tuple(i + n if i < 0 else i for i in self.static_argnums)
            self.donate_argnums = tuple(i + n if i < 0 else i for i in self.donate_argnums)
        takes_varargs = any(p.kind == p.VAR_POSITIONAL for p in params.values())
        if params and not takes_varargs:
            for label, nums in (('static_argnums', self.static_argnums),
                                ('donate_argnums', self.donate_argnums)):
                bad = [i for i in nums if i >= len(positional)]
                if bad:
                    raise ArgumentValueError(
                        f'{self.fun_name} takes {len(positional)} positional argument(s) '
                        f'({", ".join(positional) or "none"}), but {label} names {bad}. Count '
                        f'from 0, or use static_argnames= for keyword arguments.')
        # A static argument given by name, or by position, is the same argument.
        for name in self.static_argnames:
            if name in positional:
                index = positional.index(name)
                if index not in self.static_argnums:
                    self.static_argnums += (index,)
        for index in self.static_argnums:
            if index < len(positional) and positional[index] not in self.static_argnames:
                self.static_argnames += (positional[index],)
        self.has_static = bool(self.static_argnums or self.static_argnames)
        # A donated argument given by name is donated, and checked, by position too (as in
        # jax.jit); by keyword it is donated under its name.
        for name in self.donate_argnames:
            if name in positional and positional.index(name) not in self.donate_argnums:
                self.donate_argnums += (positional.index(name),)

    def signature(self, args: tuple, kwargs: dict, allow_tracers: bool = False) -> CallSignature:
        """Split the arguments and compute the cache key. Fast for the common case.

        ``allow_tracers``: the call may come from inside a trace (a transform nested in jit or
        a loop): tracers are keyed on their avals instead of being refused."""
        if self.has_static:
            return self._signature_with_static(args, kwargs, allow_tracers)
        leaves, treedef = jax.tree.flatten((args, kwargs))
        return CallSignature((treedef, self._leaf_key(leaves, treedef, allow_tracers)), leaves,
                             treedef, (), ())

    def _leaf_key(self, leaves, treedef, allow_tracers: bool = False, positions=None) -> tuple:
        """``positions``: None, or a function giving the place in the call of each dynamic
        positional argument (asked only to name a leaf in an error)."""
        sig = []
        append = sig.append
        for i, leaf in enumerate(leaves):
            if type(leaf) is _ArrayImpl:
                append((leaf.shape, leaf.dtype, leaf.weak_type))
            else:
                append(_slow_leaf_signature(
                    leaf, self.fun_name,
                    lambda i=i: _describe_leaf(treedef, i, positions and positions()),
                    allow_tracers))
        return tuple(sig)

    def _signature_with_static(self, args, kwargs, allow_tracers=False) -> CallSignature:
        n = len(args)
        static_positions = sorted({i + n if i < 0 else i for i in self.static_argnums})
        static_args = []
        for i in static_positions:
            if 0 <= i < n:
                static_args.append((i, args[i]))
        static_set = {i for i, _ in static_args}
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_set)
        static_kwargs = tuple(sorted((k, v) for k, v in kwargs.items()
                                     if k in self.static_argnames))
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        for label, value in [(f'argument {i}', v) for i, v in static_args] + \
                            [(f'keyword argument {k!r}', v) for k, v in static_kwargs]:
            if isinstance(value, _Tracer):
                raise ArgumentTypeError(
                    f'{self.fun_name}: static {label} is a JAX tracer (a value of an '
                    f'enclosing JAX transform such as jax.jit or jax.vmap), but a static '
                    f'argument must be a concrete Python value: pass a Python value there, or '
                    f'make that argument dynamic (drop it from static_argnums/static_argnames).')
            try:
                hash(value)
            except TypeError:
                raise ArgumentTypeError(
                    f'{self.fun_name}: static {label} has unhashable type '
                    f'{type(value).__name__}; static arguments key the compilation cache and '
                    f'must be hashable (use a tuple instead of a list).') from None
        leaves, treedef = jax.tree.flatten((dyn_args, dyn_kwargs))
        def positions():
            return [i for i in range(n) if i not in static_set]

        key = (treedef, self._leaf_key(leaves, treedef, allow_tracers, positions),
               tuple(static_args), static_kwargs)
        return CallSignature(key, leaves, treedef, tuple(static_args), static_kwargs)

    def trace_signature(self, args: tuple, kwargs: dict) -> CallSignature:
        """Split arguments that may be tracers (no cache key): for use while JAX traces."""
        if not self.has_static:
            leaves, treedef = jax.tree.flatten((args, kwargs))
            return CallSignature(None, leaves, treedef, (), ())
        n = len(args)
        static_args = tuple((i, args[i]) for i in sorted(set(self.static_argnums)) if i < n)
        static_set = {i for i, _ in static_args}
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_set)
        static_kwargs = tuple(sorted((k, v) for k, v in kwargs.items()
                                     if k in self.static_argnames))
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        leaves, treedef = jax.tree.flatten((dyn_args, dyn_kwargs))
        return CallSignature(None, leaves, treedef, static_args, static_kwargs)

    def rebuild(self, sig: CallSignature, leaves) -> tuple[tuple, dict]:
        """The (args, kwargs) to call the function with, from traced leaves."""
        dyn_args, dyn_kwargs = jax.tree.unflatten(sig.treedef, leaves)
        if not sig.static_args and not sig.static_kwargs:
            return dyn_args, dyn_kwargs
        args = list(dyn_args)
        for i, value in sig.static_args:
            args.insert(i, value)
        kwargs = dict(dyn_kwargs)
        kwargs.update(sig.static_kwargs)
        return tuple(args), kwargs

    def donated_leaf_positions(self, sig: CallSignature, args: tuple) -> list[int]:
        """Positions (among the dynamic leaves) of the leaves of donated positional args."""
        if not self.donate_argnums:
            return []
        static_set = {i for i, _ in sig.static_args}
        n = len(args)
        donated = {i + n if i < 0 else i for i in self.donate_argnums}
        positions, offset = [], 0
        for i, arg in enumerate(args):
            if i in static_set:
                continue
            count = len(jax.tree.leaves(arg))
            if i in donated:
                positions.extend(range(offset, offset + count))
            offset += count
        return positions
