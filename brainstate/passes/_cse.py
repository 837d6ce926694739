"""cse: common subexpression elimination.

Two pure primitive nodes with the same operation, parameters and operands compute the same
values: the later one is replaced by the earlier one. Constants holding the same array object
merge too. Literal operands are the same only when their dtype, shape and bits are (``0.0``
and ``-0.0`` are different constants: ``x * 0.0`` and ``x * -0.0`` differ when ``x < 0``).
Recurses into region bodies (each body on its own: regions are closed).

Nodes are matched on their operation and operands first, and their parameters are compared
only between nodes that match there: most nodes match no earlier one, so their parameters (for
``dot_general`` or a convolution, nested tuples) are never hashed.
"""

from __future__ import annotations

import numpy as np

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


def _params_key(node):
    """The node's parameters as a hashable key, or None when one cannot be hashed (e.g. an
    array): such a node is left alone. JAX builds a primitive's params in a fixed order."""
    if node.kind == 'constant':
        return ()  # the array object itself is in the operation key
    key = tuple(node.params.items())
    try:
        hash(key)
    except TypeError:  # an unhashable parameter (e.g. an array): compare by contents
        key = tuple((k, param_key(v)) for k, v in node.params.items())
        try:
            hash(key)
        except TypeError:
            return None
    return key


@register('cse')
def common_subexpression_elimination(graph, stats=None):
    """Merge pure operations that compute the same values from the same operands."""
    stats = PassStatistics() if stats is None else stats
    first = {}    # operation key -> the first node with it
    by_params = {}  # operation key -> {params key: the first node with them}, once two match
    merged = 0
    for node in graph.nodes:
        # The operation and operands are the key: Values compare by identity, Literals by
        # dtype, shape and bits.
        kind = node.kind
        if kind == 'primitive':
            key = (node.op, *node.inputs)
        elif kind == 'constant':
            key = ('constant', id(node.params['value']))
        else:
            if kind == 'region':
                for sub in node.subgraphs:
                    common_subexpression_elimination(sub, stats)
            continue
        earlier = first.setdefault(key, node)
        if earlier is node:
            continue
        if node.params or earlier.params:  # (nodes without params match at once)
            group = by_params.get(key)
            if group is None:
                params = _params_key(earlier)
                group = by_params[key] = {} if params is None else {params: earlier}
            params = _params_key(node)
            if params is None:
                continue
            earlier = group.setdefault(params, node)
        # An operation with a JAX effect is never merged (its effect would run once); asked
        # only of a match, since the same operation and params have the same effects. (What
        # node.has_effect answers for a primitive, inline: this runs once per match.)
        if earlier is node or (kind == 'primitive' and (node.extra.get('effects') or
                                                        earlier.extra.get('effects'))):
            continue
        graph.replace_node(node, earlier.outputs)
        merged += 1
    if merged:
        stats['nodes merged'] += merged
    return graph
