"""cse: common subexpression elimination.

Two pure primitive nodes with the same operation, parameters and operands compute the same
values: the later one is replaced by the earlier one. Constants holding the same array object
merge too. Literal operands are the same only when their dtype, shape and bits are (``0.0``
and ``-0.0`` are different constants: ``x * 0.0`` and ``x * -0.0`` differ when ``x < 0``). Recurses into region bodies (each body on its own: regions are closed).
"""

from __future__ import annotations

import numpy as np

from ..ir import Literal
from ._pass import PassStatistics, register

__all__ = ['common_subexpression_elimination']


def param_key(value):
    """A hashable stand-in for a primitive parameter that is equal exactly when the values are:
    numbers and strings themselves, containers element-wise, arrays by shape, dtype and bytes,
    anything else (a jaxpr, a function) by identity."""
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(param_key(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, param_key(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray):
        return ('ndarray', value.shape, str(value.dtype), value.tobytes())
    if hasattr(value, 'shape') and hasattr(value, 'dtype'):
        try:
            array = np.asarray(value)
            return ('array', array.shape, str(array.dtype), array.tobytes())
        except Exception:  # not convertible (a tracer, an odd array-like): by identity
            return ('id', id(value))
    return ('id', id(value))


def _node_key(node):
    kind = node.kind
    if kind == 'constant':
        return ('constant', id(node.params['value']))
    if kind != 'primitive' or node.extra.get('effects'):
        return None
    params = node.params
    # Values hash by identity: the operand itself is its key.
    operands = tuple(v if type(v) is not Literal else v.key() for v in node.inputs)
    try:
        # JAX builds a primitive's params in a fixed order: no need to sort them.
        key = (node.op, tuple(params.items()) if params else (), operands)
        hash(key)
    except TypeError:  # an unhashable parameter (e.g. an array): compare by contents
        try:
            key = (node.op, tuple((k, param_key(v)) for k, v in params.items()), operands)
            hash(key)
        except TypeError:
            return None
    return key


@register('cse')
def common_subexpression_elimination(graph, stats=None):
    """Merge pure operations that compute the same values from the same operands."""
    stats = PassStatistics() if stats is None else stats
    seen = {}
    for node in graph.nodes:
        for sub in node.subgraphs:
            common_subexpression_elimination(sub, stats)
        key = _node_key(node)
        if key is None:
            continue
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = node
            continue
        for mine, theirs in zip(node.outputs, earlier.outputs):
            mine.replace_all_uses_with(theirs)
        graph.erase_node(node)
        stats['nodes merged'] += 1
    return graph
