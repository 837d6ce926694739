"""copy-propagation: the uses of a copy take the original value.

A ``copy``, a ``convert_element_type`` to its operand's own type (same dtype and weak type, no
sharding) and a ``device_put`` that names no device return their operands unchanged: every use
of a result (graph outputs included) takes the operand instead, and the copy goes. Values are
immutable, so this never changes a result. Recurses into region bodies.
"""

from __future__ import annotations

from ._pass import PassStatistics, register

__all__ = ['copy_propagation']


def _copied(node):
    """The operands a copy-like node returns, one per result, or None."""
    name = node.op.name
    inputs, outputs = node.inputs, node.outputs
    if len(inputs) != len(outputs) or not inputs:
        return None
    if name == 'copy' or name == 'copy_p':
        pass
    elif name == 'convert_element_type':
        params = node.params
        if (params.get('sharding') is not None or
                params.get('new_dtype') != inputs[0].aval.dtype or
                bool(params.get('weak_type')) != bool(getattr(inputs[0].aval, 'weak_type', 0))):
            return None
    elif name == 'device_put':
        if any(device is not None for device in node.params.get('devices', (None,))):
            return None
    else:
        return None
    if any(i.aval != o.aval for i, o in zip(inputs, outputs)):
        return None
    return inputs


@register('copy-propagation')
def copy_propagation(graph, stats=None):
    """Let the uses of copies (copy, no-op convert_element_type, device_put to no device) take
    the copied values, and drop the copies."""
    stats = PassStatistics() if stats is None else stats
    for node in graph.nodes:
        for sub in node.subgraphs:
            copy_propagation(sub, stats)
        if node.kind != 'primitive' or node.has_effect:
            continue
        originals = _copied(node)
        if originals is None:
            continue
        graph.replace_node(node, originals)
        stats['copies removed'] += 1
    return graph
