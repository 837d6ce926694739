"""dce: remove computations whose results nobody uses.

Only pure nodes go: primitives without JAX effects, constants, state reads, and regions whose
bodies have no effect. A state write is an effect, so DCE never removes one (torch.fx users were
hurt by a DCE that deleted in-place mutations). Recurses into region bodies, whose outputs are
all kept.
"""

from __future__ import annotations

from ._pass import PassStatistics, register

__all__ = ['dead_code_elimination']

_REMOVABLE = ('primitive', 'constant', 'state_read', 'region')


@register('dce')
def dead_code_elimination(graph, stats=None):
    """Remove pure nodes (never state writes) whose results are unused."""
    stats = PassStatistics() if stats is None else stats
    nodes = graph.nodes
    for node in nodes:
        for sub in node.subgraphs:
            dead_code_elimination(sub, stats)
    # Backwards, so a chain of dead nodes goes in one sweep.
    removed = 0
    for node in reversed(nodes):
        if node.kind not in _REMOVABLE:
            continue
        for value in node.outputs:
            if value.users:
                break
        else:
            if not node.has_effect:
                graph.erase_node(node)
                removed += 1
    stats['nodes removed'] += removed
    if graph.meta.get('read_states') is not None:
        still_read = {n.state for n in graph.find_nodes('state_read', recursive=False)}
        graph.meta['read_states'] = [s for s in graph.meta['read_states'] if s in still_read]
    return graph
