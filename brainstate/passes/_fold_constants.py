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
    return (node.kind == 'primitive' and not node.has_effect and node.inputs and
            all(isinstance(v, Literal) and v.aval.shape == () for v in node.inputs) and
            all(v.aval.shape == () for v in node.outputs) and
            all(np.issubdtype(v.aval.dtype, np.number) or v.aval.dtype == np.bool_
                for v in node.outputs))


@register('fold-constants')
def fold_constants(graph, stats=None):
    """Compute scalar operations on literal operands at compile time."""
    stats = PassStatistics() if stats is None else stats
    for node in graph.nodes:
        for sub in node.subgraphs:
            fold_constants(sub, stats)
        if not _foldable(node):
            continue
        try:
            # Passes can run while JAX traces (a jit retracing): force eager evaluation.
            with jax.ensure_compile_time_eval():
                results = node.op.bind(*[v.val for v in node.inputs], **node.params)
        except Exception:  # leave anything JAX cannot evaluate eagerly to XLA
            continue
        if not node.op.multiple_results:
            results = [results]
        for value, result in zip(node.outputs, results):
            literal = Literal(np.asarray(result, dtype=value.aval.dtype)[()], value.aval)
            value.replace_all_uses_with(literal)
        graph.erase_node(node)
        stats['operations folded'] += 1
    return graph
