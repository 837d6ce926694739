"""Running a transform's function directly: a first eager call, the way raw JAX runs it.

A transform called eagerly for the first time with a new function key (see :mod:`._eager`)
gains nothing from a compiled program: raw JAX's eager ``jax.grad(f)(x)`` runs ``f`` once under
its JVP trace, op by op, and so can we. :class:`DirectContext` makes that possible with
States: pushed on the brainstate trace stack while the user's function runs under the JAX
transform (``jax.grad``, ``jax.vjp``, ``jax.vmap``), it answers ``state.value`` with the value the
transform swapped in (a grad state's tracer) or the stored value, and *records* writes instead
of storing them: the transform returns the written values out of the JAX transform and
writes them back once, after the whole call succeeded (:func:`._state_io.write_back`), so a
failure leaves every State as it was and no tracer stays in a State.

Nothing is traced into the IR; a key's second call traces and compiles as usual. What a direct
run does not handle it refuses by raising :class:`NotDirect` before anything is stored, and the
eager runner then runs the call through the IR (the user's Python runs again): a write where
the transform allows none (vmap: any write, whose batching needs the analysis), a state
created where the transform cannot take one out, a loop or branch region that needs a body
trace, observed states (hooks).

The grad family runs the same way when called *inside* an enclosing brainstate trace (``grad``
inside ``jit``, a loop body, ``vmap``, another grad): the context then has a ``parent`` (the
enclosing context), reads of states it does not swap in are the parent's reads, bound in the
JAX trace that was current when the transform was called (``outer_trace``), and the recorded
writes are written into the parent once the JAX transform has returned. The enclosing trace so
records only the JAX transform's primitives: the function is not traced into the IR, lowered
and re-evaluated first (see ``_StatefulTransform._call`` in :mod:`._autograd`).
"""

from __future__ import annotations

import jax

from .. import _state
from .._compat import inside_of
from .._state import State

__all__ = ['DirectContext', 'NotDirect', 'direct_run_active', 'check_result']

_Tracer = jax.core.Tracer


class NotDirect(Exception):
    """This call cannot run directly: run it through the IR instead (nothing was stored)."""


def direct_run_active() -> bool:
    """Whether the innermost brainstate context is a direct run: a loop or branch called there
    runs as it would outside any brainstate trace (its own program, evaluated in the JAX
    transform, reading and writing states through the direct run)."""
    stack = _state.TRACE_STACK.stack
    return bool(stack) and type(stack[-1]) is DirectContext


class DirectContext:
    """The brainstate context of a function run directly under a JAX transform.

    Args:
      values: ``{state: value}`` swapped in for reads (a grad state's tracer).
      writes: whether the function may write states (recorded in :attr:`written`, in order of
        first write) and create them (:attr:`new_states`); False: either raises
        :class:`NotDirect`.
      parent: the enclosing brainstate context (a trace's, or another direct run's), or None
        outside any: a state not in ``values`` and not yet written is read from it (a traced
        read of the enclosing trace) instead of its stored value.
      outer_trace: the JAX trace current when the transform was called (from
        :func:`~brainstate._compat.current_jax_trace`): the parent's reads are bound there,
        not in the JAX transform's own trace (whose tracers must not reach the parent).

    After the run, :attr:`read_states` holds every state read, :attr:`written` the value last
    written to each state; :meth:`release` drops them once the transform has returned.
    """

    def __init__(self, values: dict | None = None, writes: bool = True, parent=None,
                 outer_trace=None):
        self.values = dict(values or {})
        self.writes = writes
        self.parent = parent
        self.outer_trace = outer_trace
        self.read_states: set = set()
        self.written: dict = {}
        self.new_states: list[State] = []
        self._new_ids: set[int] = set()

    # -- what State.value asks ------------------------------------------------------------

    def read(self, state: State):
        if id(state) in self._new_ids:
            return state._value
        self.read_states.add(state)
        if state in self.written:
            return self.written[state]
        if state in self.values:
            return self.values[state]
        if self.parent is not None:
            with inside_of(self.outer_trace):
                return self.parent.read(state)
        state._exposed = True  # the stored buffer may reach the result (see _state_io)
        try:
            return state._value
        except AttributeError:  # a state created inside a trace that left it no value
            return state._missing_value()

    def write(self, state: State, value, reshape: bool = False):
        if not self.writes or reshape:
            raise NotDirect()
        # (raises StateValueError naming the state; inside an enclosing trace, the avals it
        # sees, e.g. vmap's per-lane view)
        leaves = state.check_compatible(
            value, None if self.parent is None else state.written_avals)
        value = state._treedef.unflatten(leaves)
        if id(state) in self._new_ids:
            state._value = value
        else:
            self.written[state] = value

    def register_new_state(self, state: State):
        if not self.writes:
            raise NotDirect()
        self.new_states.append(state)
        self._new_ids.add(id(state))

    def promote_new_states(self):
        # A region body traced right under a direct run: the region could not be bound in the
        # JAX transform's trace. (Loops and branches called here run as outside any trace,
        # see direct_run_active; this is a region bound some other way.)
        raise NotDirect()

    # -- the run --------------------------------------------------------------------------

    def __enter__(self):
        _state.TRACE_STACK.append(self)
        return self

    def __exit__(self, *exc):
        popped = _state.TRACE_STACK.pop()
        assert popped is self, 'brainstate trace stack corrupted'
        return False

    def outputs(self) -> tuple[list, list]:
        """``(states, values)`` the run wrote: the written states, then the states it created
        (whose values leave the JAX transform with the written ones; the states are emptied
        until the transform stores them, as a trace's new states are)."""
        states = list(self.written) + list(self.new_states)
        values = list(self.written.values()) + [s._value for s in self.new_states]
        return states, values

    def scrub_new_states(self):
        """Drop the tracers held by the states created during the run."""
        for state in self.new_states:
            state.__dict__.pop('_value', None)

    def release(self):
        """Forget the values of the run (tracers of the JAX transform, which has returned): a
        context kept after its run must hold none of them."""
        self.values = {}
        self.written = {}
        self.parent = self.outer_trace = None


def check_result(out, fun_name: str):
    """:func:`._program.check_outputs` (no State or Module in a result), quick for arrays."""
    if isinstance(out, _Tracer) or (type(out) is tuple and
                                    all(isinstance(leaf, _Tracer) for leaf in out)):
        return
    from ._program import check_outputs
    check_outputs(out, fun_name)


def can_run_directly(passes) -> bool:
    """Whether a first call may run directly: the default pipeline of built-in passes, which
    preserve what the function computes (a user's pipeline or pass may change it, or be
    there to print it: also one registered under a built-in's name, ``replace=True``), plain
    state reads and writes (no hooks or state observers), and JAX compiling as usual."""
    from ..passes._default_pipeline import (DEFAULT_PASS_NAMES, DEFAULT_PIPELINE,
                                            _current_pipeline, _settings)
    from ..passes._pass import names_builtin_passes
    from ._environ_key import read_pipeline
    if passes is None:
        read_pipeline()  # (an enclosing trace's program depends on the choice made here)
    return (passes is None and _current_pipeline() == DEFAULT_PIPELINE and
            not _settings['print_ir'] and not _settings['verify'] and
            not _settings['capture_reproducer'] and not _state._observed and
            not jax.config.jax_disable_jit and names_builtin_passes(DEFAULT_PASS_NAMES))
