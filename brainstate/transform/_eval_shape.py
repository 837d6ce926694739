"""eval_shape: the shapes of a stateful function's outputs and of the states it writes."""

from __future__ import annotations

from typing import Callable

import jax

from ._arguments import ArgumentSpec
from ._program import trace_program

__all__ = ['eval_shape']


def eval_shape(fun: Callable, *args, return_state_shapes: bool = False, **kwargs):
    """Trace ``fun(*args, **kwargs)`` without running it; the published form.

    Arguments may be arrays or ``jax.ShapeDtypeStruct``. No computation runs and no State
    changes.

    Returns:
      The result as a pytree of ``jax.ShapeDtypeStruct``; with ``return_state_shapes=True``,
      ``(state_shapes, out_shapes)`` where ``state_shapes`` maps every State the function
      reads or writes to the shapes of its value after the call.

    Example::

        out = brainstate.transform.eval_shape(step, jax.ShapeDtypeStruct((8, 3), 'f4'))
        states, out = brainstate.transform.eval_shape(step, x, return_state_shapes=True)
        states[net.count]     # ShapeDtypeStruct(shape=(), dtype=int32)
    """
    spec = ArgumentSpec(fun)
    sig = spec.signature(args, kwargs, allow_tracers=True)
    # Shapes need no optimization: only what lowering needs.
    program = trace_program(fun, spec, sig, passes=[])
    lowered = program.lowered
    out_avals = lowered.closed_jaxpr.out_avals
    shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in out_avals]
    n = lowered.num_outputs
    out = program.out_tree.unflatten(shapes[:n])
    if not return_state_shapes:
        return out
    states = {}
    for state in lowered.read_states:
        states[state] = state.treedef.unflatten(
            [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in state.avals])
    offset = n
    for state in lowered.written_states:
        count = state.treedef.num_leaves
        states[state] = state.treedef.unflatten(shapes[offset:offset + count])
        offset += count
    return states, out
