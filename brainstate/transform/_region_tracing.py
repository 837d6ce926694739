"""Helpers shared by the state-aware loops, branches and checkpoint: checking and flattening
their arguments and tracing their bodies into region graphs."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from .._errors import ArgumentTypeError, StateArgumentError
from .._state import State
from ..ir import Graph, trace_body

__all__ = ['as_leaves', 'strong_aval', 'fun_name', 'check_no_states', 'trace_region_body',
           'check_types', 'unify_closures']


def fun_name(fun) -> str:
    return getattr(fun, '__name__', type(fun).__name__)


def check_no_states(tree, what: str, where: str):
    """Raise StateArgumentError if a State object is passed to or returned from a body."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(
            tree, is_leaf=lambda x: isinstance(x, State))[0]:
        if isinstance(leaf, State):
            at = jax.tree_util.keystr(path) or '(the whole value)'
            hint = ('read `state.value` inside the function instead' if what == 'received'
                    else 'return `state.value` instead')
            raise StateArgumentError(
                f'{where} {what} State {leaf.label()} at {at}. States are not values: {hint} '
                f'(the loop or branch threads states for you).')


def as_leaves(tree, where: str):
    """Flatten ``tree`` into JAX values (Python numbers become weakly typed arrays)."""
    check_no_states(tree, 'received', where)
    leaves, treedef = jax.tree.flatten(tree)
    out = []
    for leaf in leaves:
        if not isinstance(leaf, (jax.Array, jax.core.Tracer)):
            try:
                leaf = jnp.asarray(leaf)
            except TypeError:
                raise ArgumentTypeError(
                    f'{where} received a {type(leaf).__name__}, which is not an '
                    f'array; pass arrays or pytrees of arrays.') from None
        out.append(leaf)
    return out, treedef


def aval_of(x) -> jax.core.ShapedArray:
    aval = jax.typeof(x)
    return jax.core.ShapedArray(aval.shape, aval.dtype, weak_type=aval.weak_type)


def strong_aval(aval) -> jax.core.ShapedArray:
    return jax.core.ShapedArray(aval.shape, aval.dtype)


def to_aval(value, aval):
    """Cast a leaf to ``aval``'s dtype (and strong type)."""
    have = jax.typeof(value)
    if have.dtype != aval.dtype or (have.weak_type and not aval.weak_type):
        return lax.convert_element_type(value, aval.dtype)
    return value


def trace_region_body(flat_fun: Callable, in_avals: Sequence, name: str, region: str):
    """Trace a body into a region graph; see :func:`brainstate.ir.trace_body`."""
    return trace_body(flat_fun, in_avals, name=name, region=region)


def describe_leaf(treedef, index: int) -> str:
    dummy = jax.tree.unflatten(treedef, list(range(treedef.num_leaves)))
    for path, leaf in jax.tree_util.tree_flatten_with_path(dummy)[0]:
        if leaf == index:
            return jax.tree_util.keystr(path) or '(the whole value)'
    return f'leaf {index}'


def _short(shape, dtype) -> str:
    return jax.core.ShapedArray(shape, dtype).str_short(short_dtypes=True)


def check_types(expected: Sequence, got: Sequence, treedef, what: str,
                hint: str = 'a loop carry must keep one shape and dtype'):
    """Raise TypeError naming the first leaf whose shape or dtype differs."""
    for i, (want, have) in enumerate(zip(expected, got)):
        if want.shape != have.shape or want.dtype != have.dtype:
            raise ArgumentTypeError(
                f'{what} at {describe_leaf(treedef, i)} has type {_short(have.shape, have.dtype)}'
                f' but {_short(want.shape, want.dtype)} was expected: {hint}. Cast it (e.g. '
                f'`.astype(...)`), reshape it, or give the initial value the right type.')


def unify_closures(traced: list[tuple[Graph, list]]) -> tuple[list[Graph], list]:
    """Give every body the same closure inputs: the union of what each closed over.

    ``traced`` holds ``(graph, closure)`` pairs from :func:`trace_body` (closure inputs first).
    Returns the graphs (edited in place) and the shared closure list.
    """
    shared, index = [], {}
    for _, closure in traced:
        for value in closure:
            if id(value) not in index:
                index[id(value)] = len(shared)
                shared.append(value)
    graphs = []
    for graph, closure in traced:
        inputs = graph.inputs
        own = {id(v): inp for v, inp in zip(closure, inputs[:len(closure)])}
        rest = inputs[len(closure):]
        ordered = []
        for value in shared:
            inp = own.get(id(value))
            if inp is None:
                inp = graph.add_input(aval_of(value), 'closure')
            ordered.append(inp)
        first_other = next(n for n in graph.nodes if n.kind != 'input')
        for inp in ordered + rest:
            graph.move_before(first_other, inp.producer)
        graphs.append(graph)
    return graphs, shared
