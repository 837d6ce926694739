"""cse: common subexpression elimination.

Two pure primitive nodes with the same operation, parameters and operands compute the same
values: the later one is replaced by the earlier one. Constants holding the same array object
merge too. Literal operands are the same only when their dtype, shape and bits are (``0.0``
and ``-0.0`` are different constants: ``x * 0.0`` and ``x * -0.0`` differ when ``x < 0``). Recurses into region bodies (each body on its own: regions are closed).
"""

from __future__ import annotations

from ..ir import Literal
from ._pass import PassStatistics, register

__all__ = ['common_subexpression_elimination']


def _node_key(node):
    """What makes two nodes compute the same values (None: never merged). May be unhashable
    (a parameter holding an array): the caller then leaves the node alone."""
    kind = node.kind
    if kind == 'primitive':
        params = node.params
        # JAX builds a primitive's params in a fixed order: no need to sort them. Values hash
        # by identity: the operand itself is its key.
        key = [node.op, tuple(params.items()) if params else ()]
        for value in node.inputs:
            key.append(value if type(value) is not Literal else value.key())
        return tuple(key)
    if kind == 'constant':
        return ('constant', id(node.params['value']))
    return None


@register('cse')
def common_subexpression_elimination(graph, stats=None):
    """Merge pure operations that compute the same values from the same operands."""
    stats = PassStatistics() if stats is None else stats
    seen = {}
    merged = 0
    for node in graph.nodes:
        if node.subgraphs:
            for sub in node.subgraphs:
                common_subexpression_elimination(sub, stats)
        key = _node_key(node)
        if key is None:
            continue
        try:
            earlier = seen.setdefault(key, node)
        except TypeError:  # an unhashable parameter (e.g. an array): leave the node alone
            continue
        # An operation with a JAX effect is never merged (its effect would run once); asked
        # only of a match, since the same operation and params have the same effects.
        if earlier is node or node.has_effect or earlier.has_effect:
            continue
        for mine, theirs in zip(node.outputs, earlier.outputs):
            mine.replace_all_uses_with(theirs)
        graph.erase_node(node)
        merged += 1
    if merged:
        stats['nodes merged'] += merged
    return graph
