"""eval_shape: the shapes of a stateful function's outputs and of the states it writes."""

from __future__ import annotations

from typing import Callable

import jax

from .. import _state
from ._arguments import ArgumentSpec
from ._program import _is_module, trace_program

__all__ = ['eval_shape']


def eval_shape(fun: Callable, *args, return_state_shapes: bool = False, **kwargs):
    """Trace ``fun(*args, **kwargs)`` without running it; the published form.

    Arguments may be arrays or ``jax.ShapeDtypeStruct``. No computation runs and no State
    changes.

    A Module the function creates and returns comes back as an *abstract module*: the same
    object, whose states hold ``jax.ShapeDtypeStruct`` leaves instead of arrays (no memory is
    allocated). Use it to inspect parameter shapes and counts; give its states real values
    (e.g. by building the module for real) before running it.

    Returns:
      The result as a pytree of ``jax.ShapeDtypeStruct``; with ``return_state_shapes=True``,
      ``(state_shapes, out_shapes)`` where ``state_shapes`` maps every State the function
      reads or writes to the shapes of its value after the call.

    Example::

        out = brainstate.transform.eval_shape(step, jax.ShapeDtypeStruct((8, 3), 'f4'))
        states, out = brainstate.transform.eval_shape(step, x, return_state_shapes=True)
        states[net.count]     # ShapeDtypeStruct(shape=(), dtype=int32)
        lstm = brainstate.transform.eval_shape(lambda: brainstate.nn.LSTMCell(3, 4))
    """
    spec = ArgumentSpec(fun)
    sig = spec.signature(args, kwargs, allow_tracers=True)
    modules = {}  # position among the result's leaves -> a Module the function returned

    def without_modules(*a, **k):
        leaves, tree = jax.tree.flatten(fun(*a, **k), is_leaf=_is_module)
        modules.clear()
        modules.update((i, leaf) for i, leaf in enumerate(leaves) if _is_module(leaf))
        if not modules:
            return tree.unflatten(leaves)
        modules['tree'] = tree
        return [leaf for i, leaf in enumerate(leaves) if i not in modules]

    # Shapes need no optimization: only what lowering needs.
    program = trace_program(without_modules, spec, sig, passes=[])
    lowered = program.lowered
    out_avals = lowered.closed_jaxpr.out_avals
    shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in out_avals]
    n = lowered.num_outputs
    out = program.out_tree.unflatten(shapes[:n])
    if modules:
        out = _abstract_modules(modules, out, program.new_states, lowered, shapes[n:])
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


def _abstract_modules(modules, values, new_states, lowered, written_shapes):
    """The result with the Modules the function created put back, each state created during
    the trace holding the ShapeDtypeStruct tree of its final value."""
    shapes_of, offset = {}, 0
    for state in lowered.written_states:
        count = state.treedef.num_leaves
        shapes_of[state] = state.treedef.unflatten(written_shapes[offset:offset + count])
        offset += count
    for state in new_states:
        if state in shapes_of:
            _state.set_abstract_value(state, shapes_of[state])
    tree = modules.pop('tree')
    values = iter(values)
    leaves = [modules[i] if i in modules else next(values) for i in range(tree.num_leaves)]
    return tree.unflatten(leaves)
