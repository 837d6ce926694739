"""jit: compile a stateful function through the state IR, keeping every state update.

How a call runs. Each compiled entry is one ``jax.jit`` over a *pure* function of
``(*donated state leaves, *other state leaves, *args, **kwargs)`` returning ``(result, *written
state leaves)``, for a fixed list of states: flat, so JAX's dispatch has no lists of states to
flatten and compare per call. So a cached call costs what a raw ``jax.jit`` call costs (JAX's
C++ dispatch checks the argument and state shapes) plus O(1) Python per state: pass the states'
buffers, call, store the new buffers back. Written states' old buffers are donated, so updates
happen in place.

When JAX traces the pure function (first call, or new argument or state shapes), it runs our
pipeline: trace the user function into the state IR, run the passes, lower to a jaxpr and
evaluate that jaxpr on JAX's tracers. The very first trace is done once up front, to learn which
states the function reads and writes; it is then reused, not repeated.
"""

from __future__ import annotations

import functools
import inspect
import operator
import os
import sys
import threading
import time
from typing import Callable, Sequence

import jax

from .. import _state
from .._state_pack import LIVE_PACKS as _LIVE_PACKS
from .._state_pack import (auto_pack, auto_pack_candidates, auto_pack_enabled, AUTO_PACK,
                           pack_analyses)
from .._compat import DEBUG_CHECKS_SEEN, hide_brainstate_frames, outside_any_jax_trace
from ..environ import _view_stamp
from .._errors import ArgumentTypeError, TracerLeakError
from ..ir import Graph
from ..passes._default_pipeline import OPEN_BLOCKS as _OPEN_BLOCKS
from ..ir._eval import bind_as_call
from ..ir._gc import paused_gc
from ._arguments import ArgumentSpec, CallSignature
from ._program import StatefulProgram, trace_program
from ._state_io import (STATE_LOCK, call_may_donate, check_concrete_states,
                        check_donated_arguments, copy_exposed,
                        foreign_trace_message, program_may_donate)

__all__ = ['jit', 'JittedFunction']

# The same objects as in _state (mutated in place, never rebound): one global lookup each on
# the per-call path. The trace stack is per thread (``_TRACE_STACK.stack``).
_TRACE_STACK = _state.TRACE_STACK
_STRUCTURE_EPOCH = _state.STRUCTURE_EPOCH
_CALL_EPOCH = _state.CALL_EPOCH
_Tracer = jax.core.Tracer
_stored_value = operator.attrgetter('_value')
_current_value = operator.attrgetter('value')
_acquire = STATE_LOCK.acquire
_release = STATE_LOCK.release
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _strong_array(leaf):
    """``leaf`` as a JAX array (or tracer) of a definite, not weak, dtype."""
    if not isinstance(leaf, (jax.Array, _Tracer)):
        leaf = jax.numpy.asarray(leaf)
    if leaf.aval.weak_type:
        leaf = jax.lax.convert_element_type(leaf, leaf.dtype)
    return leaf


def _abstract_tracers(tree):
    """Tracers of an enclosing trace replaced by ShapeDtypeStructs (ahead-of-time staging
    inside another transform looks at shapes only)."""
    def abstract(x):
        if isinstance(x, _Tracer):
            return jax.ShapeDtypeStruct(x.aval.shape, x.aval.dtype,
                                        weak_type=getattr(x.aval, 'weak_type', False))
        return x
    return jax.tree.map(abstract, tree)


_UNSET = object()


def _given(head: tuple, more: tuple) -> tuple:
    """The positional arguments a generated cached call received: its named parameters that
    were given (the rest hold the marker ``_UNSET``), then the extra ones."""
    return tuple(a for a in head if a is not _UNSET) + more


class _StateSetChanged(Exception):
    """Raised when a cached entry no longer fits: the function now touches other states (Python
    control flow on shapes chose other states), or a state's tree structure changed. The call
    takes the slow path, which finds or builds the entry that fits."""


def _layout_of(states) -> tuple:
    # A state's tree structure, its sharding (see _state_sharding.py: the compiled program
    # returns each written state in its sharding) and its class (packing a state into a buffer,
    # or unpacking it, swaps its class; see brainstate/_state_pack.py).
    return tuple((s._treedef, s._shardings, type(s)) for s in states)


