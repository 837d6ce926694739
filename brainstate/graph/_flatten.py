"""flatten / unflatten: a graph of Nodes and States <-> (GraphDef, mapping of state values).

``flatten`` walks the graph once in pre-order, numbering graph nodes and States by first
encounter (a :class:`RefMap` from object to index), so shared objects and cycles become integer
references. ``unflatten`` rebuilds in three passes: the States, empty node shells, then the
children of each shell; no recursion over graph nodes, so cycles resolve in any order.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from .._state import State
from .._state_api import TreefyState
from .._state_pack import unpacked_type  # (a packed state: its user's class)
from ..util._pretty_pytree import NestedDict
from ._graphdef import GraphDef, NodeEdge, NodeSpec, PytreeEdge, StateEdge, StateLeafEdge, StaticEdge
from ._reftrack import RefMap
from ._walk import (GRAPH_NODE, PYTREE, PYTREE_NODE_IMPL, STATE, STATE_LEAF, _is_node,
                    _node_impl_for_type, classify, get_node_impl_for_type)

__all__ = ['flatten', 'unflatten']

_MISSING = object()


def _format_path(path) -> str:
    return '.'.join(str(p) for p in path) if path else '<root>'


class _Encoder:
    def __init__(self, ref_index: RefMap, treefy_state: bool):
        self.ref_index = ref_index
        self.treefy_state = treefy_state
        self.specs: list = []
        self.mapping: dict = {}

    def edge(self, path, value):
        kind = classify(value)
        if kind == GRAPH_NODE:
            if value in self.ref_index:
                return NodeEdge(self.ref_index[value])
            index = self.ref_index[value] = len(self.ref_index)
            impl = _node_impl_for_type[type(value)]
            items, metadata = impl.flatten(value)
            fields = tuple((k, self.edge((*path, k), v)) for k, v in items)
            self.specs.append(NodeSpec(impl.type, index, metadata, fields))
            return NodeEdge(index)
        if value is None:  # an empty pytree to JAX, a static value to us
            return StaticEdge(None)
        if kind == PYTREE:
            items, metadata = PYTREE_NODE_IMPL.flatten(value)
            fields = tuple((k, self.edge((*path, k), v)) for k, v in items)
            # A container of static values only (e.g. a tuple of ints) stays one static value.
            if (all(type(e) is StaticEdge for _, e in fields)
                    and type(value).__hash__ is not object.__hash__):
                try:
                    hash(value)
                except TypeError:
                    pass
                else:
                    return StaticEdge(value)
            return PytreeEdge(metadata, fields)
        if kind == STATE:
            if value in self.ref_index:
                return StateEdge(self.ref_index[value], None, unpacked_type(type(value)))
            index = self.ref_index[value] = len(self.ref_index)
            self.mapping[path] = value.to_state_ref() if self.treefy_state else value
            return StateEdge(index, path, unpacked_type(type(value)))
        if kind == STATE_LEAF:
            self.mapping[path] = value
            return StateLeafEdge(path)
        return StaticEdge(value)


def flatten(node, /, ref_index: Optional[RefMap] = None,
            treefy_state: bool = True) -> Tuple[GraphDef, NestedDict]:
    """Split a graph into its static structure and its states.

    Returns ``(graphdef, state_mapping)``: the mapping is nested by attribute and holds each
    State's :class:`TreefyState` (the State itself with ``treefy_state=False``).
    ``ref_index`` (a :class:`RefMap`) receives the index of every node and State.
    """
    if ref_index is None:
        ref_index = RefMap()
    elif not isinstance(ref_index, RefMap):
        raise TypeError(f'ref_index must be a RefMap, got: {type(ref_index)}')
    if not _is_node(node):
        raise ValueError(f'Cannot flatten a non-node root of type {type(node).__name__}: '
                         f'{node!r}')
    encoder = _Encoder(ref_index, treefy_state)
    root = encoder.edge((), node)
    specs = tuple(sorted(encoder.specs, key=lambda s: s.index))
    return GraphDef(root, specs), NestedDict.from_flat(encoder.mapping)


def _materialize_state(value, index, index_ref_cache):
    if index_ref_cache is not None and index in index_ref_cache:
        state = index_ref_cache[index]
        if not isinstance(state, State):
            raise ValueError(f'Cached object at index {index} is not a State.')
        if isinstance(value, TreefyState):
            state.update_from_ref(value)
        elif isinstance(value, State):
            if value._been_writen:
                state.value = value.value
            else:
                state.restore_value(value.value)
        else:
            raise ValueError(f'Expected a State/TreefyState, got {type(value)}.')
        return state
    if isinstance(value, TreefyState):
        return value.to_state()
    if isinstance(value, State):
        return value
    raise ValueError(f'Expected a State/TreefyState, got {type(value)}.')


def _iter_edges(graphdef: GraphDef):
    stack = [graphdef.root]
    for spec in graphdef.node_specs:
        stack.extend(e for _, e in spec.fields)
    while stack:
        edge = stack.pop()
        yield edge
        if type(edge) is PytreeEdge:
            stack.extend(c for _, c in edge.fields)


def unflatten(graphdef: GraphDef, state_mapping, /, *, index_ref: Optional[dict] = None,
              index_ref_cache: Optional[dict] = None) -> Any:
    """Rebuild a graph from :func:`flatten`'s output (new Nodes and States; with
    ``index_ref_cache``, reuse and update the objects it holds by index)."""
    if not isinstance(graphdef, GraphDef):
        raise TypeError(f'graphdef must be a GraphDef, got: {type(graphdef)}')
    if index_ref is None:
        index_ref = {}
    flat = state_mapping.to_flat() if hasattr(state_mapping, 'to_flat') else dict(state_mapping)

    # 1. the States
    for edge in _iter_edges(graphdef):
        if type(edge) is StateEdge and edge.path is not None and edge.index not in index_ref:
            value = flat.get(edge.path, _MISSING)
            if value is not _MISSING:
                index_ref[edge.index] = _materialize_state(value, edge.index, index_ref_cache)
            elif index_ref_cache is not None and edge.index in index_ref_cache:
                index_ref[edge.index] = index_ref_cache[edge.index]
    # 2. empty node shells
    for spec in graphdef.node_specs:
        impl = get_node_impl_for_type(spec.type)
        if index_ref_cache is not None and spec.index in index_ref_cache:
            shell = index_ref_cache[spec.index]
            if type(shell) is not spec.type:
                raise ValueError(f'Expected a node of type {spec.type} for index {spec.index}, '
                                 f'but cache held {type(shell)}.')
            impl.clear(shell)
        else:
            shell = impl.create_empty(spec.metadata)
        index_ref[spec.index] = shell

    def resolve(edge):
        kind = type(edge)
        if kind is StaticEdge:
            return edge.value
        if kind is NodeEdge:
            return index_ref[edge.index]
        if kind is StateEdge:
            if edge.index in index_ref:
                return index_ref[edge.index]
            where = _format_path(edge.path) if edge.path else edge.path
            raise ValueError(f'Expected key {where!r} in the state mapping while rebuilding the '
                             f'graph.')
        if kind is StateLeafEdge:
            value = flat.get(edge.path, _MISSING)
            if value is _MISSING:
                raise ValueError(f'Expected key {_format_path(edge.path)} in the state mapping '
                                 f'while rebuilding the graph.')
            return value.to_state() if isinstance(value, TreefyState) else value
        if kind is PytreeEdge:
            return PYTREE_NODE_IMPL.unflatten(tuple((k, resolve(c)) for k, c in edge.fields),
                                              edge.metadata)
        raise TypeError(f'Unknown edge type: {type(edge)}')

    # 3. fill the shells
    for spec in graphdef.node_specs:
        impl = get_node_impl_for_type(spec.type)
        impl.init(index_ref[spec.index], tuple((k, resolve(e)) for k, e in spec.fields))
    return resolve(graphdef.root)
