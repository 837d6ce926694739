"""The two JAX primitives that stand for state operations in a trace.

``state_read[state=S]`` has no operands and one result per leaf of S's value; ``state_write[state=S]``
takes one operand per leaf and has no results. They are only ever *recorded*: brainstate's tracer
turns them into ``state_read`` / ``state_write`` nodes of its graph and lowering removes them. If
one reaches XLA (a raw ``jax.jit`` function that read a State was traced inside a brainstate
transform and later reused outside it), lowering fails with an explanation instead of a crash.
"""

from __future__ import annotations

import jax.extend.core as jex_core
from jax.interpreters import ad, batching, mlir

from .._errors import BatchAxisError, BrainStateError

__all__ = ['state_read_p', 'state_write_p']

state_read_p = jex_core.Primitive('state_read')
state_read_p.multiple_results = True

state_write_p = jex_core.Primitive('state_write')
state_write_p.multiple_results = True


def _read_abstract_eval(*, state, avals):
    return list(avals)


def _write_abstract_eval(*leaves, state):
    return []


state_read_p.def_abstract_eval(_read_abstract_eval)
state_write_p.def_abstract_eval(_write_abstract_eval)


def _outside_trace_error(primitive_name):
    def rule(*args, state, **params):
        raise BrainStateError(
            f'A {primitive_name} of State {state.label()} reached JAX outside a brainstate '
            f'transform. This happens when a function decorated with raw `jax.jit` reads or '
            f'writes a State and JAX reuses its cached trace elsewhere. Decorate such helpers '
            f'with `brainstate.transform.jit` (or leave them undecorated) instead.')
    return rule


state_read_p.def_impl(_outside_trace_error('state_read'))
state_write_p.def_impl(_outside_trace_error('state_write'))
mlir.register_lowering(state_read_p, _outside_trace_error('state_read'))
mlir.register_lowering(state_write_p, _outside_trace_error('state_write'))


# Raw JAX transforms used *inside* a brainstate trace (e.g. `jax.grad` of a helper that reads a
# parameter): a read is a constant of the inner transform, a write records its primal value.

def _read_jvp(primals, tangents, *, state, avals):
    outs = state_read_p.bind(state=state, avals=avals)
    return outs, [ad.Zero.from_primal_value(o) for o in outs]


def _write_jvp(primals, tangents, *, state):
    state_write_p.bind(*primals, state=state)
    return [], []


ad.primitive_jvps[state_read_p] = _read_jvp
ad.primitive_jvps[state_write_p] = _write_jvp


def _read_batch(args, dims, *, state, avals):
    return state_read_p.bind(state=state, avals=avals), [None] * len(avals)


def _write_batch(args, dims, *, state):
    if any(d is not None for d in dims):
        raise BatchAxisError(
            f'A batched value was written into State {state.label()} under raw `jax.vmap`. '
            f'Raw jax.vmap does not know about States; use `brainstate.transform.vmap` and '
            f'declare the state batched with `in_states=` / `out_states=`.')
    state_write_p.bind(*args, state=state)
    return [], []


batching.primitive_batchers[state_read_p] = _read_batch
batching.primitive_batchers[state_write_p] = _write_batch
