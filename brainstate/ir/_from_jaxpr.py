"""Building a Graph from a jaxpr recorded while tracing.

``state_read`` / ``state_write`` equations become state nodes; calls whose body is a nested jaxpr
(``jax.jit`` helpers, ``closed_call``) are inlined so the states they touch are seen at this level;
every other primitive becomes a ``primitive`` node carrying its params. A ``region`` equation (a
state-aware loop or branch, see ``_region.py``) becomes one ``region`` node holding its bodies.
A primitive that carries a nested jaxpr we do not inline (raw ``lax.scan``, ``lax.cond``,
``custom_jvp``, ...) must not touch states: its body would run outside brainstate's control, so
that is an error.
"""

from __future__ import annotations

import jax.extend.core as jex_core

from .._compat import CLOSED_CALL_NAME, in_name_scope
from .._errors import BrainStateError
from ._gc import paused_gc
from ._graph import Graph, Literal, Node
from ._primitives import state_read_p, state_write_p

__all__ = ['graph_from_jaxpr']

# Calls that are just "run this jaxpr": inlining them loses nothing.
_INLINED_CALLS = {'jit': 'jaxpr', 'pjit': 'jaxpr', 'closed_call': 'call_jaxpr',
                  CLOSED_CALL_NAME: 'call_jaxpr', 'core_call': 'call_jaxpr', 'call': 'call_jaxpr'}


def _first_state_op(jaxpr, cache: dict):
    """The first state equation anywhere inside ``jaxpr`` (nested jaxprs included), or None."""
    key = id(jaxpr)
    if key in cache:
        return cache[key]
    found = None
    for eqn in jaxpr.eqns:
        if eqn.primitive is state_read_p or eqn.primitive is state_write_p:
            found = eqn
            break
        for sub in jex_core.jaxprs_in_params(eqn.params):
            found = _first_state_op(sub, cache)
            if found is not None:
                break
        if found is not None:
            break
    cache[key] = found
    return found


_JAXPR_TYPES = (jex_core.Jaxpr, jex_core.ClosedJaxpr)


def _jaxprs_in(params: dict) -> list:
    """The jaxprs among an equation's parameters (``jax.extend.core.jaxprs_in_params``, as a
    list; a ClosedJaxpr counts by its jaxpr)."""
    found = []
    for value in params.values():
        if isinstance(value, tuple):
            for item in value:
                if isinstance(item, _JAXPR_TYPES):
                    found.append(item if type(item) is jex_core.Jaxpr else item.jaxpr)
        elif isinstance(value, _JAXPR_TYPES):
            found.append(value if type(value) is jex_core.Jaxpr else value.jaxpr)
    return found


# Primitives seen to be none of: region, state op, inlined call (their equations go straight
# to a primitive node). region_p and the state primitives are never added.
_PLAIN_PRIMITIVES: set = set()


