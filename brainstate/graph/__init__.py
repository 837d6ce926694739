"""The module tree: ``Node`` (the base of ``Module``) and the functions that walk it."""

from ._node import Node, nodes, states, iter_leaves

__all__ = ['Node', 'nodes', 'states', 'iter_leaves']
