"""Lowering: a canonical Graph becomes a ClosedJaxpr.

Inputs are ``(values of the states read, graph inputs)``; outputs are ``(graph outputs, values of
the states written)``. Constants the function closed over become the jaxpr's consts (the jit
passes them as arguments, since XLA compiles large constants slowly). A region is lowered by
its kind (``brainstate.ir.region_kind(node).lower``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.extend.core as jex_core

from .._errors import BrainStateError
from ._graph import Graph, Literal

__all__ = ['lower_to_jaxpr', 'LoweredGraph', 'lower_subgraph', 'LoweringError']

_NO_EFFECTS = frozenset()


class LoweredGraph(NamedTuple):
    """The result of lowering: the jaxpr and how its inputs and outputs map onto states."""
    closed_jaxpr: jex_core.ClosedJaxpr
    read_states: list      # one per leading input group, in order
    written_states: list   # one per trailing output group, in order
    num_inputs: int        # number of graph inputs (after the state leaves)
    num_outputs: int       # number of graph outputs (before the state leaves)


def _lower_body(graph: Graph, env: dict, eqns: list, edge_state_ops: bool = False):
    """Append the equations of ``graph``'s compute nodes to ``eqns``; ``env`` maps Values to
    jaxpr atoms and must already hold the inputs, constants and entry reads (which, like the
    exit writes, the caller handles when ``edge_state_ops``)."""
    def atom(value):
        if isinstance(value, Literal):
            return jex_core.Literal(value.val, value.aval)
        return env[value]

    # The common equation (no effects, its source and context known) is built directly, as
    # ``new_jaxpr_eqn`` would build it; JAX's own checks (``jax_enable_checks``) take the
    # general route.
    direct = not jax.config.jax_enable_checks
    jaxpr_eqn, new_var, jaxpr_literal = jex_core.JaxprEqn, jex_core.Var, jex_core.Literal
    append = eqns.append
    for node in graph.nodes:
        kind = node.kind
        if kind == 'primitive':
            invars = [jaxpr_literal(v.val, v.aval) if type(v) is Literal else env[v]
                      for v in node.inputs]
            outputs = node.outputs
            outvars = [new_var(v.aval) for v in outputs]
            extra = node.extra
            effects, ctx, source_info = extra.get('effects'), extra.get('ctx'), node.source_info
            if direct and not effects and ctx is not None and source_info is not None:
                append(jaxpr_eqn(invars, outvars, node.op, node.params, _NO_EFFECTS,
                                 source_info, ctx))
            else:
                append(jex_core.new_jaxpr_eqn(invars, outvars, node.op, node.params,
                                              effects or _NO_EFFECTS, source_info, ctx))
            for value, var in zip(outputs, outvars):
                env[value] = var
        elif kind == 'region':
            from .regions import region_kind  # a late import: the kinds lower their bodies here
            invars = [atom(v) for v in node.inputs]
            outvars = [jex_core.Var(v.aval) for v in node.outputs]
            eqns.extend(region_kind(node).lower(node, invars, outvars))
            env.update(zip(node.outputs, outvars))
        elif kind in ('state_read', 'state_write') and not edge_state_ops:
            raise BrainStateError(
                f'Cannot lower {node!r}: state operations must stand at the graph\'s edges. '
                f'Run the hoist-states pass first.')
    return atom


def lower_subgraph(graph: Graph) -> jex_core.ClosedJaxpr:
    """Lower a pure region body: inputs are the body's inputs, outputs its outputs."""
    env, eqns, consts, constvars = {}, [], [], []
    invars = []
    for node in graph.nodes:
        if node.kind == 'input':
            var = jex_core.Var(node.outputs[0].aval)
            env[node.outputs[0]] = var
            invars.append(var)
        elif node.kind == 'constant':
            var = jex_core.Var(node.outputs[0].aval)
            env[node.outputs[0]] = var
            constvars.append(var)
            consts.append(node.params['value'])
    atom = _lower_body(graph, env, eqns)
    outvars = [atom(v) for v in graph.outputs]
    return _close(constvars, invars, outvars, eqns, consts, graph.name)


