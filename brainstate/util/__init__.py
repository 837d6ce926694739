"""Utilities: state filters and the flat mapping that ``Module.states()`` returns."""

from . import filter
from ._flat_mapping import FlatMapping
from ._others import (DictManager, DotDict, split_total, get_unique_name, merge_dicts, flatten_dict,
                     unflatten_dict, not_instance_eval, is_instance_eval, clear_buffer_memory)
from ._cache import BoundedCache
from ._pretty_repr import (yield_unique_pretty_repr_items, PrettyType, PrettyAttr, PrettyRepr,
                           PrettyMapping, MappingReprMixin)
from ._pretty_pytree import (PrettyDict, NestedDict, FlattedDict, flat_mapping, nest_mapping,
                             PrettyList, PrettyObject)
from ._tracers import StateJaxTracer
from . import struct
from .struct import (field, is_dataclass, dataclass, PyTreeNode, FrozenDict, freeze, unfreeze,
                     copy, pop, pretty_repr)
from .filter import (to_predicate, WithTag, PathContains, OfType, Any, All, Nothing, Not,
                     Everything)

__all__ = ['filter', 'FlatMapping', 'DictManager', 'DotDict', 'split_total', 'get_unique_name',
           'merge_dicts', 'flatten_dict', 'unflatten_dict', 'not_instance_eval',
           'is_instance_eval', 'clear_buffer_memory', 'to_predicate', 'WithTag', 'PathContains',
           'OfType', 'Any', 'All', 'Nothing', 'Not', 'Everything', 'BoundedCache',
           'yield_unique_pretty_repr_items', 'PrettyType', 'PrettyAttr', 'PrettyRepr',
           'PrettyMapping', 'MappingReprMixin', 'PrettyDict', 'NestedDict', 'FlattedDict',
           'flat_mapping', 'nest_mapping', 'PrettyList', 'PrettyObject', 'StateJaxTracer',
           'struct', 'field', 'is_dataclass', 'dataclass', 'PyTreeNode', 'FrozenDict', 'freeze',
           'unfreeze', 'copy', 'pop', 'pretty_repr']


def breakpoint_if(*args, **kwargs):
    """Same as :func:`brainstate.transform.breakpoint_if` (kept here as published)."""
    from .. import transform
    if not hasattr(transform, 'breakpoint_if'):
        raise NotImplementedError('brainstate.transform.breakpoint_if is not available in this '
                                  'version.')
    return transform.breakpoint_if(*args, **kwargs)


__all__.append('breakpoint_if')
