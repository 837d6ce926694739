"""Tracing a Python function into the state IR.

While a :class:`TraceContext` is active, ``State.value`` reads and writes bind the
``state_read`` / ``state_write`` primitives, so JAX's tracer records them in program order
between the ordinary primitives; the jaxpr is then converted into a :class:`Graph`.
The States' stored values are never touched while tracing.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Sequence

import jax
from jax.extend import source_info_util

from .. import _state
from .._compat import (current_jax_trace, inside_brainstate_trace, set_debug_info,
                       trace_to_closed_jaxpr)
from .._errors import StateArgumentError, StateValueError
from .._state import State
from ._from_jaxpr import graph_from_jaxpr
from ._primitives import state_read_p, state_write_p

__all__ = ['TraceContext', 'trace', 'trace_flat']

# Frames inside brainstate are not "user code": source locations skip them.
source_info_util.register_exclusion(os.path.dirname(os.path.dirname(__file__)) + os.sep)


class TraceContext:
    """Records state operations while a brainstate transform traces a function.

    States created during the trace belong to it: they behave as plain Python variables inside
    it, and their final values are written at the end, so the transform can store real values
    in them afterwards.
    """

    def __init__(self, forward_reads: bool = True):
        self.forward_reads = forward_reads
        self.new_states: list[State] = []
        self._new_ids: set[int] = set()
        # States written with new avals (vmap's out_states): the graph's meta names them, so
        # the verifier accepts their writes (see brainstate/ir/_verifier.py).
        self.reshaped: set = set()
        # The avals of their last write: a later read in this trace sees the written value.
        self._written_avals: dict = {}
        self.convert_seconds = 0.  # of the jaxpr into the Graph (the rest of a trace is JAX's)
        # The value each state has at this point of the trace, as tracers of the JAX trace
        # that recorded them: ``{state: (jax trace, leaves)}``. A read in that same trace
        # returns them instead of recording another state_read (store-to-load forwarding at
        # trace time, what hoist-states does later anyway: the lowered program is the same,
        # with fewer nodes to record, convert and hoist). Forgotten when a region binds
        # (its bodies may write any state: see forget_values). Off (``forward_reads=False``)
        # where the graph as traced is what is asked for (``jit(f).ir()``,
        # ``brainstate.ir.trace``): there every read stands where the code made it.
        self._values: dict = {}
        # The JAX trace this context records into (set when its function starts), and the
        # region bodies bound straight into it, ``{id(body): body}``: no JAX cache holds
        # those (a raw jax.jit helper's jaxpr, which a later trace may reuse, is another JAX
        # trace), so converting the jaxpr takes them without a copy (see bind_region).
        self.jax_trace = None
        self.own_bodies: dict = {}

    def register_new_state(self, state: State):
        self.new_states.append(state)
        self._new_ids.add(id(state))

    def read(self, state: State):
        if id(state) in self._new_ids:
            return state._value
        if '_value' not in state.__dict__ and '_created_at' in state.__dict__:
            state._missing_value()  # raises: a state created by a trace that left it no value
        if not self.forward_reads:
            avals = self._written_avals.get(state) if self._written_avals else None
            leaves = state_read_p.bind(state=state, avals=state.avals if avals is None else avals)
            return state._treedef.unflatten(leaves)
        known = self._values.get(state)
        trace = current_jax_trace()
        if known is not None and known[0] is trace and trace is not None:
            return state._treedef.unflatten(known[1])
        # ``state.avals``: the avals the program being compiled sees (vmap's per-lane view).
        avals = self._written_avals.get(state) if self._written_avals else None
        leaves = state_read_p.bind(state=state, avals=state.avals if avals is None else avals)
        self._values[state] = (trace, leaves)
        return state._treedef.unflatten(leaves)

    def _remember_write(self, state: State, leaves, avals):
        """Keep written leaves for later reads when a read would give exactly them: tracers
        (not NumPy or concrete arrays, which a read never returns) of exactly the types a read
        has (a weakly typed value is stored strong, so a read of it differs: not kept)."""
        for leaf, aval in zip(leaves, avals):
            if not isinstance(leaf, jax.core.Tracer):
                break
            have = leaf.aval
            if have.shape != aval.shape or have.dtype != aval.dtype or \
                    getattr(have, 'weak_type', False) != getattr(aval, 'weak_type', False):
                break
        else:
            self._values[state] = (current_jax_trace(), list(leaves))
            return
        self._values.pop(state, None)

    def take_own_bodies(self) -> dict:
        """The bodies bound straight into this context's JAX trace (handed over once)."""
        bodies, self.own_bodies = self.own_bodies, {}
        self.jax_trace = None
        return bodies

    def forget_values(self):
        """Forget the remembered state values (a region was bound: its bodies may have written
        any state, so the next read of each is recorded again)."""
        self._values.clear()

    def write(self, state: State, value, reshape: bool = False):
        """Record a write. ``reshape``: the value may have other shapes or dtypes than the
        state's (vmap's ``out_states`` gives a state its batch axis); the tree structure must
        stay. The transform that compiles the trace stores the new avals with the value."""
        if reshape:
            self.reshaped.add(state)
            leaves, treedef = jax.tree.flatten(value)
            if treedef != state._treedef:
                leaves = state.check_compatible(value)  # raises, naming the state
            leaves = [jax.numpy.asarray(leaf) for leaf in leaves]
            self._written_avals[state] = tuple(
                jax.core.ShapedArray(jax.numpy.shape(x), jax.numpy.result_type(x),
                                     weak_type=getattr(jax.typeof(x), 'weak_type', False))
                for x in leaves)
        else:
            avals = self._written_avals.get(state) if self._written_avals else None
            try:
                leaves = state.check_compatible(value, state.written_avals if avals is None else avals)
            except StateValueError:
                lanes = _state._LANE_VIEW.lanes
                may_reshape = getattr(lanes, 'may_reshape', None)
                if may_reshape is None or id(state) in self._new_ids or \
                        not may_reshape(state):
                    raise
                # vmap2: a state read shared may take another shape from its lanes (its stored
                # value gets the batch axis when they differ, see StatefulMapping).
                return self.write(state, value, reshape=True)
        if id(state) in self._new_ids:
            state._value = state._treedef.unflatten(leaves)
            return
        state_write_p.bind(*leaves, state=state)
        if self.forward_reads:
            read_avals = self._written_avals.get(state) if self._written_avals else None
            self._remember_write(state, leaves,
                                 state.avals if read_avals is None else read_avals)

    def promote_new_states(self):
        """Make the states created so far ordinary states of this trace: their current value
        is recorded as a write here, and from now on they are read and written with state
        operations like any other. A region calls this before tracing its bodies, so a body
        may read and write a state its enclosing function created (it becomes a loop carry or
        branch operand like any state)."""
        for state in self.new_states:
            if id(state) in self._new_ids:
                self._new_ids.discard(id(state))
                state_write_p.bind(*jax.tree.leaves(state._value), state=state)

    def finish(self):
        """Record the final values of states created during the trace as writes (those not
        promoted already: theirs are written by their last state operation)."""
        for state in self.new_states:
            if id(state) in self._new_ids:
                leaves = jax.tree.leaves(state._value)
                self._new_ids.discard(id(state))
                state_write_p.bind(*leaves, state=state)

    def scrub_new_states(self):
        """Drop the tracers held by states created during the trace: until the transform that
        traced stores their real values (after running the compiled code), they have none,
        and reading one raises a TraceContextError saying where it was created."""
        for state in self.new_states:
            state.__dict__.pop('_value', None)


