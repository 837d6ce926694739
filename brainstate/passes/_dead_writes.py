"""dead-writes: remove state writes no one can observe.

* a write overwritten before any read of the state (the later write wins);
* a write of the value the state already holds (just read from it, or just written to it).

The last write of each state in a graph is always kept: code after the graph (the caller, the
next loop iteration) may read it. A region that touches a state counts as reading it.
Recurses into region bodies.
"""

from __future__ import annotations

from ._pass import PassStatistics, register

__all__ = ['eliminate_dead_writes']


def _touched_states(node) -> set:
    return {inner.state for sub in node.subgraphs for inner in sub.walk() if inner.is_state_op}


def _same_values(a, b) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


@register('dead-writes')
def eliminate_dead_writes(graph, stats=None):
    """Remove state writes that are overwritten before any read, or that write the value the
    state already holds."""
    stats = PassStatistics() if stats is None else stats
    pending = {}   # state -> its last write, not yet observed
    current = {}   # state -> the Values it is known to hold now
    removed = 0
    # Only state operations and regions matter (in program order); find_nodes reads no more
    # of the graph than it needs to find them. The regions of a canonical graph touch no
    # state (hoist-states made their bodies pure): only the entry reads and exit writes.
    kinds = ('state_read', 'state_write') if graph.meta.get('canonical') else \
        ('state_read', 'state_write', 'region')
    for node in graph.find_nodes(kinds, recursive=False):
        kind = node.kind
        if kind == 'state_read':
            pending.pop(node.state, None)
            current.setdefault(node.state, list(node.outputs))
        elif kind == 'state_write':
            state = node.state
            if state in current and _same_values(node.inputs, current[state]):
                graph.erase_node(node)
                removed += 1
                continue
            overwritten = pending.pop(state, None)
            if overwritten is not None:
                graph.erase_node(overwritten)
                removed += 1
            pending[state] = node
            current[state] = list(node.inputs)
        else:
            for sub in node.subgraphs:
                eliminate_dead_writes(sub, stats)
            for state in _touched_states(node):
                pending.pop(state, None)
                current.pop(state, None)
    if removed:
        stats['writes removed'] += removed
    if graph.meta.get('written_states') is not None:
        still_written = {n.state for n in graph.find_nodes('state_write', recursive=False)}
        graph.meta['written_states'] = [s for s in graph.meta['written_states']
                                        if s in still_written]
    return graph
