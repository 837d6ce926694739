"""Node: the base of Modules. Its attributes hold states and sub-nodes, forming a tree.

Assigning a State or a Node as an attribute (also inside lists, tuples and dicts) registers it,
which gives the state a path (``Net.layers.0.w``) for error messages and the printed IR.
The tree is walked afresh by :func:`states` / :func:`nodes`, so states appended to a list later
are found too.
"""

from __future__ import annotations

import weakref
from typing import Iterator

from .._state import State
from ..util._flat_mapping import FlatMapping

__all__ = ['Node', 'states', 'nodes', 'iter_leaves']


class Node:
    """Base class of objects whose attributes hold States and other Nodes.

    ``brainstate.Module`` (alias ``brainstate.nn.Module``) derives from it.
    """

    # Where this node hangs in the tree that first registered it: (weakref(parent), key path).
    _bs_parent = None

    def __setattr__(self, name, value):
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

    def states(self, *filter_args):
        """The states in this tree, keyed by path: see :func:`brainstate.graph.states`."""
        return states(self, *filter_args)

    def nodes(self, *filter_args):
        """The nodes in this tree (itself at path ``()``): see :func:`brainstate.graph.nodes`."""
        return nodes(self, *filter_args)


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


def iter_leaves(root: Node) -> Iterator[tuple[tuple, object]]:
    """Walk the tree depth-first in attribute order, yielding ``(path, obj)`` for every State
    and Node reached (the root itself at ``()``), each object once, at the first path found."""
    seen: set[int] = set()

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


def _select(root, kind, filter_args):
    if not isinstance(root, Node):
        raise TypeError(f'Expected a brainstate Module (graph.Node), got {type(root).__name__}.')
    items = FlatMapping((p, o) for p, o in iter_leaves(root) if isinstance(o, kind))
    if not filter_args:
        return items
    return items.filter(*filter_args)


def states(root: Node, *filter_args):
    """The states of a module tree, as a flat mapping keyed by path tuples.

    Args:
      root: the module.
      *filter_args: filters (see :mod:`brainstate.util.filter`): a State class, a tag string,
        ``...``, a predicate ``f(path, state)``, or a combinator. With none, every state. With
        several, a tuple of mappings, one per filter; each state goes to the first that matches.

    A state reachable by two paths appears once, at the first path in attribute order.

    Example::

        params = net.states(brainstate.ParamState)      # {('w',): ParamState(...), ...}
        params, others = net.states(brainstate.ParamState, ...)
    """
    return _select(root, State, filter_args)


def nodes(root: Node, *filter_args):
    """The nodes (modules) of a tree, the root included at path ``()``; filters as in
    :func:`states`."""
    return _select(root, Node, filter_args)
