"""Compiler passes over the state IR."""

from ._hoist_states import REGION_HOIST_RULES, hoist_states
from . import _hoist_regions  # registers the rules of the built-in regions

__all__ = ['hoist_states', 'REGION_HOIST_RULES', 'prepare_for_lowering']


def prepare_for_lowering(graph):
    """Run what lowering needs to be legal (hoist-states) and return the graph."""
    return hoist_states(graph)