class _Entry:
    """One ``jax.jit`` over the pure form of the function, for a fixed list of states and their
    tree structures.

    ``consts_as_args``: the program's constants are an argument of the compiled function instead
    of being baked into it, so programs whose traces differ only in constant values share one
    executable (the eager runner keys its cache so).
    """

    def __init__(self, owner: 'JittedFunction', program: StatefulProgram,
                 consts_as_args: bool = False):
        lowered = program.lowered
        self.owner = owner
        self.read_states = tuple(lowered.read_states)
        self.written_states = tuple(lowered.written_states)
        written = set(self.written_states)
        # Read-and-written states are donated; read-only ones are passed as they are.
        self.donated_states = tuple(s for s in self.read_states if s in written)
        self.kept_states = tuple(s for s in self.read_states if s not in written)
        self.layout = _layout_of(self.read_states + self.written_states)
        self.state_set_epoch = _state.STATE_SET_EPOCH[0]
        self._pending = threading.local()
        self.pending = program
        self.last_program = program
        # The brainstate.environ settings the traces of this entry read: it is valid while
        # they keep their values (another entry serves other values).
        self.environ_reads = program.environ_reads.copy()
        self.consts_as_args = consts_as_args
        # The generated cached call runs while ``armed`` is the current CALL_EPOCH (see arm).
        self.armed = None
        self.may_donate = program_may_donate(lowered.closed_jaxpr) and bool(self.donated_states)
        # States the program writes with other avals than they hold (vmap's out_states): their
        # stored avals change with the value.
        out_avals = lowered.closed_jaxpr.out_avals[lowered.num_outputs:]
        self.reshaped, offset = [], 0
        for state in self.written_states:
            count = state._treedef.num_leaves
            if tuple(a.strip_weak_type() for a in out_avals[offset:offset + count]) != \
                    tuple(a.strip_weak_type() for a in state._avals):
                self.reshaped.append(state)
            offset += count
        if self.reshaped:
            self.may_donate = False  # a buffer of another shape cannot hold the result
        spec = owner.args
        # The pure function's positional arguments: the donated states' leaves, the other read
        # states' leaves, the constants (one list) where they are an argument, the user's.
        self.num_donated = sum(s._treedef.num_leaves for s in self.donated_states)
        self.num_kept = sum(s._treedef.num_leaves for s in self.kept_states)
        shift = self.num_donated + self.num_kept + (1 if consts_as_args else 0)
        self.num_leading = shift
        static = tuple(i + shift for i in spec.static_argnums)
        user_donated = tuple(i + shift for i in spec.donate_argnums)
        options = dict(static_argnums=static, static_argnames=spec.static_argnames)
        # Written states come back in their own sharding (a step never moves a state).
        written_shardings = []
        for state in self.written_states:
            count = state._treedef.num_leaves
            kept = state._shardings is not None and state not in self.reshaped
            written_shardings.extend(state._shardings if kept else (None,) * count)
        options.update(owner.jax_jit_options(shift, written_shardings))
        def pure(*flat, **kwargs):
            return self._pure(flat, kwargs)

        pure.__name__ = pure.__qualname__ = owner.name or spec.fun_name
        self._pure_fn = pure
        self._donate_argnums = tuple(range(self.num_donated)) + user_donated
        self.jitted = jax.jit(pure, donate_argnums=self._donate_argnums, **options)
        self._jitted_keep_states = None
        self._options = dict(options, donate_argnums=user_donated)
        self.refresh_layout()
        self._fast_calls = {}
        self._packing = False
        self._count_calls_to_pack()

    @property
    def pending(self) -> StatefulProgram | None:
        """The program this thread just traced, for JAX's trace of the pure function to use
        (per thread: two threads may trace the same function for different shapes at once)."""
        return getattr(self._pending, 'program', None)

    @pending.setter
    def pending(self, program: StatefulProgram | None):
        self._pending.program = program

    # -- the per-call path ---------------------------------------------------------------------

    def trust_states(self):
        """A fresh trace of the function touched exactly this entry's states."""
        self.state_set_epoch = _state.STATE_SET_EPOCH[0]

    def refresh_layout(self):
        """Recheck what depends on the states' tree structures (after any of them changed)."""
        states = self.read_states + self.written_states
        if _layout_of(states) != self.layout or \
                self.state_set_epoch != _state.STATE_SET_EPOCH[0]:
            # A Module's State attribute replaced: the function may now touch other States.
            raise _StateSetChanged()
        self.epoch = _state.STRUCTURE_EPOCH[0]
        self.single_leaf = all(s._treedef.num_nodes == 1 and s._treedef.num_leaves == 1
                               for s in states)
        self.written_leaf_counts = [s._treedef.num_leaves for s in self.written_states]

    def arm(self, epoch: int):
        """Let the generated cached call run until the next event that could make this entry
        unfit (:data:`brainstate._state.CALL_EPOCH` moves past ``epoch``, the value read before
        this entry was checked: a state's structure, class or sharding, the set of States, a
        brainstate trace starting, JAX's debug checks switched on). Only while no brainstate
        trace runs in any thread, no ``passes.default_pipeline`` block is open in any thread
        unless the entry's programs do not follow the pipeline (threads may then see different
        pipelines; the cached call does not look at the thread) and, for an entry that donates,
        while JAX's NaN/Inf checks were never on (then each call asks whether it may donate)."""
        if not _state._TRACES_ACTIVE and not (
                _OPEN_BLOCKS[0] and self.environ_reads.pipeline is not None) and \
                not (self.may_donate and DEBUG_CHECKS_SEEN[0]):
            self.armed = epoch

    def add_environ_reads(self, reads):
        """Count the settings another trace of this entry read as read by the entry. An entry
        that read none until now gets a cached call that checks them (made anew)."""
        had = bool(self.environ_reads.values)
        if self.environ_reads.pipeline is None and reads.pipeline is not None:
            self.armed = None  # (it now follows the pipeline: see arm)
        self.environ_reads.merge(reads)
        if not had and self.environ_reads.values:
            self._fast_calls.clear()
            _state.recheck_cached_calls()

    def fast_call(self, nargs: int):
        """The generated cached call of this entry for ``nargs`` positional arguments (made
        once per count), or None where calls take the general path (see :meth:`_make_fast_call`)."""
        if self._packing:  # its calls are counted on the general path (see below)
            return None
        fast = self._fast_calls.get(nargs, _UNSET)
        if fast is _UNSET:
            fast = self._fast_calls[nargs] = self._make_fast_call(nargs)
        return fast

    def _make_fast_call(self, nargs: int):
        """The whole cached call of this entry, generated for its states and for ``nargs``
        positional arguments; None for an entry the general path must handle
        (:meth:`JittedFunction._general_call`).

        The generated ``fast`` becomes the JittedFunction's ``_call`` while this entry is its
        latest: calling the JittedFunction runs it directly, one Python frame above JAX's C++
        dispatch. It is made for the common entry (one array per state, no constants as
        arguments, no argument donation, no state changing its avals), with each State bound
        to a name and the reads, the call and the stores unrolled into straight-line code; its
        positional parameters are named (``*args`` would cost a tuple in and one out, about a
        third of our time per call). Its first line checks, in O(1), that nothing the general
        path handles differently applies: another argument count or keyword arguments; the
        entry not armed at the current ``CALL_EPOCH`` (see :meth:`arm`: a brainstate trace
        running, a state's structure or the set of states changed, JAX's NaN/Inf checks
        switched on, since the general path last checked it); for an entry whose traces read
        ``brainstate.environ`` settings, a setting changed since they last held (the view
        stamp: settings are per thread). Any of them: the general path, which checks, runs
        and arms the entry again."""
        if (not self.single_leaf or self.consts_as_args or self.reshaped or
                self.owner.args.donate_argnums):
            return None
        owner = self.owner
        donate = self.may_donate
        names = {'entry': self, 'CALL': _CALL_EPOCH,
                 'ER': self.environ_reads, 'view_stamp': _view_stamp,
                 'acquire': _acquire, 'release': _release,
                 'jitted': self.jitted if donate else self.jitted_keep_states,
                 'Tracer': _Tracer, 'leak': self._leaked,
                 'StateSetChanged': _StateSetChanged, 'general': owner._general_call,
                 'retrace': owner._retrace_call, 'explain': owner._explain_failure,
                 'M': _UNSET, 'given': _given}
        donated = [f'D{i}' for i in range(len(self.donated_states))]
        kept = [f'K{i}' for i in range(len(self.kept_states))]
        written = [f'W{i}' for i in range(len(self.written_states))]
        names.update(zip(donated, self.donated_states))
        names.update(zip(kept, self.kept_states))
        names.update(zip(written, self.written_states))
        params = [f'a{i}' for i in range(nargs)]
        # Positional-only, defaulting to a marker: fewer arguments show as a marker, more in
        # ``more``, keywords (also one named like a parameter) in ``kwargs``.
        signature = ''.join(f'{a}=M, ' for a in params) + ('/, ' if params else '')
        args = f'({"".join(f"{a}, " for a in params)})'
        donated_set = set(self.donated_states) if donate else set()
        checks = ['more', 'kwargs'] + ([f'{params[-1]} is M'] if params else []) + [
            'entry.armed != CALL[0]']
        if self.environ_reads.values:  # (an entry that gains some is made anew)
            checks.append('ER.stamp != view_stamp()')
        lines = [
            f'def fast({signature}*more, **kwargs):',
            f'    if {" or ".join(checks)}:',
            f'        return general(given({args}, more), kwargs)',
            '    try:',
            '        acquire()',
            '        try:',
        ]
        values = [f'v{i}' for i in range(len(written))]
        inputs = [f'{s}._value' for s in donated + kept] + params
        body = [f'results, {"".join(f"{v}, " for v in values)}= jitted({", ".join(inputs)})']
        if written:
            body += ['if isinstance(v0, Tracer):',
                     '    leak()']
            # A donated state was not exposed (checked below) and nobody holds its new buffer:
            # its flag stays False. Others are cleared, as the general path does.
            body += [f'{w}._value = {v}' if state in donated_set else
                     f'{w}._value = {v}; {w}._exposed = False'
                     for w, v, state in zip(written, values, self.written_states)]
        if donate:
            # Someone may hold a buffer to donate: the general path copies it first.
            exposed = ' or '.join(f'{d}._exposed' for d in donated)
            lines += [f'            if {exposed}:',
                      f'                results = entry({args}, kwargs)',
                      '            else:']
            lines += [f'                {line}' for line in body]
        else:
            lines += [f'            {line}' for line in body]
        lines += [
            '        finally:',
            '            release()',
            '    except StateSetChanged:',
            f'        return retrace({args}, kwargs)',
            '    except Exception as error:',
            f'        explain(entry, error, {args}, kwargs)',
            '        raise',
            '    return results',
        ]
        # Named as a file in this package, so tracebacks leave it out with our other frames.
        filename = f'{_PACKAGE_DIR}<cached call of {owner.args.fun_name}>'
        source = '\n'.join(lines)
        exec(compile(source, filename, 'exec'), names)
        names['fast'].source = source  # (to read what runs)
        return names['fast']

    # -- automatic packing (brainstate/_state_pack.py) ------------------------------------------

    def _count_calls_to_pack(self):
        """An entry over many small states of one dtype (``auto_pack_candidates``) counts its
        cached calls (on the general path: it has no generated call meanwhile); at the
        ``after_calls``-th it packs them (``auto_pack``) and the call retraces, once, to read
        and write their buffer. Other entries are left as they are."""
        owner = self.owner
        if self.consts_as_args or not auto_pack_enabled(owner.pack_states):
            return
        least, self._pack_after = owner.auto_pack_thresholds()
        states = self.read_states + self.written_states
        if len(states) < least or not auto_pack_candidates(states, least):
            return
        self._cached_calls = 0
        self._packing = True
        # Until then its calls do not donate the states: XLA compiles a program with ~200
        # aliased buffers ~5% slower (mlp100: +15-20 ms of a 350 ms compile), and the packed
        # program compiled at the pack donates its buffer anyway.
        self._donates_unpacked = self.may_donate
        self.may_donate = False

    def count_then_pack(self):
        """Count a cached call of a packing candidate; raise ``_StateSetChanged`` when it has
        just packed its states (the caller then traces the packed program)."""
        self._cached_calls += 1
        if self._cached_calls >= self._pack_after:
            if not outside_any_jax_trace():
                self._cached_calls -= 1  # under a raw JAX transform: pack at a later call
                return
            self._packing = False
            self.may_donate = self._donates_unpacked
            self._fast_calls.clear()
            owner = self.owner
            if auto_pack_enabled(owner.pack_states) and auto_pack(
                    self.read_states + self.written_states, owner.auto_pack_thresholds()[0]):
                raise _StateSetChanged()

    def _leaked(self):
        raise TracerLeakError(foreign_trace_message(
            f'{self.owner.args.fun_name} (a brainstate.transform.jit function)',
            self.written_states))

    @property
    def jitted_keep_states(self):
        """The same function without state donation, for programs that can fail after dispatch
        (host callbacks) and for calls under ``jax_debug_nans``."""
        if self._jitted_keep_states is None:
            self._jitted_keep_states = jax.jit(self._pure_fn, **self._options)
        return self._jitted_keep_states

    def __call__(self, args: tuple, kwargs: dict, consts=None, compiled: bool = True):
        """Run the program with state I/O. ``compiled=False`` evaluates its jaxpr op by op
        (JAX's eager dispatch, no XLA compile of the whole program, no donation): the eager
        runner's choice for a program seen once. Arms the entry (:meth:`arm`) when it ran."""
        epoch = _CALL_EPOCH[0]  # (read before anything is checked: an event after shows next)
        if self.epoch != _STRUCTURE_EPOCH[0]:
            self.refresh_layout()
        if self.owner.args.donate_argnums or self.owner.args.donate_argnames:
            self.owner.check_donation(args, kwargs, self.read_states)
        _acquire()
        borrowed = False
        try:
            try:
                exposed, donated, kept = self._state_leaves(_stored_value)
            except AttributeError:
                # A state born under a raw JAX transform that still runs keeps its tracer
                # apart (State._missing_value): read it as `.value` does (a write is refused
                # below), and arm no cached call, which reads stored values.
                exposed, donated, kept = self._state_leaves(_current_value)
                borrowed = True
            jitted = self.jitted
            if not compiled:
                jitted = self._pure_fn
            elif not self.may_donate or not call_may_donate():
                jitted = self.jitted_keep_states
            elif exposed:
                # Someone may hold these buffers: donate private copies (one dispatch), and
                # keep one compiled program.
                donated = copy_exposed(self.donated_states, donated, self.single_leaf)
            # (An empty **kwargs would cost JAX's dispatch ~2us: pass it only when there is one.)
            if self.consts_as_args:
                results, *written = jitted(*donated, *kept, consts, *args, **kwargs)
            elif kwargs:
                results, *written = jitted(*donated, *kept, *args, **kwargs)
            else:
                results, *written = jitted(*donated, *kept, *args)
            if written and isinstance(written[0], _Tracer):
                raise TracerLeakError(foreign_trace_message(
                    f'{self.owner.args.fun_name} (a brainstate.transform.jit function)',
                    self.written_states))
            if self.single_leaf:
                for state, value in zip(self.written_states, written):
                    state._value = value
                    state._exposed = False
            else:
                offset = 0
                for state, count in zip(self.written_states, self.written_leaf_counts):
                    state._value = state._treedef.unflatten(written[offset:offset + count])
                    state._exposed = False
                    offset += count
            for state in self.reshaped:
                state.restore_value(state._value)  # records the new avals
        finally:
            _release()
        if not borrowed:
            self.arm(epoch)
        return results

    def _state_leaves(self, value_of) -> tuple:
        """``(exposed, donated leaves, kept leaves)`` of the read states, each state's value
        given by ``value_of``; ``exposed``: whether someone may hold a buffer to donate."""
        exposed = False
        donated = []
        if self.single_leaf:
            for s in self.donated_states:
                exposed |= s._exposed
                donated.append(value_of(s))
            return exposed, donated, [value_of(s) for s in self.kept_states]
        for s in self.donated_states:
            exposed |= s._exposed
            donated.extend(jax.tree.leaves(value_of(s)))
        return exposed, donated, [leaf for s in self.kept_states
                                  for leaf in jax.tree.leaves(value_of(s))]

    # -- what JAX traces -----------------------------------------------------------------------

    def _pure(self, flat: tuple, kwargs: dict):
        """The function as a pure one; runs only while JAX traces it. ``flat``: the donated
        states' leaves, the other read states' leaves, the constants (where they are an
        argument), the user's positional arguments. Returns ``(result, *written leaves)``."""
        owner = self.owner
        donated = flat[:self.num_donated]
        kept = flat[self.num_donated:self.num_donated + self.num_kept]
        consts = flat[self.num_leading - 1] if self.consts_as_args else None
        args = flat[self.num_leading:]
        program, self.pending = self.pending, None
        if program is None:  # JAX retraces: new argument or state shapes
            sig = owner.args.trace_signature(args, kwargs)
            program = owner.trace(sig)
            lowered = program.lowered
            if (tuple(lowered.read_states) != self.read_states or
                    tuple(lowered.written_states) != self.written_states):
                raise _StateSetChanged()
            self.last_program = program
            self.add_environ_reads(program.environ_reads)
            # (Static arguments come as they are, the others as tracers keyed by aval.)
            owner._record(args, kwargs, program)
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
        consts = closed.consts if consts is None else consts
        outs = None
        if any(isinstance(leaf, _Tracer) for leaf in state_leaves) or \
                any(isinstance(leaf, _Tracer) for leaf in arg_leaves):
            # JAX traces the pure function: hand it the lowered jaxpr as one call rather than
            # re-binding its equations (brainstate/ir/_eval.py). (Op by op, the eager runner's
            # first run, evaluates it.)
            outs = bind_as_call(program.call_jaxpr(), consts, state_leaves + arg_leaves,
                                self._pure_fn.__name__)
        if outs is None:
            outs = jax.core.eval_jaxpr(closed.jaxpr, consts, *state_leaves, *arg_leaves)
        n = lowered.num_outputs
        # A state holds a definite dtype: a weakly typed value written (`jnp.where(c, 1., 2.)`)
        # is stored strong (a no-op convert, decided here, while JAX traces, not per call).
        # Evaluated op by op (the eager runner's first run), an output that is a literal of the
        # jaxpr comes back as a NumPy scalar: results and states hold JAX arrays.
        written = [_strong_array(leaf) for leaf in outs[n:]]
        results = [leaf if isinstance(leaf, (jax.Array, _Tracer)) else jax.numpy.asarray(leaf)
                   for leaf in outs[:n]]
        return (program.out_tree.unflatten(results), *written)

    def state_avals(self) -> list:
        """The leading arguments of the pure function (the donated, then the other read
        states' leaves) as ``jax.ShapeDtypeStruct``s."""
        return [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding)
                for s in self.donated_states + self.kept_states
                for a, sharding in zip(s.avals, s._shardings or (None,) * len(s.avals))]

    def matches(self, program: StatefulProgram) -> bool:
        lowered = program.lowered
        return (self.read_states == tuple(lowered.read_states) and
                self.written_states == tuple(lowered.written_states) and
                self.layout == _layout_of(self.read_states + self.written_states) and
                self.environ_reads.hold())


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
                 passes=None, *, jit_options: dict | None = None, name: str | None = None,
                 pack_states: bool | None = None):
        self.fun = fun
        # Automatic packing of many small states (see jit()): None follows the global setting.
        if pack_states not in (None, True, False):
            raise ArgumentTypeError(
                f'jit: `pack_states` must be True, False or None (follow '
                f'brainstate.environ / BRAINSTATE_PACK_STATES), got {pack_states!r}.')
        self.pack_states = pack_states
        # The published jit's extra jax.jit options (see jit()) and name.
        self.jit_options = dict(jit_options or {})
        self.name = name
        self._stateful = None
        self.args = ArgumentSpec(fun, static_argnums, static_argnames, donate_argnums,
                                 self.jit_options.get('donate_argnames'))
        if name is not None:
            self.args.fun_name = name  # what errors and the IR call the function
        self.passes = passes
        self._entries: list[_Entry] = []
        self._last: _Entry | None = None
        # Not fun.__dict__: a wrapped transform (e.g. a VmappedFunction) has its own `.fun`,
        # which would replace ours and silently drop that transform.
        functools.update_wrapper(self, fun, updated=())

    # Calling a JittedFunction runs its ``_call``: the general path (the method below) or,
    # while the latest entry has one, that entry's generated cached call (``_Entry.fast_call``,
    # set on the instance by ``_use``). ``attrgetter`` finds it in C, so a cached call runs one
    # Python frame of ours above JAX's C++ dispatch.
    __call__ = property(operator.attrgetter('_call'))

    def _call(self, *args, **kwargs):
        return self._general_call(args, kwargs)

    def _use(self, entry: _Entry | None, nargs: int = 0):
        """Make ``entry`` the latest: later calls try it first, through its cached call for
        ``nargs`` positional arguments where it has one."""
        self._last = entry
        fast = None if entry is None else entry.fast_call(nargs)
        if fast is None:
            self.__dict__.pop('_call', None)
        else:
            self.__dict__['_call'] = fast

    def _general_call(self, args: tuple, kwargs: dict):
        """A call, every case handled."""
        try:
            if _TRACE_STACK.stack:
                # Inside another brainstate transform: become part of its trace.
                return self.fun(*args, **kwargs)
            entry = self._last
            if entry is not None and not entry.environ_reads.hold():
                entry = self._entry_for_environ()
            if entry is not None:
                if entry is not self._last or (not kwargs and self.__dict__.get('_call') is not
                                               entry.fast_call(len(args))):
                    self._use(entry, len(args))  # (another entry, or another argument count)
                try:
                    if entry._packing:
                        entry.count_then_pack()
                    return entry(args, kwargs)
                except _StateSetChanged:
                    pass
                except Exception as error:
                    self._explain_failure(entry, error, args, kwargs)
                    raise
            return self._slow_call(args, kwargs)
        except Exception as error:
            # As JAX does for its own: the traceback shows the user's frames, not ours.
            hide_brainstate_frames(error)
            raise

    def _retrace_call(self, args, kwargs):
        """Trace the call afresh and run it (no cached entry fits)."""
        try:
            return self._slow_call(args, kwargs)
        except Exception as error:
            # As JAX does for its own: the traceback shows the user's frames, not ours.
            hide_brainstate_frames(error)
            raise

    def _explain_failure(self, entry: _Entry, error: Exception, args, kwargs):
        """A cached call of ``entry`` raised ``error``: raise ours instead if the arguments or
        states are at fault (JAX's message for a bad argument is generic; ours names it and
        says what to do); otherwise leave ``error`` to be re-raised, its traceback showing
        the user's frames, not ours."""
        if isinstance(error, (TypeError, ValueError)):
            try:
                self.args.signature(args, kwargs, allow_tracers=True)
                check_concrete_states(entry.read_states, self.args.fun_name)
            except Exception as ours:
                hide_brainstate_frames(ours)
                raise
        hide_brainstate_frames(error)

    def _entry_for_environ(self) -> _Entry | None:
        """The latest entry traced under the ``brainstate.environ`` settings now in force (the
        settings its traces read have their values then), if any."""
        for entry in reversed(self._entries):
            if entry.environ_reads.hold():
                return entry
        return None

    def _cache_key(self):
        """What this jitted function computes, for the eager runner's reuse rule."""
        spec = self.args
        return ('jit', self.fun, spec.static_argnums, spec.static_argnames,
                spec.donate_argnums, self.passes)

    def trace(self, *args, **kwargs):
        """``trace(sig)`` (a CallSignature): trace, optimize and lower the function for one
        call signature (the one pipeline), giving our StatefulProgram. ``trace(*args,
        **kwargs)`` (the published form): JAX's ``Traced`` object of the compiled call."""
        if len(args) == 1 and not kwargs and isinstance(args[0], CallSignature):
            # While any pack of states exists, its members are read and written through their
            # buffer: one array in and out per pack (see brainstate.pack_states).
            return trace_program(self.fun, self.args, args[0], passes=self.passes,
                                 analyses=pack_analyses())
        return self._staged('trace', args, kwargs)

    def auto_pack_thresholds(self) -> tuple:
        """``(min_states, after_calls)`` of automatic packing: ``AUTO_PACK``'s, or at once
        and from 2 states with ``pack_states=True``."""
        if self.pack_states:
            return 2, 1
        return AUTO_PACK['min_states'], AUTO_PACK['after_calls']

    def check_donation(self, args, kwargs, states):
        """Refuse to donate an argument that is also a state's current value."""
        donated = []
        for i in self.args.donate_argnums:
            if i < len(args):
                donated += [(f'positional argument {i}', leaf)
                            for leaf in jax.tree.leaves(args[i])]
        for name in self.args.donate_argnames:
            if name in kwargs:
                donated += [(f'keyword argument {name!r}', leaf)
                            for leaf in jax.tree.leaves(kwargs[name])]
        check_donated_arguments(donated, states, self.args.fun_name)

    def _entry_for(self, args, kwargs) -> _Entry:
        """Trace the call once and find (or make) the entry for the states it touches.
        Arguments may be tracers of a raw JAX transform around the call: a program that reads
        states runs there as one call, one that writes any is refused when it runs (its
        update would be lost), as a cached call does."""
        sig = self.args.signature(args, kwargs, allow_tracers=True)
        program = self.trace(sig)
        self._record(args, kwargs, program)
        for entry in self._entries:
            if entry.matches(program):
                entry.trust_states()
                entry.pending = program
                entry.add_environ_reads(program.environ_reads)
                return entry
        entry = _Entry(self, program)
        self._entries.append(entry)
        return entry

    def _slow_call(self, args, kwargs):
        # Tracing, JAX's re-trace and lowering allocate many objects in reference cycles and
        # free few: pause the cycle collector (restored on any exit; brainstate/ir/_gc.py).
        with paused_gc():
            return self._trace_and_call(args, kwargs)

    def _trace_and_call(self, args, kwargs):
        entry = self._entry_for(args, kwargs)
        self._use(entry, len(args))
        try:
            return entry(args, kwargs)
        except TypeError:
            check_concrete_states(entry.read_states, self.args.fun_name)
            raise
        finally:
            entry.pending = None

    def ir(self, *args, **kwargs) -> Graph:
        """The state IR of ``fun(*args, **kwargs)`` as traced, before any pass."""
        sig = self.args.signature(args, kwargs)
        return trace_program(self.fun, self.args, sig, passes=self.passes,
                             lower=False).traced_graph

    def optimized_ir(self, *args, **kwargs) -> Graph:
        """The state IR after the passes, as it is lowered."""
        sig = self.args.signature(args, kwargs)
        return self.trace(sig).graph

    def lower(self, *args, **kwargs):
        """JAX's ``Lowered`` object for the compiled program (``.as_text()`` shows StableHLO)."""
        return self._staged('lower', args, kwargs)

    def timings(self, *args, **kwargs) -> dict:
        """Seconds spent tracing, in passes, lowering (to a jaxpr, then to StableHLO) and
        compiling with XLA, measured afresh for this call signature: every call traces, lowers
        and compiles anew, bypassing JAX's in-memory caches (a persistent compilation cache,
        ``jax_compilation_cache_dir``, still applies). The program calls run is not replaced."""
        entry = self._entry_for(args, kwargs)
        timings = dict(entry.pending.timings)
        try:
            # A new function object (not functools.wraps: JAX keys its caches by __wrapped__):
            # JAX's trace, lowering and executable caches would answer in microseconds.
            pure = entry._pure_fn

            def timed(*a, **k):
                return pure(*a, **k)

            timed.__name__ = timed.__qualname__ = pure.__name__
            donated = entry._donate_argnums if entry.may_donate else entry._options['donate_argnums']
            fresh = jax.jit(timed, **dict(entry._options, donate_argnums=donated))
            start = time.perf_counter()
            lowered = fresh.lower(*entry.state_avals(), *args, **kwargs)
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
        self._use(None)
        if self._stateful is not None:
            self._stateful.clear_cache()

    # -- the published JittedFunction attributes (a layer over the entries above) ----------

    def jax_jit_options(self, shift: int, written_shardings=()) -> dict:
        """The extra ``jax.jit`` options of the pure function, whose first ``shift``
        arguments are the state lists (and constants): their shardings are ``None`` (JAX takes
        the states' buffers as they lie, in their own shardings). Its result is ``(result,
        *written state leaves)``: the latter get ``written_shardings`` (one per leaf)."""
        options = dict(self.jit_options)
        if 'in_shardings' in options:
            options['in_shardings'] = (None,) * shift + tuple(options['in_shardings'])
        if 'out_shardings' in options or any(s is not None for s in written_shardings):
            options['out_shardings'] = (options.get('out_shardings'), *written_shardings)
        return options

    @property
    def origin_fun(self) -> Callable:
        """The function as given to ``jit``."""
        return self.fun

    @property
    def stateful_fun(self):
        """A :class:`~brainstate.transform.StatefulFunction` view of the compiled signatures:
        every signature this function traced is in its cache (``get_arg_cache_key``,
        ``get_states_by_cache``, ``get_jaxpr_by_cache``...)."""
        if self._stateful is None:
            from ._stateful_function import StatefulFunction
            self._stateful = StatefulFunction(self.fun, self.args.static_argnums,
                                              self.args.static_argnames, name=self.name,
                                              passes=self.passes)
        return self._stateful

    def _record(self, args, kwargs, program: StatefulProgram):
        """Keep a traced program in ``stateful_fun``'s cache (slow paths only: a trace of
        ours, or JAX retracing an entry for new argument shapes or static values)."""
        self.stateful_fun.record(args, kwargs, program)

    @property
    def jitted_fun(self) -> Callable:
        """The ``jax.jit``-compiled pure function of the latest call (before any call: this
        object)."""
        return self._last.jitted if self._last is not None else self

    def _staged(self, method: str, args, kwargs):
        args, kwargs = _abstract_tracers((args, kwargs))
        entry = self._entry_for(args, kwargs)
        jitted = entry.jitted if entry.may_donate else entry.jitted_keep_states
        try:
            return getattr(jitted, method)(*entry.state_avals(), *args, **kwargs)
        finally:
            entry.pending = None

    def compile(self, *args, **kwargs):
        """JAX's ``Compiled`` object of the call (ahead of time: nothing runs, no State
        changes)."""
        return self.lower(*args, **kwargs).compile()

    def eval_shape(self, *args, **kwargs):
        """The shapes of the call's result (``jax.ShapeDtypeStruct``s); nothing runs and no
        State changes, also inside another transform."""
        args, kwargs = _abstract_tracers((args, kwargs))
        sig = self.args.signature(args, kwargs)
        program = trace_program(self.fun, self.args, sig, passes=[])
        lowered = program.lowered
        avals = lowered.closed_jaxpr.out_avals[:lowered.num_outputs]
        return program.out_tree.unflatten(
            [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals])

    def __get__(self, obj, objtype=None):
        # A jitted method: the instance is not an array argument; its states are read like any
        # other. Each instance gets its own compiled function, kept on the instance.
        if obj is None:
            return self
        bound = obj.__dict__.setdefault('_bs_bound_jits', {})
        jitted = bound.get(id(self))
        if jitted is None:
            method = functools.partial(self.fun, obj)
            try:  # (without `self`: update_wrapper's __wrapped__ would lead to the function's)
                signature = inspect.signature(method)
            except (TypeError, ValueError):
                signature = None
            functools.update_wrapper(method, self.fun)
            if signature is not None:
                method.__signature__ = signature
            spec = self.args
            options = dict(self.jit_options)
            if 'in_shardings' in options:  # (one per positional argument, `self` first)
                options['in_shardings'] = tuple(options['in_shardings'])[1:]
            jitted = bound[id(self)] = JittedFunction(
                method, tuple(i - 1 for i in spec.static_argnums if i > 0),
                spec.static_argnames, tuple(i - 1 for i in spec.donate_argnums if i > 0),
                self.passes, jit_options=options, name=self.name, pack_states=self.pack_states)
        return jitted

    def __repr__(self):
        return f'<brainstate.transform.jit of {self.args.fun_name}>'


