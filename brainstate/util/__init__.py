"""Utilities: state filters and the flat mapping that ``Module.states()`` returns."""

from . import filter
from ._flat_mapping import FlatMapping
from ._dicts import (DictManager, DotDict, split_total, get_unique_name, merge_dicts, flatten_dict,
                     unflatten_dict, not_instance_eval, is_instance_eval, clear_buffer_memory)
from .filter import (to_predicate, WithTag, PathContains, OfType, Any, All, Nothing, Not,
                     Everything)

__all__ = ['filter', 'FlatMapping', 'DictManager', 'DotDict', 'split_total', 'get_unique_name',
           'merge_dicts', 'flatten_dict', 'unflatten_dict', 'not_instance_eval',
           'is_instance_eval', 'clear_buffer_memory', 'to_predicate', 'WithTag', 'PathContains',
           'OfType', 'Any', 'All', 'Nothing', 'Not', 'Everything']
