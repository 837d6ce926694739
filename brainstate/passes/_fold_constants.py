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
    for value in node.inputs:
        if type(value) is not Literal or value.aval.shape != ():
            return False
    if node.has_effect:
        return False
    for value in node.outputs:
        if value.aval.shape != () or not _plain_number(value.aval.dtype):
            return False
    return True


_PLAIN_NUMBER: dict = {}  # dtype -> whether it is a plain number (numpy's test is slow)


def _plain_number(dtype) -> bool:
    """A numeric or boolean dtype (not an extended one such as a typed PRNG key)."""
    plain = _PLAIN_NUMBER.get(dtype)
    if plain is None:
        try:
            plain = bool(np.issubdtype(dtype, np.number) or dtype == np.bool_)
        except TypeError:  # numpy cannot interpret an extended dtype
            plain = False
        _PLAIN_NUMBER[dtype] = plain
    return plain


_NOT_CACHED = object()


def _evaluate(node, cache: dict):
    """The node's results as Literals, computed once per distinct operation and operands
    (operands compared by dtype, shape and bits: ``-0.0`` is not ``0.0``)."""
    key = (node.op, tuple(node.params.items()), tuple([v.key() for v in node.inputs]))
    try:
        results = cache.get(key, _NOT_CACHED)
    except TypeError:  # an unhashable parameter: evaluate, without memo
        key, results = None, _NOT_CACHED
    if results is not _NOT_CACHED:
        return results
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
    folded = 0
    for node in graph.nodes:
        kind = node.kind
        if kind == 'region':
            for sub in node.subgraphs:
                fold_constants(sub, stats, _cache=cache)
            continue
        # Most nodes have a first operand that is not a literal: rule them out first.
        if kind != 'primitive' or not node.inputs or type(node.inputs[0]) is not Literal or \
                not _foldable(node):
            continue
        results = _evaluate(node, cache)
        if results is None:
            continue
        for value, literal in zip(node.outputs, results):
            value.replace_all_uses_with(literal)
        graph.erase_node(node)
        folded += 1
    if folded:
        stats['operations folded'] += folded
    return graph