def _close(constvars, invars, outvars, eqns, consts, name='graph'):
    effects = frozenset().union(*(e.effects for e in eqns)) if eqns else frozenset()
    debug = jex_core.DebugInfo('brainstate', name, None, None)
    jaxpr = jex_core.Jaxpr(constvars, invars, outvars, eqns, effects, debug)
    return jex_core.ClosedJaxpr(jaxpr, consts)


class LoweringError(BrainStateError):
    """Lowering a graph failed; the message names the passes that changed the graph since it
    was last verified, the likeliest cause. The original exception is its ``__cause__``."""


def lower_to_jaxpr(graph: Graph) -> LoweredGraph:
    """Lower a canonical graph (see the hoist-states pass) to a ClosedJaxpr.

    If lowering fails after passes changed the graph without verification (the transforms
    verify only on request, for speed), the error says which passes those were and how to
    find the one that broke the graph: ``brainstate.passes.set_pass_options(verify=True)``.
    """
    try:
        return _lower_to_jaxpr(graph)
    except Exception as error:
        suspects = graph.meta.get('unverified_passes')
        if not suspects:
            raise
        hint = (f"Passes changed graph '{graph.name}' without verification before lowering "
                f"failed ({', '.join(suspects)}; the last to run was {suspects[-1]!r}). One of "
                f"them probably left the IR broken: run with "
                f"`brainstate.passes.set_pass_options(verify=True)` (or PassManager(verify=True)) "
                f"to have the verifier name the pass and the value at fault.")
        if isinstance(error, BrainStateError):
            error.add_note(hint)
            raise
        raise LoweringError(f'Lowering failed with {type(error).__name__}: {error}. '
                            f'{hint}') from error


def _check_write_types(graph: Graph, node) -> None:
    """A state is written with the types it holds (the values written back after the call are
    stored without another check): a pass that broke this, unverified, would otherwise leave
    a State holding a value of another shape or dtype."""
    avals = node.state.avals
    values = node.inputs
    if len(values) == len(avals) and all(
            v.aval.shape == a.shape and v.aval.dtype == a.dtype for v, a in zip(values, avals)):
        return
    if len(values) == len(avals) and node.state in graph.meta.get('reshaped_states', ()):
        return  # a write giving the state new avals on purpose (vmap's out_states)
    from ._printer import describe_node, short_type, value_name
    want = ', '.join(short_type(a) for a in avals)
    got = ', '.join(value_name(v) for v in values)
    raise BrainStateError(
        f'{describe_node(node)} writes State {node.state.label()}, which holds ({want}), with '
        f'({got}). A state keeps its shape and dtype.')


def _lower_to_jaxpr(graph: Graph) -> LoweredGraph:
    if not graph.meta.get('canonical'):
        raise BrainStateError('lower_to_jaxpr needs a canonical graph: run hoist_states first.')
    env: dict = {}
    read_states, written_states = [], []
    state_invars, arg_invars, constvars, consts = [], [], [], []
    write_values = []
    for node in graph.nodes:
        if node.kind == 'input':
            var = jex_core.Var(node.outputs[0].aval)
            env[node.outputs[0]] = var
            arg_invars.append(var)
        elif node.kind == 'state_read':
            read_states.append(node.state)
            for value in node.outputs:
                var = jex_core.Var(value.aval)
                env[value] = var
                state_invars.append(var)
        elif node.kind == 'constant':
            var = jex_core.Var(node.outputs[0].aval)
            env[node.outputs[0]] = var
            constvars.append(var)
            consts.append(node.params['value'])
        elif node.kind == 'state_write':
            written_states.append(node.state)
            write_values.extend(node.inputs)
            _check_write_types(graph, node)
    eqns: list = []
    atom = _lower_body(graph, env, eqns, edge_state_ops=True)
    outputs = graph.outputs
    outvars = [atom(v) for v in outputs] + [atom(v) for v in write_values]
    closed = _close(constvars, state_invars + arg_invars, outvars, eqns, consts, graph.name)
    return LoweredGraph(closed, read_states, written_states, len(arg_invars), len(outputs))
