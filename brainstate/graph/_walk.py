"""Walking object graphs: what kind of thing a value is (graph node, pytree container, State,
TreefyState or static), the registry of graph-node types, and the depth-first traversal behind
:func:`iter_leaf` / :func:`iter_node` (and ``states`` / ``nodes``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Generic, Sequence, TypeVar

import jax
import numpy as np

from .._state import State
from .._state_api import TreefyState
from ._graphdef import PytreeType

__all__ = ['register_graph_node_type', 'Static', 'iter_leaf', 'iter_node']

MAX_INT = int(np.iinfo(np.int32).max)
A = TypeVar('A')

GRAPH_NODE, PYTREE, STATE, STATE_LEAF, STATIC = range(5)


@dataclasses.dataclass(frozen=True)
class NodeImplBase:
    type: type
    flatten: Callable

    def node_dict(self, node) -> dict:
        """The children of ``node`` by key (duplicate keys are an error)."""
        items = tuple(self.flatten(node)[0])
        out = dict(items)
        if len(out) != len(items):
            raise ValueError(f'Duplicate child keys returned by the flatten function for '
                             f'{type(node).__name__}; each child key must be unique.')
        return out


@dataclasses.dataclass(frozen=True)
class GraphNodeImpl(NodeImplBase):
    """How to take a mutable graph node apart and rebuild it."""
    set_key: Callable
    pop_key: Callable
    create_empty: Callable
    clear: Callable

    def init(self, node, items) -> None:
        for key, value in items:
            self.set_key(node, key, value)


@dataclasses.dataclass(frozen=True)
class PyTreeNodeImpl(NodeImplBase):
    """How to take a pytree container apart and rebuild it."""
    unflatten: Callable


_node_impl_for_type: dict = {}
_KIND_CACHE: dict = {}


def _compute_kind(t, x) -> int:
    if t in _node_impl_for_type:
        return GRAPH_NODE
    if not jax.tree_util.all_leaves((x,)):
        return PYTREE
    if issubclass(t, State):
        return STATE
    if issubclass(t, TreefyState):
        return STATE_LEAF
    return STATIC


def classify(x) -> int:
    """GRAPH_NODE, PYTREE, STATE, STATE_LEAF or STATIC (cached per type)."""
    t = type(x)
    kind = _KIND_CACHE.get(t)
    if kind is None:
        kind = _KIND_CACHE[t] = _compute_kind(t, x)
    return kind


def _clear_classification_cache() -> None:
    _KIND_CACHE.clear()


def _is_state_leaf(x) -> bool:
    return isinstance(x, TreefyState)


def _is_node_leaf(x) -> bool:
    return isinstance(x, State)


def _is_pytree_node(x) -> bool:
    return classify(x) == PYTREE


def _is_graph_node(x) -> bool:
    return classify(x) == GRAPH_NODE


def _is_node(x) -> bool:
    return classify(x) in (GRAPH_NODE, PYTREE)


def _is_node_type(x: type) -> bool:
    return x in _node_impl_for_type or x is PytreeType


def register_graph_node_type(type: type, flatten: Callable, set_key: Callable,
                             pop_key: Callable, create_empty: Callable, clear: Callable) -> None:
    """Make instances of ``type`` graph nodes.

    Args:
      flatten: ``node -> (sequence of (key, child), metadata)``.
      set_key: ``(node, key, value)`` sets a child.
      pop_key: ``(node, key) -> value`` removes a child.
      create_empty: ``metadata -> node``, an empty node.
      clear: ``node`` removes every child.
    """
    _node_impl_for_type[type] = GraphNodeImpl(type=type, flatten=flatten, set_key=set_key,
                                              pop_key=pop_key, create_empty=create_empty,
                                              clear=clear)
    _KIND_CACHE.clear()


def _get_node_impl(x):
    if isinstance(x, State):
        raise ValueError(f'State is not a node: {x}')
    impl = _node_impl_for_type.get(type(x))
    if impl is not None:
        return impl
    if _is_pytree_node(x):
        return PYTREE_NODE_IMPL
    raise ValueError(f'Unknown node type: {x}')


def get_node_impl_for_type(x: type):
    if x is PytreeType:
        return PYTREE_NODE_IMPL
    try:
        return _node_impl_for_type[x]
    except KeyError:
        raise ValueError(f'Unknown graph node type: {x!r}. Register it with '
                         f'brainstate.graph.register_graph_node_type before '
                         f'flatten/unflatten.') from None


@dataclasses.dataclass(frozen=True)
class Static(Generic[A]):
    """A value kept static (in the structure, hashed) when a graph is flattened."""
    value: A


jax.tree_util.register_static(Static)


def _key_path_to_key(key):
    """A JAX key-path entry as a plain key (an index, a dict key or an attribute name)."""
    if isinstance(key, jax.tree_util.SequenceKey):
        return key.idx
    if isinstance(key, (jax.tree_util.DictKey, jax.tree_util.FlattenedIndexKey)):
        try:
            hash(key.key)
        except TypeError:
            raise ValueError(f'Invalid key: {key.key!r}. A pytree key must be hashable (its type '
                             f'does not satisfy the Key protocol).') from None
        return key.key
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    return str(key)


def _flatten_pytree(pytree):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(pytree,
                                                          is_leaf=lambda x: x is not pytree)
    return tuple((_key_path_to_key(path[0]), value) for path, value in leaves), treedef


def _unflatten_pytree(nodes, treedef):
    return treedef.unflatten(value for _, value in nodes)


PYTREE_NODE_IMPL = PyTreeNodeImpl(type=PytreeType, flatten=_flatten_pytree,
                                  unflatten=_unflatten_pytree)


def _iter_graph(node, *, allowed_hierarchy=(0, MAX_INT), want: str = 'leaf',
                dedup_leaves: bool = True):
    """Depth-first ``(path, value)`` over a graph: leaves (``want='leaf'``) or graph nodes
    (``want='node'``, children before their parent). Each node and each State once. The level
    of a value is the number of graph nodes above it; only levels within ``allowed_hierarchy``
    (inclusive) are yielded, and the walk stops below the upper bound."""
    low, high = allowed_hierarchy
    visited: set = set()

    def walk(value, path, level):
        if level > high:
            return
        kind = classify(value)
        if kind in (GRAPH_NODE, PYTREE):
            if id(value) in visited:
                return
            visited.add(id(value))
            impl = _node_impl_for_type[type(value)] if kind == GRAPH_NODE else PYTREE_NODE_IMPL
            for key, child in impl.flatten(value)[0]:
                deeper = level + 1 if classify(child) == GRAPH_NODE else level
                yield from walk(child, (*path, key), deeper)
            if want == 'node' and kind == GRAPH_NODE and level >= low:
                yield path, value
        elif want == 'leaf' and level >= low:
            if dedup_leaves and kind in (STATE, STATE_LEAF):
                if id(value) in visited:
                    return
                visited.add(id(value))
            yield path, value

    yield from walk(node, (), 0)


def iter_leaf(node, allowed_hierarchy: tuple = (0, MAX_INT)):
    """``(path, leaf)`` for every leaf of a graph (States once each), depth-first in the order
    of each node's children (a Node's attributes alphabetically)."""
    yield from _iter_graph(node, allowed_hierarchy=allowed_hierarchy, want='leaf')


def iter_node(node, allowed_hierarchy: tuple = (0, MAX_INT)):
    """``(path, node)`` for every graph node (the root at ``()``), children first."""
    yield from _iter_graph(node, allowed_hierarchy=allowed_hierarchy, want='node')
