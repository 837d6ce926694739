"""Views of a Graph for other tools: networkx for analysis."""

from __future__ import annotations

__all__ = ['to_networkx']


def to_networkx(graph):
    """A ``networkx.MultiDiGraph``: one vertex per node (attributes ``kind``, ``name``,
    ``state``, ``node``), one edge per use of a value (attributes ``value``, ``aval``).

    Region bodies become their own MultiDiGraphs, stored in the region vertex's ``subgraphs``.
    """
    import networkx as nx
    from ._graph import Value
    g = nx.MultiDiGraph(name=graph.name)
    ids = {}
    for i, node in enumerate(graph.nodes):
        ids[node] = i
        g.add_node(i, kind=node.kind, name=node.name, node=node,
                   state=node.state.label() if node.state is not None else None,
                   subgraphs=[to_networkx(sub) for sub in node.subgraphs])
    for node in graph.nodes:
        for slot, value in enumerate(node.inputs):
            if isinstance(value, Value) and value.producer in ids:
                g.add_edge(ids[value.producer], ids[node], value=value, slot=slot,
                           aval=value.aval.str_short())
    return g
