"""jit: compile a stateful function through the state IR, keeping every state update.

A call looks up the compiled program for its argument signature; on a miss it traces the
function into the state IR, runs the passes, lowers to a jaxpr and compiles it with XLA. A cached
call then does O(1) Python per state: read the states it was traced with, call the executable
positionally (donating the old buffers of states it overwrites), store the new values back.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any, Callable, Sequence

import jax

from .. import _state
from .._compat import outside_any_jax_trace
from .._errors import TracerLeakError
from .._state import State
from ..ir import Graph, trace_flat
from ._arguments import ArgumentSpec, CallSignature, leaf_aval
from ._pipeline import compile_graph, StatefulProgram

__all__ = ['jit', 'JittedFunction']

_ArrayImpl = type(jax.numpy.zeros(()))
_Tracer = jax.core.Tracer
_getrefcount = sys.getrefcount
# References to a state's buffer while we check it: the State, our list, getrefcount's argument.
_UNSHARED_REFCOUNT = 3


class _CompiledCall:
    """One compiled program for one argument signature and one set of state avals."""

    def __init__(self, program: StatefulProgram, jitted_name: str, donated_args: list[int]):
        lowered = program.lowered
        self.program = program
        self.read_states = tuple(lowered.read_states)
        self.written_states = tuple(lowered.written_states)
        self.state_avals = tuple((s, s.treedef, s.avals) for s in program.states)
        self.epoch = _state.STRUCTURE_EPOCH[0]
        self.out_tree = program.out_tree
        self.num_outputs = lowered.num_outputs
        self.consts = list(lowered.closed_jaxpr.consts)
        self.single_leaf_reads = all(s.treedef.num_nodes == 1 for s in self.read_states)
        self.single_leaf_writes = all(s.treedef.num_nodes == 1 for s in self.written_states)
        self.written_leaf_counts = [s.treedef.num_leaves for s in self.written_states]

        # Donate the old buffer of every state that is both read and overwritten.
        written = set(self.written_states)
        state_leaf_positions, offset = [], 0
        for s in self.read_states:
            count = s.treedef.num_leaves
            if s in written:
                state_leaf_positions.extend(range(offset, offset + count))
            offset += count
        self.donated_state_leaves = tuple(state_leaf_positions)
        num_consts, num_state_leaves = len(self.consts), offset
        self.num_state_leaves = num_state_leaves
        self._donate_all = tuple(num_consts + i for i in state_leaf_positions) + tuple(
            num_consts + num_state_leaves + i for i in donated_args)
        self._donate_args_only = tuple(num_consts + num_state_leaves + i for i in donated_args)

        jaxpr = lowered.closed_jaxpr.jaxpr

        def run(*flat):
            return jax.core.eval_jaxpr(jaxpr, flat[:num_consts], *flat[num_consts:])

        run.__name__ = jitted_name
        self._run = run
        self._avals = ([leaf_aval(c) for c in self.consts] +
                       [jax.ShapeDtypeStruct(a.shape, a.dtype) for s in self.read_states
                        for a in s.avals] + list(program.arg_avals))
        start = time.perf_counter()
        self.lowered_jax = jax.jit(run, donate_argnums=self._donate_all).lower(*self._avals)
        self.executable = self.lowered_jax.compile()
        program.timings['compile'] = time.perf_counter() - start
        self._executable_no_donation = None

    def still_valid(self) -> bool:
        """Whether every state still has the tree and avals it was traced with."""
        for state, treedef, avals in self.state_avals:
            if state._treedef != treedef or state._avals != avals:
                return False
        self.epoch = _state.STRUCTURE_EPOCH[0]
        return True

    def _no_donation(self):
        if self._executable_no_donation is None:
            self._executable_no_donation = jax.jit(
                self._run, donate_argnums=self._donate_args_only).lower(*self._avals).compile()
        return self._executable_no_donation

    def __call__(self, arg_leaves: list):
        if self.single_leaf_reads:
            state_leaves = [s._value for s in self.read_states]
        else:
            state_leaves = []
            for s in self.read_states:
                state_leaves.extend(jax.tree.leaves(s._value))
        executable = self.executable
        for i in self.donated_state_leaves:
            # A buffer someone else still holds (the user kept `old = state.value`, or two
            # states share an array) must not be donated: XLA would delete it under them.
            if _getrefcount(state_leaves[i]) > _UNSHARED_REFCOUNT or \
                    type(state_leaves[i]) is not _ArrayImpl:
                executable = self._no_donation()
                break
        if self.consts:
            outs = executable(*self.consts, *state_leaves, *arg_leaves)
        else:
            outs = executable(*state_leaves, *arg_leaves)
        del state_leaves
        n = self.num_outputs
        if outs and type(outs[0]) is not _ArrayImpl and isinstance(outs[0], _Tracer):
            raise TracerLeakError(_foreign_trace_message(self.program.name))
        if self.single_leaf_writes:
            for state, value in zip(self.written_states, outs[n:]):
                state._value = value
        else:
            offset = n
            for state, count in zip(self.written_states, self.written_leaf_counts):
                state._value = state._treedef.unflatten(outs[offset:offset + count])
                offset += count
        return self.out_tree.unflatten(outs[:n])


def _foreign_trace_message(name: str) -> str:
    return (f'{name} (a brainstate.transform.jit function) was called inside a raw JAX '
            f'transform such as `jax.jit`: its state updates would be lost, and the states '
            f'would hold tracers. Use brainstate.transform.jit (or .vmap, .grad) for the outer '
            f'function too.')


class JittedFunction:
    """A function compiled by :func:`jit`. Call it like the original function.

    Attributes and methods:
      ir(*args, **kwargs): the state IR Graph of the call, as traced (before passes).
      lower(*args, **kwargs): JAX's ``Lowered`` object of the compiled program.
      clear_cache(): drop every compiled program.
    """

    def __init__(self, fun: Callable, static_argnums=(), static_argnames=(), donate_argnums=(),
                 passes=None):
        self.fun = fun
        self.args = ArgumentSpec(fun, static_argnums, static_argnames, donate_argnums)
        self.passes = passes
        self._cache: dict[Any, list[_CompiledCall]] = {}
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **kwargs):
        if _state.TRACE_STACK:
            # Inside another brainstate transform: become part of its trace.
            return self.fun(*args, **kwargs)
        if not outside_any_jax_trace():
            raise TracerLeakError(_foreign_trace_message(self.args.fun_name))
        sig = self.args.signature(args, kwargs)
        entries = self._cache.get(sig.key)
        if entries is not None:
            entry = entries[-1]
            if entry.epoch == _state.STRUCTURE_EPOCH[0] or entry.still_valid():
                return entry(sig.leaves)
            for entry in entries[:-1]:
                if entry.still_valid():
                    return entry(sig.leaves)
        return self._build(sig, args)(sig.leaves)

    def _build(self, sig: CallSignature, args: tuple) -> _CompiledCall:
        program = compile_graph(self.fun, self.args, sig, passes=self.passes)
        entry = _CompiledCall(program, self.args.fun_name,
                              self.args.donated_leaf_positions(sig, args))
        self._cache.setdefault(sig.key, []).append(entry)
        return entry

    def _entry(self, args, kwargs) -> _CompiledCall:
        sig = self.args.signature(args, kwargs)
        for entry in self._cache.get(sig.key, []):
            if entry.still_valid():
                return entry
        return self._build(sig, args)

    def ir(self, *args, **kwargs) -> Graph:
        """The state IR of ``fun(*args, **kwargs)`` as traced, before any pass."""
        sig = self.args.signature(args, kwargs)
        program = compile_graph(self.fun, self.args, sig, passes=self.passes, lower=False)
        return program.traced_graph

    def optimized_ir(self, *args, **kwargs) -> Graph:
        """The state IR after the passes, as it is lowered."""
        return self._entry(args, kwargs).program.graph

    def lower(self, *args, **kwargs):
        """JAX's ``Lowered`` object for the compiled program (``.as_text()`` shows StableHLO)."""
        return self._entry(args, kwargs).lowered_jax

    def timings(self, *args, **kwargs) -> dict:
        """Seconds spent tracing, in passes, lowering and compiling this call's program."""
        return dict(self._entry(args, kwargs).program.timings)

    def clear_cache(self):
        """Forget every compiled program; the next call traces and compiles again."""
        self._cache.clear()

    def __get__(self, obj, objtype=None):
        # A jitted method: the instance is not an array argument; its states are read like any
        # other. Each instance gets its own compiled function, kept on the instance.
        if obj is None:
            return self
        bound = obj.__dict__.setdefault('_bs_bound_jits', {})
        jitted = bound.get(id(self))
        if jitted is None:
            method = functools.partial(self.fun, obj)
            functools.update_wrapper(method, self.fun)
            spec = self.args
            jitted = bound[id(self)] = JittedFunction(
                method, tuple(i - 1 for i in spec.static_argnums if i > 0),
                spec.static_argnames, tuple(i - 1 for i in spec.donate_argnums if i > 0),
                self.passes)
        return jitted

    def __repr__(self):
        return f'<brainstate.transform.jit of {self.args.fun_name}>'


def jit(fun: Callable | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = (),
        passes=None):
    """Compile a function that reads and writes States; its state updates are kept.

    Args:
      fun: the function. ``jit`` can also be used bare as a decorator, or with keyword
        arguments only (``@jit(static_argnums=1)``).
      static_argnums / static_argnames: arguments that are Python values (hashable), not arrays;
        each distinct value compiles its own program.
      donate_argnums: positional arguments whose buffers XLA may reuse for outputs. Written
        states are donated automatically when no one else holds their old buffer.
      passes: the optimization pipeline (see ``brainstate.passes``); ``None`` for the default.

    Returns:
      A :class:`JittedFunction`. Calls are cached per argument shapes/dtypes, static values
      and the shapes/dtypes of the states involved: changing a state's shape retraces.

    Example::

        @brainstate.transform.jit
        def step(x):
            net.count.value = net.count.value + 1
            return x @ net.w.value

    Under raw ``jax.jit`` the write to ``net.count`` would be lost (brainstate raises an error
    explaining this instead); here it is kept.
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames,
                                 donate_argnums=donate_argnums, passes=passes)
    return JittedFunction(fun, static_argnums, static_argnames, donate_argnums, passes)
