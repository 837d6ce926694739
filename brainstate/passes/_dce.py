"""dce: remove computations whose results nobody uses, and shrink regions to what is used.

Only pure nodes go: primitives without JAX effects, constants, state reads, and regions whose
bodies have no effect. A state write is an effect, so DCE never removes one (torch.fx users were
hurt by a DCE that deleted in-place mutations).

A region that stays is shrunk by its kind's dce rule (:meth:`brainstate.ir.RegionKind.dce`), to
a fixed point: results nobody uses go (with the body outputs giving them), loop carries whose
final value is unused and on which no live value depends go, the bodies are cleaned by this
pass (nested regions shrink too), and operands whose body inputs are then unused go. One sweep
from the last node to the first reaches the fixed point of the whole graph, since a node is
visited after every node that could use it.
"""

from __future__ import annotations

from ..ir.regions import REGION_KINDS
from ._pass import PassStatistics, register

__all__ = ['dead_code_elimination']

_REMOVABLE = ('primitive', 'constant', 'state_read', 'region')


@register('dce')
def dead_code_elimination(graph, stats=None):
    """Remove pure nodes (never state writes) whose results are unused, and unused region
    results, loop carries and operands."""
    stats = PassStatistics() if stats is None else stats
    _sweep(graph, stats)
    if graph.meta.get('read_states') is not None:
        still_read = {n.state for n in graph.find_nodes('state_read', recursive=False)}
        graph.meta['read_states'] = [s for s in graph.meta['read_states'] if s in still_read]
    return graph


def _unused(node) -> bool:
    for value in node.outputs:
        if value.users:
            return False
    return True


def _sweep(graph, stats):
    removed = 0

    def clean(body):
        _sweep(body, stats)

    # Backwards, so a chain of dead nodes goes in one sweep.
    for node in reversed(graph.nodes):
        for value in node.outputs:
            if value.users:
                break
        else:  # unused (or without results, as state writes and the output)
            if node.kind in _REMOVABLE and not node.has_effect:
                graph.erase_node(node)
                removed += 1
                continue
        if node.kind == 'region':
            region = REGION_KINDS.get(node.op)
            if region is not None:
                region.dce(node, clean, stats)
            else:
                for sub in node.subgraphs:
                    clean(sub)
            if _unused(node) and not node.has_effect:  # its bodies lost their effects
                graph.erase_node(node)
                removed += 1
    if removed:
        stats['nodes removed'] += removed