_UNSPECIFIED = object()


def jit(fun: Callable | None = None, in_shardings=_UNSPECIFIED, out_shardings=_UNSPECIFIED,
        static_argnums: int | Sequence[int] | None = (), donate_argnums: int | Sequence[int] |
        None = (), static_argnames: str | Sequence[str] | None = (), donate_argnames=None,
        keep_unused: bool = False, device=None, backend: str | None = None,
        inline: bool = False, name: str | None = None, *, passes=None,
        pack_states: bool | None = None, **kwargs):
    """Compile a function that reads and writes States; its state updates are kept.

    Args:
      fun: the function. ``jit`` can also be used bare as a decorator, or with keyword
        arguments only (``@jit(static_argnums=1)``).
      static_argnums / static_argnames: arguments that are Python values (hashable), not arrays;
        each distinct value compiles its own program.
      donate_argnums: positional arguments whose buffers XLA may reuse for outputs. Written
        states are donated automatically when no one else holds their old buffer.
      in_shardings / out_shardings: as for ``jax.jit``, for the arguments (a tuple, one per
        positional argument) and the result; the states keep their own placement.
      donate_argnames, keep_unused, device, backend, inline: passed to ``jax.jit``.
      name: the name of the compiled program (default: the function's).
      passes: the optimization pipeline (see ``brainstate.passes``); ``None`` for the default.
      pack_states: packed state storage (see ``brainstate.pack_states``). ``None`` (default):
        a step that reads or writes many (``>= 16``) small states of one dtype on one CPU
        device, none sharded, packs them into one buffer after some cached calls (it retraces
        once; see ``brainstate._state_pack.AUTO_PACK``);
        each State's ``.value`` reads and writes its slice as before, and results are the same
        bit for bit. ``False``: never (also ``brainstate.environ.set(pack_states=False)``, or
        ``BRAINSTATE_PACK_STATES=0`` in the environment, for every jit); ``True``: from two
        such states, at the first cached call.

    Returns:
      A :class:`JittedFunction`. Calls are cached per argument shapes/dtypes, static values,
      the shapes/dtypes of the states involved and the values of the ``brainstate.environ``
      settings the function read while traced: changing a state's shape, or a setting it
      read (``environ.set(dt=...)``, ``environ.context(fit=False)``), retraces; changing a
      setting it never read does not.

    Example::

        @brainstate.transform.jit
        def step(x):
            net.count.value = net.count.value + 1
            return x @ net.w.value

    Under raw ``jax.jit`` the write to ``net.count`` would be lost (brainstate raises an error
    explaining this instead); here it is kept. As with ``jax.jit``, Python side effects (such as
    creating new States) happen only when the function is traced.
    """
    options = dict(in_shardings=in_shardings, out_shardings=out_shardings,
                   static_argnums=static_argnums, donate_argnums=donate_argnums,
                   static_argnames=static_argnames, donate_argnames=donate_argnames,
                   keep_unused=keep_unused, device=device, backend=backend, inline=inline,
                   name=name, passes=passes, pack_states=pack_states, **kwargs)
    if fun is None:
        return functools.partial(jit, **options)
    return _make_jitted(fun, **options)