class _Converter:
    """Converts equations into nodes of ``graph``. ``own_bodies``: ``{id(body): body}`` of the
    region bodies bound straight into the jaxpr being converted (see
    :meth:`TraceContext.bind_region <brainstate.ir._trace.TraceContext.own_bodies>`): no JAX
    cache holds them, so the region node takes them as they are instead of copies."""

    def __init__(self, graph: Graph, own_bodies: dict | None = None):
        self.graph = graph
        self.state_op_cache: dict = {}
        self.own_bodies = own_bodies if own_bodies is not None else {}

    def operand(self, env, atom):
        if isinstance(atom, jex_core.Literal):
            return Literal._of_jaxpr(atom)
        return env[atom]

    def bind_outputs(self, env, eqn, node):
        for var, value in zip(eqn.outvars, node.outputs):
            env[var] = value

    def run(self, jaxpr, env, scope=None):
        """Convert ``jaxpr``'s equations. ``scope``: the name stack of the call being inlined
        (its equations' own stacks are relative to it), or None at the top."""
        from ._region import region_p  # a late import: _region builds on this module
        graph = self.graph
        # The common case, one primitive node per equation, takes a short path: the node built
        # directly (Node._primitive) and appended without append's checks when the graph is
        # being built at its end (always, except when a caller converts into an edited graph).
        fast_append = (graph._append_built if graph._insert_anchor is None and
                       graph.output_node is None else graph.append)
        make_node = Node._primitive
        literal_type = jex_core.Literal
        of_literal = Literal._of_jaxpr
        for eqn in jaxpr.eqns:
            if scope:  # keep the caller's jax.named_scope on inlined equations
                eqn = in_name_scope(eqn, scope)
            prim = eqn.primitive
            if prim not in _PLAIN_PRIMITIVES:  # a region, a state op or an inlined call?
                if prim is region_p:
                    self.region(env, eqn)
                    continue
                if prim is state_read_p:
                    node = Node('state_read', state=eqn.params['state'],
                                output_avals=[v.aval for v in eqn.outvars],
                                source_info=eqn.source_info)
                    graph.append(node)
                    self.bind_outputs(env, eqn, node)
                    continue
                if prim is state_write_p:
                    node = Node('state_write', state=eqn.params['state'],
                                inputs=[self.operand(env, a) for a in eqn.invars],
                                source_info=eqn.source_info)
                    graph.append(node)
                    continue
                inner_key = _INLINED_CALLS.get(prim.name)
                if inner_key is not None and inner_key in eqn.params:
                    inner = eqn.params[inner_key]
                    closed = inner if isinstance(inner, jex_core.ClosedJaxpr) else None
                    inner_jaxpr = closed.jaxpr if closed is not None else inner
                    inner_env = {}
                    for var, const in zip(inner_jaxpr.constvars, closed.consts if closed else ()):
                        inner_env[var] = self.constant(const, var.aval)
                    for var, atom in zip(inner_jaxpr.invars, eqn.invars):
                        inner_env[var] = self.operand(env, atom)
                    self.run(inner_jaxpr, inner_env, eqn.source_info.name_stack)
                    for var, atom in zip(eqn.outvars, inner_jaxpr.outvars):
                        env[var] = self.operand(inner_env, atom)
                    continue
                if inner_key is None:  # a primitive never inlined: the short path from now on
                    _PLAIN_PRIMITIVES.add(prim)
            # a plain primitive: one node
            params = eqn.params
            if params:
                for sub in _jaxprs_in(params):
                    self.check_no_state_ops(sub, prim)
            inputs = [of_literal(a) if type(a) is literal_type else env[a]
                      for a in eqn.invars]
            outvars = eqn.outvars
            node = make_node(prim, inputs, [v.aval for v in outvars], dict(params),
                             eqn.source_info, {'effects': eqn.effects, 'ctx': eqn.ctx})
            fast_append(node)
            for var, value in zip(outvars, node.outputs):
                env[var] = value

    def check_no_state_ops(self, sub, prim):
        """Refuse a state operation inside the nested jaxpr ``sub`` of a raw ``prim``."""
        state_eqn = _first_state_op(sub, self.state_op_cache)
        if state_eqn is not None:
            raise BrainStateError(
                f'State {state_eqn.params["state"].label()} is read or written inside '
                f'a raw `{prim.name}` (e.g. jax.lax.scan / cond / while_loop, or a '
                f'custom_jvp/custom_vjp function), whose body brainstate cannot thread '
                f'states through. Use the state-aware version from '
                f'brainstate.transform (for_loop, scan, while_loop, cond, ...), or pass '
                f'the state\'s value in as an argument.')

    def region(self, env, eqn):
        """A state-aware loop or branch: one ``region`` node holding (copies of) its bodies.

        The bodies are copied because JAX may cache the jaxpr holding this equation (a raw
        ``jax.jit`` helper traced twice), and passes edit bodies in place; except the bodies
        bound straight into the jaxpr being converted (``own_bodies``), each taken once."""
        params = dict(eqn.params)
        name, bodies = params.pop('name'), params.pop('bodies')
        params.pop('out_avals')
        own = self.own_bodies
        subgraphs = [body if own.pop(id(body), None) is body else body.copy()
                     for body in bodies]
        node = Node('region', op=name, inputs=[self.operand(env, a) for a in eqn.invars],
                    output_avals=[v.aval for v in eqn.outvars], params=params,
                    subgraphs=subgraphs, source_info=eqn.source_info)
        self.graph.append(node)
        self.bind_outputs(env, eqn, node)

    def constant(self, value, aval):
        node = Node('constant', output_avals=[aval], params={'value': value})
        self.graph.append(node)
        return node.outputs[0]


def graph_from_jaxpr(closed_jaxpr, name: str = 'graph', input_names=None,
                     own_bodies: dict | None = None) -> Graph:
    """Convert a ClosedJaxpr (possibly holding state primitives) into a Graph.

    ``own_bodies``: region bodies no JAX cache holds, taken without a copy (the tracer's)."""
    with paused_gc():  # see _gc.py
        return _graph_from_jaxpr(closed_jaxpr, name, input_names, own_bodies)


def _graph_from_jaxpr(closed_jaxpr, name, input_names, own_bodies=None) -> Graph:
    graph = Graph(name)
    converter = _Converter(graph, own_bodies)
    jaxpr = closed_jaxpr.jaxpr
    env = {}
    names = list(input_names) if input_names is not None else [None] * len(jaxpr.invars)
    for var, label in zip(jaxpr.invars, names):
        env[var] = graph.add_input(var.aval, label)
    for var, const in zip(jaxpr.constvars, closed_jaxpr.consts):
        env[var] = converter.constant(const, var.aval)
    converter.run(jaxpr, env)
    graph.set_outputs([converter.operand(env, atom) for atom in jaxpr.outvars])
    return graph
