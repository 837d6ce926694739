"""GraphDef: the static structure of a flattened object graph.

A :class:`GraphDef` is a root edge plus a table of :class:`NodeSpec` (one per graph node, by
index: sharing and cycles are integer references). Pytree containers are kept inline as
:class:`PytreeEdge`; states are :class:`StateEdge` (their values live in the state mapping);
anything else is a :class:`StaticEdge`. A GraphDef is hashable and a static pytree, so it can be
a ``jax.jit`` static argument.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from ..util._pretty_repr import PrettyAttr, PrettyRepr, PrettyType

__all__ = ['PytreeType', 'NodeEdge', 'StateEdge', 'StateLeafEdge', 'PytreeEdge', 'StaticEdge',
           'Edge', 'NodeSpec', 'GraphDef']


class PytreeType:
    """The "type" of a GraphDef whose root is a pytree container, not a graph node."""


@dataclasses.dataclass(frozen=True)
class NodeEdge:
    """A reference to graph node number ``index``."""
    index: int


@dataclasses.dataclass(frozen=True)
class StateEdge:
    """A State (number ``index``); its value is at ``path`` in the state mapping (``None`` for
    a second reference to a state already seen)."""
    index: int
    path: Any
    type: type


@dataclasses.dataclass(frozen=True)
class StateLeafEdge:
    """A TreefyState found in the graph; its value is at ``path`` in the state mapping."""
    path: Any


@dataclasses.dataclass(frozen=True)
class PytreeEdge:
    """A pytree container: its treedef (``metadata``) and ``(key, edge)`` children."""
    metadata: Any
    fields: tuple


@dataclasses.dataclass(frozen=True)
class StaticEdge:
    """A static value kept in the structure."""
    value: Any


Edge = (NodeEdge, StateEdge, StateLeafEdge, PytreeEdge, StaticEdge)


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One graph node: its ``type``, ``index``, flatten ``metadata`` and ``(key, edge)``
    fields."""
    type: type
    index: int
    metadata: Any
    fields: tuple


@dataclasses.dataclass(frozen=True, repr=False)
class GraphDef(PrettyRepr):
    """The static structure of a graph (see :func:`brainstate.graph.flatten`)."""
    root: Any
    node_specs: tuple

    def __post_init__(self):
        object.__setattr__(self, '_cached_hash', None)

    def __hash__(self) -> int:
        if self._cached_hash is None:
            try:
                value = hash((self.root, self.node_specs))
            except TypeError as e:
                raise TypeError('GraphDef is not hashable because it contains an unhashable '
                                'static value. Wrap dynamic arrays in a State (or in '
                                'brainstate.graph.Static if intentionally static).') from e
            object.__setattr__(self, '_cached_hash', value)
        return self._cached_hash

    def __eq__(self, other) -> bool:
        return (type(other) is GraphDef and self.root == other.root
                and self.node_specs == other.node_specs)

    @property
    def type(self) -> type:
        """The class of the root node (:class:`PytreeType` for a pytree root)."""
        if isinstance(self.root, NodeEdge):
            for spec in self.node_specs:
                if spec.index == self.root.index:
                    return spec.type
        return PytreeType

    @property
    def index(self) -> int:
        return self.root.index if isinstance(self.root, NodeEdge) else 0

    def __pretty_repr__(self):
        yield PrettyType(type=type(self))
        yield PrettyAttr('root', self.root)
        yield PrettyAttr('node_specs', self.node_specs)


jax.tree_util.register_static(GraphDef)
