"""split_context / merge_context: split or merge several graphs sharing one index, so objects
shared between them stay shared."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from ..util._pretty_pytree import NestedDict
from ._flatten import flatten, unflatten
from ._operations import _split_state
from ._reftrack import RefMap

__all__ = ['split_context', 'merge_context', 'SplitContext', 'MergeContext']


@dataclasses.dataclass
class SplitContext:
    """Splits graphs with one shared :class:`RefMap` (see :func:`split_context`)."""
    ref_index: RefMap

    def treefy_split(self, node, *filters):
        graphdef, statetree = flatten(node, self.ref_index)
        return (graphdef, *_split_state(statetree, filters))


@contextlib.contextmanager
def split_context():
    """``with split_context() as (ctx, ref_index): ctx.treefy_split(a); ctx.treefy_split(b)``."""
    index_ref = RefMap()
    ctx = SplitContext(index_ref)
    try:
        yield ctx, index_ref
    finally:
        del ctx.ref_index


@dataclasses.dataclass
class MergeContext:
    """Merges graphs with one shared index (see :func:`merge_context`)."""
    index_ref: dict

    def treefy_merge(self, graphdef, state_mapping, /, *state_mappings) -> Any:
        merged = NestedDict.merge(state_mapping, *state_mappings)
        return unflatten(graphdef, merged, index_ref=self.index_ref)


@contextlib.contextmanager
def merge_context():
    """``with merge_context() as (ctx, index_ref): ctx.treefy_merge(gd, states)``."""
    index_ref: dict = {}
    ctx = MergeContext(index_ref)
    try:
        yield ctx, index_ref
    finally:
        del ctx.index_ref
