"""Graph operations of the published API, on top of flatten / unflatten and the walker:
``treefy_split`` / ``treefy_merge``, ``treefy_states``, ``states`` / ``nodes``, ``graphdef``,
``clone``, ``pop_states``, ``update_states``."""

from __future__ import annotations

from typing import Any, Tuple, Union

from .._state import State
from .._state_api import TreefyState
from ..util._pretty_pytree import FlattedDict, NestedDict
from ..util.filter import to_predicate
from ._flatten import flatten, unflatten
from ._graphdef import GraphDef
from ._walk import (MAX_INT, _get_node_impl, _is_graph_node, _is_node, _is_node_leaf,
                    _is_state_leaf, iter_leaf, iter_node)

__all__ = ['treefy_split', 'treefy_merge', 'treefy_states', 'update_states', 'pop_states',
           'states', 'nodes', 'graphdef', 'clone']


def _filters_to_predicates(filters):
    for i, f in enumerate(filters):
        if (f is Ellipsis or f is True) and any(g is not Ellipsis and g is not True
                                                for g in filters[i + 1:]):
            raise ValueError(f'`...` or `True` can only be used as the last filters, got {f!r} '
                             f'at index {i}.')
    return tuple(to_predicate(f) for f in filters)


def _split_flatted(items, filters):
    predicates = _filters_to_predicates(filters)
    parts = tuple([] for _ in predicates)
    for path, value in items:
        for part, predicate in zip(parts, predicates):
            if predicate(path, value):
                part.append((path, value))
                break
        else:
            raise ValueError(f'Non-exhaustive filters, got a non-empty remainder: {path} -> '
                             f'{value}.\nUse `...` to match all remaining elements.')
    return parts


def _split_state(state: NestedDict, filters):
    if not filters:
        return (state,)
    parts = state.split(*filters)
    return (parts,) if isinstance(parts, NestedDict) else parts


def treefy_split(node, *filters) -> Tuple[GraphDef, ...]:
    """``(graphdef, state_mapping, ...)``: the structure of ``node`` and its states (as
    TreefyStates), one mapping per filter (filters must cover every state: end with ``...``).

    Example::

        graphdef, params, others = brainstate.graph.treefy_split(net, brainstate.ParamState, ...)
        net2 = brainstate.graph.treefy_merge(graphdef, params, others)
    """
    graphdef_, state_tree = flatten(node)
    return (graphdef_, *_split_state(state_tree, filters))


def treefy_merge(graphdef_: GraphDef, *state_mappings) -> Any:
    """Rebuild a new graph (new Nodes and States) from :func:`treefy_split`'s output."""
    return unflatten(graphdef_, NestedDict.merge(*state_mappings))


def treefy_states(node, *filters) -> Union[NestedDict, Tuple[NestedDict, ...]]:
    """The states of ``node`` as a nested mapping of TreefyStates (filtered)."""
    _, state_mapping = flatten(node)
    return state_mapping.filter(*filters) if filters else state_mapping


def _select(items, filters):
    count = len(filters)
    filters = (*filters, ...) if count else (...,)
    parts = tuple(FlattedDict(p) for p in _split_flatted(items, filters))
    return parts[0] if count < 2 else parts[:count]


def states(node, *filters, allowed_hierarchy: tuple = (0, MAX_INT)):
    """The States of a graph as a :class:`FlattedDict` keyed by path tuples (each State once);
    with several filters, one mapping per filter (a state goes to the first that matches).
    ``allowed_hierarchy=(low, high)`` keeps the states owned by nodes ``low`` to ``high`` levels
    below the root (``(0, 0)``: the root's own states).

    Example::

        params = brainstate.graph.states(net, brainstate.ParamState)
        params, hidden = brainstate.graph.states(net, brainstate.ParamState, brainstate.HiddenState)
    """
    items = ((p, v) for p, v in iter_leaf(node, allowed_hierarchy=allowed_hierarchy)
             if isinstance(v, State))
    return _select(items, filters)


def nodes(node, *filters, allowed_hierarchy: tuple = (0, MAX_INT)):
    """The graph nodes (the root at ``()``) as a :class:`FlattedDict`, filtered as
    :func:`states`."""
    return _select(iter_node(node, allowed_hierarchy=allowed_hierarchy), filters)


def graphdef(node) -> GraphDef:
    """The static structure of ``node``."""
    return flatten(node)[0]


def clone(node):
    """A deep copy of a graph: new Nodes and States with the same values (sharing preserved)."""
    graphdef_, state = treefy_split(node)
    return treefy_merge(graphdef_, state)


def _graph_pop(node, seen, path, found, predicates) -> None:
    if not _is_node(node):
        raise RuntimeError(f'Unsupported type: {type(node)}, this is a bug.')
    if id(node) in seen:
        return
    seen[id(node)] = len(seen)
    impl = _get_node_impl(node)
    for name, value in impl.node_dict(node).items():
        if _is_node(value):
            _graph_pop(value, seen, (*path, name), found, predicates)
            continue
        if not _is_node_leaf(value):
            continue
        if id(value) in seen:
            if _is_graph_node(node):
                impl.pop_key(node, name)
            continue
        here = (*path, name)
        for mapping, predicate in zip(found, predicates):
            if predicate(here, value):
                if not _is_graph_node(node):
                    raise ValueError(f'Cannot pop key {name!r} from node of type '
                                     f'{type(node).__name__}')
                seen[id(value)] = len(seen)
                impl.pop_key(node, name)
                mapping[here] = value
                break


def pop_states(node, *filters) -> Union[NestedDict, Tuple[NestedDict, ...]]:
    """Remove the States matching the filters from the graph and return them (nested)."""
    if not filters:
        raise ValueError('Expected at least one filter')
    predicates = tuple(to_predicate(f) for f in filters)
    found = tuple({} for _ in predicates)
    _graph_pop(node, {}, (), found, predicates)
    result = tuple(NestedDict.from_flat(f) for f in found)
    return result[0] if len(result) == 1 else result


def _update(node, state) -> None:
    if not _is_node(node):
        raise RuntimeError(f'Unsupported type: {type(node)}')
    impl = _get_node_impl(node)
    children = impl.node_dict(node)
    for key, value in state.items():
        if key not in children:
            if not _is_graph_node(node):
                raise ValueError(f'Cannot set key {key!r} on immutable node of type '
                                 f'{type(node).__name__}')
            impl.set_key(node, key, value.to_state() if isinstance(value, TreefyState) else value)
            continue
        current = children[key]
        if _is_node(current):
            if _is_state_leaf(value):
                raise ValueError(f'Expected a subgraph for {key!r}, but got: {value!r}')
            _update(current, value)
        elif isinstance(value, (State, TreefyState)):
            if not isinstance(current, State):
                raise ValueError(f'Trying to update a non-State attribute {key!r} with a State: '
                                 f'{value!r}')
            current.update_from_ref(value.to_state_ref() if isinstance(value, State) else value)
        elif _is_state_leaf(value):
            if not _is_graph_node(node):
                raise ValueError(f'Cannot set key {key!r} on immutable node of type '
                                 f'{type(node).__name__}')
            impl.set_key(node, key, value)
        else:
            raise ValueError(f'Unsupported update type: {type(value)} for key {key!r}')


def update_states(node, state_dict, /, *state_dicts) -> None:
    """Write the values of nested state mappings (e.g. from :func:`treefy_states`) into the
    States of ``node``."""
    if state_dicts:
        state_dict = NestedDict.merge(state_dict, *state_dicts)
    _update(node, state_dict.to_dict())
