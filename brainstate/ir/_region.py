"""Regions: loops and branches as single nodes holding their body graphs.

A state-aware loop or branch (``brainstate.transform.for_loop``, ``cond``, ...) traces each of
its bodies into its own :class:`Graph` with :func:`trace_body`, then binds :data:`region_p` in the
enclosing trace. The enclosing trace (``_compat.trace_to_closed_jaxpr``) records that as one equation, which
:func:`~brainstate.ir.graph_from_jaxpr` turns into one ``region`` node whose ``subgraphs`` are the
bodies. The bodies keep their ``state_read`` / ``state_write`` nodes: making them pure is the job
of the hoist-states pass, and lowering them to ``lax.scan`` / ``lax.while_loop`` / ``lax.switch``
/ ``jax.checkpoint`` the job of lowering; both ask the region's kind
(:mod:`brainstate.ir.regions`, one file per kind).

Regions are closed: a body sees the outer program only through its inputs. Values the body's
Python code closed over (tracers of the enclosing trace, or concrete arrays) become extra body
inputs, and the region node receives them as operands. Each region kind fixes the order of its
operands; see :class:`brainstate.ir.regions.RegionKind` and ``kind.signature(node)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.extend.core as jex_core
from jax.interpreters import ad, batching, mlir

from .. import _state
from .._compat import current_jax_trace, trace_to_closed_jaxpr
from .._errors import BrainStateError
from ._from_jaxpr import _Converter
from ._graph import Graph
from ._trace import TraceContext

__all__ = ['region_p', 'trace_body', 'bind_region', 'BodyTraceContext']

_FRIENDLY_NAMES = {'scan': 'loop', 'while': 'while_loop', 'cond': 'branch',
                   'checkpoint': 'checkpoint'}

region_p = jex_core.Primitive('region')
region_p.multiple_results = True


def _region_abstract_eval(*operands, name, bodies, out_avals, **options):
    return list(out_avals)


def _region_outside_trace(*args, name, **params):
    raise BrainStateError(
        f'A brainstate `{name}` region reached JAX without being lowered. This happens when a '
        f'state-aware loop or branch (brainstate.transform.for_loop, cond, ...) runs inside a raw '
        f'JAX transform such as `jax.jit`, `jax.vmap` or `jax.grad`. Use the brainstate '
        f'transforms (brainstate.transform.jit, ...) for the enclosing function too.')


def _region_under_raw_transform(transform):
    def rule(*args, name, **params):
        raise BrainStateError(
            f'A brainstate `{name}` region (a state-aware loop or branch) was traced under raw '
            f'`{transform}` inside a brainstate transform. Raw JAX transforms cannot see the '
            f'states a region threads; use the brainstate version (brainstate.transform.grad, '
            f'.vmap, ...) around the loop instead.')
    return rule


region_p.def_abstract_eval(_region_abstract_eval)
region_p.def_impl(_region_outside_trace)
mlir.register_lowering(region_p, _region_outside_trace)
ad.primitive_jvps[region_p] = _region_under_raw_transform('jax.grad / jax.jvp')
batching.primitive_batchers[region_p] = _region_under_raw_transform('jax.vmap')


class BodyTraceContext(TraceContext):
    """The trace context of a region body.

    Reads and writes of States record state operations inside the body, like the top-level
    context. States created by an *enclosing* trace are plain variables there: the body may read
    them (their current value is closed over) but not write them, since the enclosing trace
    keeps their value in Python and cannot see a write that happens once per iteration. States
    created inside the body are local to one run of the body.
    """

    def __init__(self, parent: TraceContext | None, region: str):
        super().__init__(getattr(parent, 'forward_reads', True))
        self.parent = parent
        self.region = region

    def _created_outside(self, state) -> bool:
        ctx = self.parent
        while ctx is not None:
            if id(state) in ctx._new_ids:
                return True
            ctx = getattr(ctx, 'parent', None)
        return False

    def read(self, state):
        if id(state) not in self._new_ids and self._created_outside(state):
            return state._value
        return super().read(state)

    def write(self, state, value):
        if id(state) not in self._new_ids and self._created_outside(state):
            raise BrainStateError(
                f'State {state.label()} was created inside an enclosing loop or branch body '
                f'and is written inside a nested {_FRIENDLY_NAMES.get(self.region, self.region)} '
                f'body. Create the state (or its Module) outside the enclosing body, or carry '
                f'the value through the loop instead of a State.')
        super().write(state, value)

    def finish(self):
        """States created inside the body are local to it: nothing to record."""


def _aval(x):
    if isinstance(x, jax.core.ShapedArray):
        return x
    return jax.core.ShapedArray(x.shape, x.dtype, weak_type=getattr(x, 'weak_type', False))


def trace_body(flat_fun: Callable, in_avals: Sequence, name: str, region: str):
    """Trace a region body ``flat_fun(*leaves) -> list of leaves`` into a Graph.

    Must be called while a brainstate trace is active (the region's enclosing trace). Returns
    ``(graph, closure)``: the graph's inputs are the values it closed over (``closure``, tracers
    of the enclosing trace or arrays, in order) followed by one input per entry of ``in_avals``.
    """
    parent = _state.TRACE_STACK[-1] if _state.TRACE_STACK else None
    if parent is not None and not isinstance(parent, BodyTraceContext):
        # States the enclosing function created so far become ordinary states, which the
        # body may read and write (a body's own new states stay local to one run of it).
        parent.promote_new_states()
    ctx = BodyTraceContext(parent, region)

    def traced(*leaves):
        _state.TRACE_STACK.append(ctx)
        ctx.jax_trace = current_jax_trace()
        try:
            return list(flat_fun(*leaves))
        finally:
            popped = _state.TRACE_STACK.pop()
            ctx.forget_values()  # tracers of a finished trace: a kept context must not hold them
            assert popped is ctx, 'brainstate trace stack corrupted'

    try:
        closed = trace_to_closed_jaxpr(traced, [
            jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=getattr(a, 'weak_type', False))
            for a in in_avals])
    finally:
        ctx.scrub_new_states()
    jaxpr = closed.jaxpr
    graph = Graph(name)
    converter = _Converter(graph, ctx.take_own_bodies())
    env = {}
    # Deduplicate closed-over values (the same tracer captured twice is one operand).
    closure, seen = [], {}
    for var, const in zip(jaxpr.constvars, closed.consts):
        key = id(const)
        if key in seen:
            env[var] = seen[key]
            continue
        seen[key] = env[var] = graph.add_input(_aval(var.aval), 'closure')
        closure.append(const)
    for var in jaxpr.invars:
        env[var] = graph.add_input(var.aval)
    converter.run(jaxpr, env)
    graph.set_outputs([converter.operand(env, atom) for atom in jaxpr.outvars])
    return graph, closure


def bind_region(name: str, operands: Sequence, bodies: Sequence[Graph], out_avals: Sequence,
                **options):
    """Record a region in the enclosing trace; returns its results (tracers)."""
    if _state.TRACE_STACK:
        ctx = _state.TRACE_STACK[-1]
        ctx.forget_values()  # the bodies may write any state: later reads record again
        trace = current_jax_trace()
        if trace is not None and trace is ctx.jax_trace:  # straight into the context's jaxpr
            ctx.own_bodies.update((id(body), body) for body in bodies)
    return region_p.bind(*operands, name=name, bodies=tuple(bodies),
                         out_avals=tuple(_aval(a) for a in out_avals), **options)
