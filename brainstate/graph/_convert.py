"""graph_to_tree / tree_to_graph: turn the graph nodes inside a pytree into pure pytrees
(:class:`NodeStates`: a GraphDef and state mappings) and back, with shared objects kept shared
across the whole tree."""

from __future__ import annotations

from typing import Any, Callable

import jax

from .._state import State
from ..typing import Missing
from ..util._pretty_pytree import FlattedDict
from ..util.struct import PyTreeNode, field
from ._context import merge_context, split_context
from ._reftrack import RefMap
from ._walk import _is_graph_node, iter_leaf, iter_node

__all__ = ['graph_to_tree', 'tree_to_graph', 'NodeStates']


def _get_rand_state() -> type:
    """The class of random-number states (imported late: brainstate.random imports us)."""
    from ..random import RandomState
    return RandomState


def check_consistent_aliasing(node, prefix, /, *, node_prefixes=None) -> None:
    """Raise if an object reachable from several leaves gets different prefixes."""
    node_prefixes = RefMap() if node_prefixes is None else node_prefixes
    for path, value in iter_leaf(node):
        if isinstance(value, State):
            node_prefixes.setdefault(value, []).append((path, prefix))
    for path, value in iter_node(node):
        if _is_graph_node(value):
            node_prefixes.setdefault(value, []).append((path, prefix))
    problems = []
    for obj, uses in node_prefixes.items():
        if len({p for _, p in uses}) > 1:
            lines = '\n'.join(f"  {'/'.join(map(str, path)) if path else '<root>'}: {p}"
                              for path, p in uses)
            problems.append(f'Node: {type(obj)}\n{lines}')
    if problems:
        raise ValueError('Inconsistent aliasing detected. The following nodes have different '
                         'prefixes:\n' + '\n'.join(problems))


def broadcast_prefix(prefix_tree, full_tree, prefix_is_leaf=None, tree_is_leaf=None) -> list:
    """The prefix value of every leaf of ``full_tree``."""
    out: list = []
    count = lambda t: jax.tree_util.tree_structure(t, is_leaf=tree_is_leaf).num_leaves
    jax.tree.map(lambda x, subtree: out.extend([x] * count(subtree)), prefix_tree, full_tree,
                 is_leaf=prefix_is_leaf)
    return out


class NodeStates(PyTreeNode):
    """A graph node as a pytree: its GraphDef (static) and state mappings (children)."""
    _graphdef: Any
    states: tuple
    metadata: Any = field(pytree_node=False)

    @property
    def graphdef(self):
        if self._graphdef is None:
            raise ValueError('No graphdef available')
        return self._graphdef

    @property
    def state(self):
        if len(self.states) != 1:
            raise ValueError(f'Expected exactly one GraphDefState, got {len(self.states)}')
        return self.states[0]

    @classmethod
    def from_split(cls, graphdef, state, /, *states, metadata=None) -> 'NodeStates':
        return cls(_graphdef=graphdef, states=(state, *states), metadata=metadata)

    @classmethod
    def from_states(cls, state, *states) -> 'NodeStates':
        return cls(_graphdef=None, states=(state, *states), metadata=None)

    @classmethod
    def from_prefixes(cls, prefixes, /, *, metadata=None) -> 'NodeStates':
        return cls(_graphdef=None, states=tuple(prefixes), metadata=metadata)


def _default_split_fn(ctx, path, prefix, leaf):
    return NodeStates.from_split(*ctx.treefy_split(leaf))


def graph_to_tree(may_have_graph_nodes, /, *, prefix: Any = Missing,
                  split_fn: Callable = _default_split_fn, map_non_graph_nodes: bool = False,
                  check_aliasing: bool = True):
    """Replace each graph node in a pytree by ``split_fn(ctx, path, prefix, node)`` (by default
    a :class:`NodeStates`). Returns ``(tree, states)``: ``states`` maps ``(index,)`` to every
    State found."""
    prefixes = broadcast_prefix(prefix, may_have_graph_nodes, prefix_is_leaf=lambda x: x is None)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(may_have_graph_nodes)
    if len(leaves) != len(prefixes):
        raise ValueError(f'Mismatched number of leaves ({len(leaves)}) and broadcast prefixes '
                         f'({len(prefixes)}); the `prefix` is not a valid prefix tree of '
                         f'`may_have_graph_nodes`.')
    with split_context() as (ctx, index_ref):
        out = []
        seen_prefixes = RefMap()
        for (keypath, leaf), leaf_prefix in zip(leaves, prefixes):
            if _is_graph_node(leaf):
                if check_aliasing:
                    check_consistent_aliasing(leaf, leaf_prefix, node_prefixes=seen_prefixes)
                out.append(split_fn(ctx, keypath, leaf_prefix, leaf))
            else:
                out.append(split_fn(ctx, keypath, leaf_prefix, leaf)
                           if map_non_graph_nodes else leaf)
        found = FlattedDict({(i,): obj for obj, i in index_ref.items() if isinstance(obj, State)})
    return jax.tree.unflatten(treedef, out), found


def _is_tree_node(x) -> bool:
    return isinstance(x, NodeStates)


def _merge_tree_node(ctx, path, prefix, leaf):
    if not isinstance(leaf, NodeStates):
        raise ValueError(f'Expected TreeNode, got {type(leaf)} at path {path}')
    return ctx.treefy_merge(leaf.graphdef, *leaf.states)


def tree_to_graph(tree, /, *, prefix: Any = Missing, merge_fn: Callable = _merge_tree_node,
                  is_node_leaf: Callable = _is_tree_node, is_leaf: Callable = _is_tree_node,
                  map_non_graph_nodes: bool = False):
    """The inverse of :func:`graph_to_tree`: rebuild the graph nodes (shared objects shared)."""
    prefixes = broadcast_prefix(prefix, tree, prefix_is_leaf=lambda x: x is None or is_leaf(x),
                                tree_is_leaf=is_leaf)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    if len(leaves) != len(prefixes):
        raise ValueError(f'Mismatched number of leaves ({len(leaves)}) and broadcast prefixes '
                         f'({len(prefixes)}); the `prefix` is not a valid prefix tree of `tree`.')
    with merge_context() as (ctx, index_ref):
        out = []
        for (keypath, leaf), leaf_prefix in zip(leaves, prefixes):
            if is_node_leaf(leaf) or map_non_graph_nodes:
                leaf = merge_fn(ctx, keypath, leaf_prefix, leaf)
            out.append(leaf)
    return jax.tree.unflatten(treedef, out)
