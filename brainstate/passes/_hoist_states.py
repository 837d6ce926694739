"""The hoist-states pass: put a graph in canonical form, with states only at its edges.

* store-to-load forwarding: a read after a write takes the written value;
* one ``state_read`` per state at entry (right after the inputs), in order of first access;
* one ``state_write`` per written state at exit (right before the output), with the last value.

Lowering needs this form: the entry reads become the jaxpr's leading inputs and the exit writes
its trailing outputs. Regions (loops, branches) are made pure by rules registered per region
kind in :data:`REGION_HOIST_RULES`.
"""

from __future__ import annotations

from ..ir import Graph, Node

__all__ = ['hoist_states', 'REGION_HOIST_RULES']

# region name -> rule(graph, node, current) that rewrites a region touching states into a pure
# one, reading each state's current leaves from `current` and updating it with what it writes.
REGION_HOIST_RULES: dict = {}


def hoist_states(graph: Graph) -> Graph:
    """Rewrite ``graph`` in place into canonical form and return it.

    After it, ``graph.meta['canonical']`` is True, ``graph.meta['read_states']`` lists the
    states read at entry and ``graph.meta['written_states']`` those written at exit, in the order
    of the graph's entry reads and exit writes.
    """
    current: dict = {}        # state -> list of the Values holding its leaves now
    order: list = []          # states in order of first access
    entry_reads: list[Node] = []
    written: dict = {}
    for node in graph.nodes:
        if node.kind == 'state_read':
            state = node.state
            if state in current:
                for old, new in zip(node.outputs, current[state]):
                    old.replace_all_uses_with(new)
                graph.erase_node(node)
            else:
                current[state] = list(node.outputs)
                order.append(state)
                entry_reads.append(node)
        elif node.kind == 'state_write':
            state = node.state
            if state not in current:
                order.append(state)
            current[state] = list(node.inputs)
            written[state] = None
            graph.erase_node(node)
        elif node.kind == 'region' and any(sub.has_effects() for sub in node.subgraphs):
            rule = REGION_HOIST_RULES.get(node.op)
            if rule is None:
                raise NotImplementedError(
                    f'hoist-states has no rule for region {node.op!r} touching states.')
            rule(graph, node, current, order, entry_reads, written)
    for node in reversed(entry_reads):
        graph.move_to_entry(node)
    read_states = [n.state for n in entry_reads]
    read_set = set(read_states)
    # Written states that are also read come first, in read order, then write-only ones: so
    # (read states + write-only states) lists every state once, and the writes follow that order.
    written_states = ([s for s in read_states if s in written] +
                      [s for s in order if s in written and s not in read_set])
    output = graph.output_node
    for state in written_states:
        graph.insert_before(output, Node('state_write', state=state, inputs=current[state]))
    graph.meta['canonical'] = True
    graph.meta['read_states'] = read_states
    graph.meta['written_states'] = written_states
    return graph
