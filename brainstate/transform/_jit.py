"""jit: compile a stateful function through the state IR, keeping every state update.

How a call runs. Each compiled entry is one ``jax.jit`` over a *pure* function of
``(donated state leaves, other state leaves, *args, **kwargs)``, for a fixed list of states. So a
cached call costs what a raw ``jax.jit`` call costs (JAX's C++ dispatch checks the argument and
state shapes) plus O(1) Python per state: read the states' buffers into two lists, call, store
the new buffers back. Written states' old buffers are donated, so updates happen in place.

When JAX traces the pure function (first call, or new argument or state shapes), it runs our
pipeline: trace the user function into the state IR, run the passes, lower to a jaxpr and
evaluate that jaxpr on JAX's tracers. The very first trace is done once up front, to learn which
states the function reads and writes; it is then reused, not repeated.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Callable, Sequence

import jax

from .. import _state
from .._errors import TracerLeakError
from ..ir import Graph
from ._arguments import ArgumentSpec
from ._pipeline import StatefulProgram, compile_graph

__all__ = ['jit', 'JittedFunction']

_ArrayImpl = type(jax.numpy.zeros(()))
# The same list objects as in _state (mutated in place, never rebound): one global lookup each
# on the per-call path instead of an attribute lookup.
_TRACE_STACK = _state.TRACE_STACK
_STRUCTURE_EPOCH = _state.STRUCTURE_EPOCH
_KeyArray = type(jax.random.key(0))
_Tracer = jax.core.Tracer
_getrefcount = sys.getrefcount
# References to an unshared state buffer while we check it: the State, our list, the loop
# variable and getrefcount's argument.
_UNSHARED_REFCOUNT = 4
# A typed PRNG key wraps one uint32 buffer; that one must be unshared too (the key, the
# getattr result passed to getrefcount).
_UNSHARED_KEY_DATA_REFCOUNT = 2


class _StateSetChanged(Exception):
    """Raised while retracing when the function now touches other states than the entry was
    built for (Python control flow on shapes chose other states): the call takes the slow path."""


def _donatable(leaf) -> bool:
    """Whether XLA may take this state buffer: nobody but the State holds it."""
    kind = type(leaf)
    if kind is _ArrayImpl:
        return True
    if kind is _KeyArray:
        return _getrefcount(getattr(leaf, '_base_array', None)) <= _UNSHARED_KEY_DATA_REFCOUNT
    return False


class _Entry:
    """One ``jax.jit`` over the pure form of the function, for a fixed list of states."""

    def __init__(self, owner: 'JittedFunction', program: StatefulProgram):
        lowered = program.lowered
        self.owner = owner
        self.read_states = tuple(lowered.read_states)
        self.written_states = tuple(lowered.written_states)
        written = set(self.written_states)
        # Read-and-written states are donated; read-only ones are passed as they are.
        self.donated_states = tuple(s for s in self.read_states if s in written)
        self.kept_states = tuple(s for s in self.read_states if s not in written)
        self.pending: StatefulProgram | None = program
        self.last_program = program
        spec = owner.args
        static = tuple(i + 2 for i in spec.static_argnums)
        user_donated = tuple(i + 2 for i in spec.donate_argnums)
        options = dict(static_argnums=static, static_argnames=spec.static_argnames)
        def pure(donated, kept, *args, **kwargs):
            return self._pure(donated, kept, *args, **kwargs)

        pure.__name__ = pure.__qualname__ = spec.fun_name
        self._pure_fn = pure
        self.jitted = jax.jit(pure, donate_argnums=(0,) + user_donated, **options)
        self._jitted_keep_states = None
        self._options = dict(options, donate_argnums=user_donated)
        self.refresh_layout()

    # -- the per-call path ---------------------------------------------------------------------

    def refresh_layout(self):
        """Recompute what depends on the states' tree structures (after one of them changed)."""
        self.epoch = _state.STRUCTURE_EPOCH[0]
        states = self.read_states + self.written_states
        self.single_leaf = all(s._treedef.num_nodes == 1 and s._treedef.num_leaves == 1
                               for s in states)
        self.written_leaf_counts = [s._treedef.num_leaves for s in self.written_states]

    @property
    def jitted_keep_states(self):
        """The same function without state donation, for calls where a buffer is shared."""
        if self._jitted_keep_states is None:
            self._jitted_keep_states = jax.jit(self._pure_fn, **self._options)
        return self._jitted_keep_states

    def __call__(self, args: tuple, kwargs: dict):
        if self.epoch != _STRUCTURE_EPOCH[0]:
            self.refresh_layout()
        if self.single_leaf:
            donated = [s._value for s in self.donated_states]
            kept = [s._value for s in self.kept_states]
        else:
            donated, shared_container, value = [], False, None
            for s in self.donated_states:
                value = s._value
                # A container the user kept (`old = state.value`, a dict) holds the leaves
                # too: the State's attribute, `value` and getrefcount's argument are ours.
                shared_container |= _getrefcount(value) > 3
                donated.extend(jax.tree.leaves(value))
            del value
            kept = [leaf for s in self.kept_states for leaf in jax.tree.leaves(s._value)]
        jitted = self.jitted_keep_states if not self.single_leaf and shared_container \
            else self.jitted
        for leaf in donated:
            # A buffer someone else still holds (the user kept `old = state.value`, two states
            # share an array, or it is also an argument) must not be donated: XLA would delete
            # it under them.
            if _getrefcount(leaf) > _UNSHARED_REFCOUNT or (
                    type(leaf) is not _ArrayImpl and not _donatable(leaf)):
                jitted = self.jitted_keep_states
                break
        # (An empty **kwargs would cost JAX's dispatch ~2us: pass it only when there is one.)
        if kwargs:
            results, written = jitted(donated, kept, *args, **kwargs)
        else:
            results, written = jitted(donated, kept, *args)
        if written and isinstance(written[0], _Tracer):
            raise TracerLeakError(_foreign_trace_message(self.owner.args.fun_name))
        if self.single_leaf:
            for state, value in zip(self.written_states, written):
                state._value = value
        else:
            offset = 0
            for state, count in zip(self.written_states, self.written_leaf_counts):
                state._value = state._treedef.unflatten(written[offset:offset + count])
                offset += count
        return results

    # -- what JAX traces -----------------------------------------------------------------------

    def _pure(self, donated, kept, *args, **kwargs):
        """The function as a pure one; runs only while JAX traces it."""
        owner = self.owner
        program, self.pending = self.pending, None
        if program is None:  # JAX retraces: new argument or state shapes
            sig = owner.args.trace_signature(args, kwargs)
            program = compile_graph(owner.fun, owner.args, sig, passes=owner.passes)
            lowered = program.lowered
            if (tuple(lowered.read_states) != self.read_states or
                    tuple(lowered.written_states) != self.written_states):
                raise _StateSetChanged()
            self.last_program = program
        lowered = program.lowered
        by_state = {}
        for states, leaves in ((self.donated_states, donated), (self.kept_states, kept)):
            offset = 0
            for state in states:
                count = state._treedef.num_leaves
                by_state[state] = leaves[offset:offset + count]
                offset += count
        state_leaves = [leaf for s in self.read_states for leaf in by_state[s]]
        arg_leaves = owner.args.trace_signature(args, kwargs).leaves
        closed = lowered.closed_jaxpr
        outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *state_leaves, *arg_leaves)
        n = lowered.num_outputs
        return program.out_tree.unflatten(outs[:n]), list(outs[n:])

    def state_avals(self):
        def avals(states):
            return [jax.ShapeDtypeStruct(a.shape, a.dtype) for s in states for a in s.avals]
        return avals(self.donated_states), avals(self.kept_states)