def _make_jitted(fun, in_shardings, out_shardings, static_argnums, donate_argnums,
                 static_argnames, donate_argnames, keep_unused, device, backend, inline, name,
                 passes, pack_states=None, **kwargs) -> JittedFunction:
    from .._errors import ArgumentTypeError, ArgumentValueError
    if kwargs.pop('abstracted_axes', None) is not None:
        raise ArgumentValueError('jit: abstracted_axes is not supported.')
    if kwargs:
        raise ArgumentTypeError(f'jit: unexpected keyword argument(s) {sorted(kwargs)}.')
    if not callable(fun):
        raise ArgumentTypeError(f'jit: expected a function, got {type(fun).__name__}.')
    for label, nums in (('static_argnums', static_argnums), ('donate_argnums', donate_argnums)):
        values = () if nums is None else ((nums,) if isinstance(nums, int) else tuple(nums))
        if any(isinstance(n, int) and n < 0 for n in values):
            raise ArgumentValueError(
                f'jit of {getattr(fun, "__name__", fun)!r}: negative {label} {nums!r} are not '
                f'supported; count positions from 0 (the first positional argument).')
    options = {}
    if in_shardings is not _UNSPECIFIED and in_shardings is not None:
        if not isinstance(in_shardings, (tuple, list)):
            raise NotImplementedError(
                'brainstate.transform.jit supports in_shardings only as a tuple/list with one '
                'entry per positional argument (the states are passed separately); got '
                f'{in_shardings!r}.')
        options['in_shardings'] = tuple(in_shardings)
    if out_shardings is not _UNSPECIFIED and out_shardings is not None:
        options['out_shardings'] = out_shardings
    if donate_argnames is not None:
        options['donate_argnames'] = donate_argnames
    for key, value, default in (('keep_unused', keep_unused, False), ('device', device, None),
                                ('backend', backend, None), ('inline', inline, False)):
        if value != default:
            options[key] = value
    none_as_empty = lambda value: () if value is None else value  # (0 is an argnum, not "none")
    return JittedFunction(fun, none_as_empty(static_argnums), none_as_empty(static_argnames),
                          none_as_empty(donate_argnums),
                          passes, jit_options=options, name=name, pack_states=pack_states)
