"""Node: the base of Modules. Its attributes hold states and sub-nodes, forming a graph.

Assigning a State or a Node as an attribute (also inside lists, tuples and dicts) registers it,
which gives the state a path (``Net.layers.0.w``) for error messages and the printed IR.
The graph is walked afresh by :func:`brainstate.graph.states` / ``nodes`` (attributes in
alphabetical order, as published), so states appended to a list later are found too.
"""

from __future__ import annotations

import weakref
from typing import Iterator

from copy import deepcopy

import jax

from .. import _state
from .._state import State
from .._state_api import TreefyState
from ..util._pretty_pytree import PrettyObject
from ._walk import register_graph_node_type

__all__ = ['Node', 'iter_leaves']


class Node(PrettyObject):
    """Base class of objects whose attributes hold States and other Nodes: a graph node (see
    :func:`brainstate.graph.flatten`). ``brainstate.Module`` derives from it.

    ``graph_invisible_attrs``: names of attributes the graph functions do not see.
    """

    graph_invisible_attrs: tuple = ()

    # Where this node hangs in the tree that first registered it: (weakref(parent), key path).
    _bs_parent = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_graph_node_type(type=cls, flatten=_node_flatten, set_key=_node_set_key,
                                 pop_key=_node_pop_key, create_empty=_node_create_empty,
                                 clear=_node_clear)

    def __pretty_repr_item__(self, name, value):
        if value is None or name.startswith('_bs_'):
            return None
        if name in getattr(self, 'graph_invisible_attrs', ()):
            return None
        return name, value

    def __deepcopy__(self, memo=None):
        from ._operations import treefy_merge, treefy_split
        graphdef, state = treefy_split(self)
        return treefy_merge(graphdef, jax.tree.map(deepcopy, state))

    def check_valid_context(self, error_msg) -> None:
        """Kept for compatibility: our States are valid in every trace."""

    def __setattr__(self, name, value):
        if not name.startswith('_bs_'):
            previous = self.__dict__.get(name)
            if previous is not None and previous is not value and _holds_state(previous):
                # A State the compiled functions of this module were traced with is replaced:
                # they must retrace (the epochs tell them in O(1) on their next call).
                _state.structure_changed(state_set=True)
        object.__setattr__(self, name, value)
        if not name.startswith('_bs_'):
            _register(self, (name,), value)

    def _module_path(self) -> tuple:
        """The path of this node from its root, starting with the root's class name."""
        parts = []
        node, seen = self, set()
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            parent_info = node.__dict__.get('_bs_parent')
            if parent_info is None:
                parts.append((type(node).__name__,))
                break
            parent = parent_info[0]()
            parts.append(parent_info[1])
            node = parent
        return tuple(part for chunk in reversed(parts) for part in chunk)

    def states(self, *filter_args, **kwargs):
        """The states in this graph, keyed by path: see :func:`brainstate.graph.states`."""
        from ._operations import states
        _register_tree(self)
        return states(self, *filter_args, **kwargs)

    def nodes(self, *filter_args, **kwargs):
        """The nodes in this graph (itself at path ``()``): see :func:`brainstate.graph.nodes`."""
        from ._operations import nodes
        _register_tree(self)
        return nodes(self, *filter_args, **kwargs)


def _holds_state(value) -> bool:
    """Whether an attribute value is a State or a Node, or a list/tuple/dict holding one."""
    if isinstance(value, (State, Node)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_state(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_state(v) for v in value.values())
    return False


def _register(owner: Node, key: tuple, value):
    """Record where a newly assigned state or node lives, for its path label."""
    if isinstance(value, State):
        if value._owner is None or value._owner[0]() is None:
            value._owner = (weakref.ref(owner), key)
    elif isinstance(value, Node):
        if value is not owner and value.__dict__.get('_bs_parent') is None:
            object.__setattr__(value, '_bs_parent', (weakref.ref(owner), key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _register(owner, key + (i,), item)
    elif isinstance(value, dict):
        for k, item in value.items():
            _register(owner, key + (k,), item)




def _node_flatten(node):
    """A Node's children: its attributes, alphabetically, minus ``graph_invisible_attrs`` and
    brainstate's own bookkeeping (``_bs_*``)."""
    hidden = getattr(node, 'graph_invisible_attrs', ())
    items = sorted(((k, v) for k, v in vars(node).items()
                    if k not in hidden and not k.startswith('_bs_')), key=lambda kv: kv[0])
    return items, (type(node),)


def _node_set_key(node, key, value) -> None:
    if not isinstance(key, str):
        raise KeyError(f'Invalid key: {key!r}')
    current = vars(node).get(key)
    if isinstance(current, State) and isinstance(value, TreefyState):
        current.update_from_ref(value)
    else:
        setattr(node, key, value)


def _node_pop_key(node, key):
    if not isinstance(key, str):
        raise KeyError(f'Invalid key: {key!r}')
    return vars(node).pop(key)


def _node_create_empty(static):
    node_type, = static
    return object.__new__(node_type)


def _node_clear(node) -> None:
    vars(node).clear()


register_graph_node_type(type=Node, flatten=_node_flatten, set_key=_node_set_key,
                         pop_key=_node_pop_key, create_empty=_node_create_empty,
                         clear=_node_clear)


def _register_tree(root):
    """Give every State and Node reachable from ``root`` its path label (for messages)."""
    for _ in iter_leaves(root):
        pass


def iter_leaves(root):
    """Walk the tree depth-first in attribute order, yielding ``(path, obj)`` for every State
    and Node reached (the root itself at ``()``), each object once, at the first path found.
    Registers paths on the way (used for labels)."""
    seen: set = set()

    def walk(path, obj):
        if isinstance(obj, (State, Node)):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            yield path, obj
            if isinstance(obj, Node):
                for name, item in vars(obj).items():
                    if not name.startswith('_bs_'):
                        _register(obj, (name,), item)
                        yield from walk(path + (name,), item)
        elif isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                yield from walk(path + (i,), item)
        elif isinstance(obj, dict):
            for k, item in obj.items():
                yield from walk(path + (k,), item)

    yield from walk((), root)
