"""Deep copies of graphs, so a pass can be shown before and after."""

from __future__ import annotations

__all__ = ['copy_graph']


def copy_graph(graph, value_map: dict | None = None):
    """Copy the nodes and values of ``graph`` (and its regions); states, primitives and params
    are shared. ``value_map`` receives old-value -> new-value for every value copied."""
    from ._graph import Graph, Node, Value
    value_map = {} if value_map is None else value_map
    new = Graph(graph.name)
    new.meta = dict(graph.meta)
    new.in_tree, new.out_tree = graph.in_tree, graph.out_tree
    for node in graph.nodes:
        inputs = [value_map.get(v, v) if isinstance(v, Value) else v for v in node.inputs]
        copy = Node(node.kind, op=node.op, inputs=inputs,
                    output_avals=[v.aval for v in node.outputs], params=node.params,
                    state=node.state, subgraphs=[copy_graph(s, value_map) for s in node.subgraphs],
                    source_info=node.source_info, extra=node.extra)
        copy.meta = dict(node.meta)
        for old, fresh in zip(node.outputs, copy.outputs):
            value_map[old] = fresh
        new._link_before(copy, new._root)
    return new
