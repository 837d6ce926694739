"""Object graphs of Nodes and States (the published ``brainstate.graph`` API).

``flatten`` / ``unflatten`` split a graph into a static :class:`GraphDef` and a mapping of its
states and back; ``treefy_split`` / ``treefy_merge`` do the same with filters; ``states`` /
``nodes`` list the States / Nodes by path; ``graph_to_tree`` / ``tree_to_graph`` convert the
graph nodes inside a pytree.
"""

from ._context import split_context, merge_context
from ._convert import graph_to_tree, tree_to_graph, NodeStates
from ._flatten import flatten, unflatten
from ._graphdef import GraphDef, NodeSpec, NodeEdge, StateEdge, StateLeafEdge, PytreeEdge, StaticEdge
from ._node import Node, iter_leaves
from ._operations import (pop_states, nodes, states, treefy_states, update_states, treefy_split,
                          treefy_merge, clone, graphdef)
from ._reftrack import RefMap
from ._walk import register_graph_node_type, Static, iter_leaf, iter_node

__all__ = ['split_context', 'merge_context', 'graph_to_tree', 'tree_to_graph', 'NodeStates',
           'flatten', 'unflatten', 'GraphDef', 'NodeSpec', 'NodeEdge', 'StateEdge',
           'StateLeafEdge', 'PytreeEdge', 'StaticEdge', 'Node', 'pop_states', 'nodes', 'states',
           'treefy_states', 'update_states', 'treefy_split', 'treefy_merge', 'clone', 'graphdef',
           'RefMap', 'register_graph_node_type', 'Static', 'iter_leaf', 'iter_node',
           'iter_leaves']
