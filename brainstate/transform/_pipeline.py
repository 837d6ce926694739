"""The compiler pipeline shared by the transforms: trace -> passes -> lower.

``compile_graph`` traces a function for one call signature into the state IR, runs the pass
pipeline (at least what lowering needs: hoist-states) and lowers the result to a ClosedJaxpr.
Each transform then does its own thing with the pure jaxpr: ``jit`` compiles it, ``grad``
differentiates it, and all of them read and write the states around it.
"""

from __future__ import annotations

import time
from typing import Callable

import jax

from .. import passes as passes_lib
from .._errors import StateArgumentError
from .._state import State
from ..ir import LoweredGraph, lower_to_jaxpr, trace_flat
from ._arguments import ArgumentSpec, CallSignature, leaf_aval

__all__ = ['compile_graph', 'StatefulProgram']


class StatefulProgram:
    """A traced and lowered function for one call signature.

    Attributes:
      name: the function's name.
      traced_graph: the graph as traced (the same object as ``graph`` once passes ran).
      graph: the canonical graph after the passes.
      lowered: the :class:`~brainstate.ir.LoweredGraph` (jaxpr and state order).
      states: every state involved: the states read, then those only written.
      arg_avals: the avals of the argument leaves.
      out_tree: the pytree structure of the results.
      new_states: states created while tracing.
      timings: seconds spent in 'trace', 'passes', 'lower' (and 'compile', set by jit).
    """

    def __init__(self, name, graph, lowered, arg_avals, out_tree, new_states, timings):
        self.name = name
        self.traced_graph = graph
        self.graph = graph
        self.lowered: LoweredGraph | None = lowered
        read = list(lowered.read_states) if lowered else []
        read_set = set(read)
        only_written = [s for s in (lowered.written_states if lowered else [])
                        if s not in read_set]
        self.states: tuple[State, ...] = tuple(read + only_written)
        self.arg_avals = arg_avals
        self.out_tree = out_tree
        self.new_states = new_states
        self.timings = timings


def _check_outputs(out, fun_name: str):
    for path, leaf in jax.tree_util.tree_flatten_with_path(out)[0]:
        if isinstance(leaf, State):
            where = jax.tree_util.keystr(path) or '(the whole result)'
            raise StateArgumentError(
                f'{fun_name} returned State {leaf.label()} at {where}. States are not values: '
                f'return `state.value` instead (the transform keeps the state updated for you).')


def compile_graph(fun: Callable, spec: ArgumentSpec, sig: CallSignature, passes=None,
                  lower: bool = True) -> StatefulProgram:
    """Trace ``fun`` for the call signature ``sig``, optimize and lower it."""
    out_tree_box = []

    def flat_fun(*leaves):
        args, kwargs = spec.rebuild(sig, leaves)
        out = fun(*args, **kwargs)
        _check_outputs(out, spec.fun_name)
        out_leaves, out_tree = jax.tree.flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    arg_avals = [leaf_aval(leaf) for leaf in sig.leaves]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    graph, ctx = trace_flat(flat_fun, arg_avals, name=spec.fun_name)
    graph.in_tree, graph.out_tree = sig.treedef, out_tree_box[-1]
    timings['trace'] = time.perf_counter() - start
    if not lower:
        return StatefulProgram(spec.fun_name, graph, None, arg_avals, graph.out_tree,
                               ctx.new_states, timings)
    start = time.perf_counter()
    program_passes = passes_lib.optimize(graph, passes)
    timings['passes'] = time.perf_counter() - start
    start = time.perf_counter()
    lowered = lower_to_jaxpr(graph)
    timings['lower'] = time.perf_counter() - start
    program = StatefulProgram(spec.fun_name, graph, lowered, arg_avals, graph.out_tree,
                              ctx.new_states, timings)
    program.pass_manager = program_passes
    return program