def _foreign_trace_message(name: str) -> str:
    return (f'{name} (a brainstate.transform.jit function) was called inside a raw JAX '
            f'transform such as `jax.jit`: its state updates would be lost, and the states '
            f'would hold tracers. Use brainstate.transform.jit (or .vmap, .grad) for the outer '
            f'function too.')


class JittedFunction:
    """A function compiled by :func:`jit`. Call it like the original function.

    Methods:
      ir(*args, **kwargs): the state IR Graph of the call, as traced (before passes).
      optimized_ir(*args, **kwargs): the Graph after the passes, as lowered.
      lower(*args, **kwargs): JAX's ``Lowered`` object (``.as_text()`` shows StableHLO).
      timings(*args, **kwargs): seconds spent tracing, in passes, lowering and compiling.
      clear_cache(): drop every compiled program.
    """

    def __init__(self, fun: Callable, static_argnums=(), static_argnames=(), donate_argnums=(),
                 passes=None):
        self.fun = fun
        self.args = ArgumentSpec(fun, static_argnums, static_argnames, donate_argnums)
        self.passes = passes
        self._entries: list[_Entry] = []
        self._last: _Entry | None = None
        # Not fun.__dict__: a wrapped transform (e.g. a VmappedFunction) has its own `.fun`,
        # which would replace ours and silently drop that transform.
        functools.update_wrapper(self, fun, updated=())

    def __call__(self, *args, **kwargs):
        if _TRACE_STACK:
            # Inside another brainstate transform: become part of its trace.
            return self.fun(*args, **kwargs)
        entry = self._last
        if entry is not None:
            try:
                return entry(args, kwargs)
            except _StateSetChanged:
                pass
            except (TypeError, ValueError):
                # JAX's message for a bad argument is generic; ours names it and says what to
                # do. If the arguments are fine, the error was the user's: re-raise it.
                self.args.signature(args, kwargs)
                raise
        return self._slow_call(args, kwargs)

    def _entry_for(self, args, kwargs) -> _Entry:
        """Trace the call once and find (or make) the entry for the states it touches."""
        sig = self.args.signature(args, kwargs)
        program = compile_graph(self.fun, self.args, sig, passes=self.passes)
        lowered = program.lowered
        for entry in self._entries:
            if (entry.read_states == tuple(lowered.read_states) and
                    entry.written_states == tuple(lowered.written_states)):
                entry.pending = program
                return entry
        entry = _Entry(self, program)
        self._entries.append(entry)
        return entry

    def _slow_call(self, args, kwargs):
        entry = self._entry_for(args, kwargs)
        self._last = entry
        try:
            return entry(args, kwargs)
        finally:
            entry.pending = None

    def ir(self, *args, **kwargs) -> Graph:
        """The state IR of ``fun(*args, **kwargs)`` as traced, before any pass."""
        sig = self.args.signature(args, kwargs)
        return compile_graph(self.fun, self.args, sig, passes=self.passes,
                             lower=False).traced_graph

    def optimized_ir(self, *args, **kwargs) -> Graph:
        """The state IR after the passes, as it is lowered."""
        sig = self.args.signature(args, kwargs)
        return compile_graph(self.fun, self.args, sig, passes=self.passes).graph

    def lower(self, *args, **kwargs):
        """JAX's ``Lowered`` object for the compiled program (``.as_text()`` shows StableHLO)."""
        entry = self._entry_for(args, kwargs)
        try:
            return entry.jitted.lower(*entry.state_avals(), *args, **kwargs)
        finally:
            entry.pending = None

    def timings(self, *args, **kwargs) -> dict:
        """Seconds spent tracing, in passes, lowering (to a jaxpr, then to StableHLO) and
        compiling with XLA, measured afresh for this call signature."""
        entry = self._entry_for(args, kwargs)
        timings = dict(entry.pending.timings)
        try:
            start = time.perf_counter()
            lowered = entry.jitted.lower(*entry.state_avals(), *args, **kwargs)
            timings['lower_to_hlo'] = time.perf_counter() - start
            start = time.perf_counter()
            lowered.compile()
            timings['compile'] = time.perf_counter() - start
        finally:
            entry.pending = None
        return timings

    def clear_cache(self):
        """Forget every compiled program; the next call traces and compiles again."""
        self._entries.clear()
        self._last = None

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
    explaining this instead); here it is kept. As with ``jax.jit``, Python side effects (such as
    creating new States) happen only when the function is traced.
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames,
                                 donate_argnums=donate_argnums, passes=passes)
    return JittedFunction(fun, static_argnums, static_argnames, donate_argnums, passes)