def _check_no_states(tree, what: str, name: str):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, State):
            where = jax.tree_util.keystr(path) or '(the whole value)'
            raise StateArgumentError(
                f'{name} {what} State {leaf.label()} at {where}. States are not values: '
                f'{"read the state inside the function instead of passing it in" if what == "received" else "return `state.value` instead"}'
                f' (the transform threads states for you).')


def trace_flat(flat_fun: Callable, in_avals: Sequence, name: str = 'graph',
               input_names=None, user_fun: Callable | None = None, arg_names=None,
               forward_reads: bool = True):
    """Trace ``flat_fun(*leaves) -> list of leaves`` at ``in_avals`` into a Graph.

    ``user_fun`` / ``arg_names``: the function and the names of the leaves (``'x'``,
    ``"params['w']"``) JAX's errors about traced values should name (default: the wrapper).
    ``forward_reads``: a state read again in the same JAX trace, with no region in between,
    gives the value already known instead of another ``state_read`` (False: every read is
    recorded, the graph exactly as the code ran).

    Returns ``(graph, context)``; the context lists the states created during the trace.
    """
    ctx = TraceContext(forward_reads)

    def traced(*leaves):
        _state.TRACE_STACK.append(ctx)
        ctx.jax_trace = current_jax_trace()
        try:
            outs = flat_fun(*leaves)
            ctx.finish()
        finally:
            popped = _state.TRACE_STACK.pop()
            ctx.forget_values()  # tracers of a finished trace: a kept context must not hold them
            assert popped is ctx, 'brainstate trace stack corrupted'
        return outs

    if user_fun is not None and arg_names is not None and len(arg_names) == len(in_avals):
        set_debug_info(traced, user_fun, arg_names)
    try:
        with inside_brainstate_trace():
            closed = trace_to_closed_jaxpr(traced, in_avals)
    except BaseException:
        ctx.scrub_new_states()
        raise
    ctx.scrub_new_states()
    start = time.perf_counter()
    graph = graph_from_jaxpr(closed, name=name, input_names=input_names,
                             own_bodies=ctx.take_own_bodies())
    ctx.convert_seconds = time.perf_counter() - start
    if ctx.reshaped:
        graph.meta['reshaped_states'] = frozenset(ctx.reshaped)
    return graph, ctx


def _aval_of(x):
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    aval = jax.typeof(x)
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)


def trace(fun: Callable, *args, **kwargs):
    """Trace ``fun(*args, **kwargs)`` into a Graph of the state IR, as traced (no passes).

    Arguments may be arrays or ``jax.ShapeDtypeStruct``; the graph's inputs are their leaves.

    Example::

        graph = brainstate.ir.trace(step, jnp.ones(3))
        print(graph)
    """
    _check_no_states((args, kwargs), 'received', getattr(fun, '__name__', 'function'))
    leaves, in_tree = jax.tree.flatten((args, kwargs))
    out_tree_box = []

    def flat_fun(*flat):
        a, k = jax.tree.unflatten(in_tree, flat)
        out = fun(*a, **k)
        _check_no_states(out, 'returned', getattr(fun, '__name__', 'function'))
        out_leaves, out_tree = jax.tree.flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    graph, _ = trace_flat(flat_fun, [_aval_of(x) for x in leaves],
                          name=getattr(fun, '__name__', 'graph'), forward_reads=False)
    graph.in_tree, graph.out_tree = in_tree, out_tree_box[-1]
    return graph
