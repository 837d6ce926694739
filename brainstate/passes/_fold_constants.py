"""fold-constants: evaluate scalar arithmetic on literals at compile time.

A pure primitive whose operands are all scalar literals and whose results are scalars is
computed once now, and its uses take the results as literals (``add 1.0 2.0`` becomes ``3.0``).
Recurses into region bodies.
"""

from __future__ import annotations

import jax
import numpy as np

from ..ir import Literal
from ._pass import PassStatistics, register

__all__ = ['fold_constants']


def _foldable(node) -> bool:
    if node.kind != 'primitive' or not node.inputs:
        return False
    for value in node.inputs:  # cheapest test first: most nodes have a non-literal operand
        if type(value) is not Literal or value.aval.shape != ():
            return False
    return (not node.has_effect and
            all(v.aval.shape == () for v in node.outputs) and
            all(_plain_number(v.aval.dtype) for v in node.outputs))


def _plain_number(dtype) -> bool:
    """A numeric or boolean dtype (not an extended one such as a typed PRNG key)."""
    try:
        return np.issubdtype(dtype, np.number) or dtype == np.bool_
    except TypeError:  # numpy cannot interpret an extended dtype
        return False


def _evaluate(node, cache: dict):
    """The node's results as Literals, computed once per distinct operation and operands
    (operands compared by dtype, shape and bits: ``-0.0`` is not ``0.0``)."""
    try:
        key = (node.op, tuple(node.params.items()),
               tuple(v.key() for v in node.inputs))
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in cache:
        return cache[key]
    try:
        # Passes can run while JAX traces (a jit retracing): force eager evaluation.
        with jax.ensure_compile_time_eval():
            results = node.op.bind(*[v.val for v in node.inputs], **node.params)
    except Exception:  # leave anything JAX cannot evaluate eagerly to XLA
        results = None
    if results is not None:
        if not node.op.multiple_results:
            results = [results]
        results = [Literal(np.asarray(r, dtype=v.aval.dtype)[()], v.aval)
                   for v, r in zip(node.outputs, results)]
    if key is not None:
        cache[key] = results
    return results


@register('fold-constants')
def fold_constants(graph, stats=None, _cache=None):
    """Compute scalar operations on literal operands at compile time."""
    stats = PassStatistics() if stats is None else stats
    cache = _cache if _cache is not None else {}
    for node in graph.nodes:
        for sub in node.subgraphs:
            fold_constants(sub, stats, _cache=cache)
        if not _foldable(node):
            continue
        results = _evaluate(node, cache)
        if results is None:
            continue
        for value, literal in zip(node.outputs, results):
            value.replace_all_uses_with(literal)
        graph.erase_node(node)
        stats['operations folded'] += 1
    return graph
