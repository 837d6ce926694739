"""Utilities: state filters and the flat mapping that ``Module.states()`` returns."""

from . import filter
from ._flat_mapping import FlatMapping

__all__ = ['filter', 'FlatMapping']
