"""The state IR: graphs of state reads, state writes and JAX primitives.

Public face of the IR; the implementation lives in the private modules.
"""

from ._graph import Graph, GraphEditError, Literal, NODE_KINDS, Node, Value
from ._lower import LoweredGraph, LoweringError, lower_subgraph, lower_to_jaxpr
from ._primitives import state_read_p, state_write_p
from ._printer import describe_node, format_graph, source_location, state_labels, value_name
from ._trace import TraceContext, trace, trace_flat
from ._from_jaxpr import graph_from_jaxpr
from ._region import bind_region, region_p, trace_body
from . import regions
from .regions import (REGION_KINDS, BodySignature, Carry, RegionKind, RegionSignature,
                      region_kind, register_region_kind, insert_region_operand,
                      remove_region_carry, remove_region_operand, remove_region_result)
from ._parser import IRParseError, parse
from ._scopes import progress_bar_nodes, scope_nodes
from ._verifier import IRVerificationError, infer_result_types, verify

__all__ = [
    'Graph', 'Node', 'Value', 'Literal', 'NODE_KINDS', 'GraphEditError', 'value_name',
    'describe_node', 'state_labels', 'progress_bar_nodes', 'scope_nodes',
    'trace', 'trace_flat', 'TraceContext', 'graph_from_jaxpr',
    'lower_to_jaxpr', 'lower_subgraph', 'LoweredGraph', 'LoweringError',
    'parse', 'IRParseError',
    'verify', 'IRVerificationError', 'infer_result_types', 'format_graph', 'source_location',
    'state_read_p', 'state_write_p',
    'region_p', 'trace_body', 'bind_region',
    'regions', 'REGION_KINDS', 'RegionKind', 'RegionSignature', 'BodySignature', 'Carry',
    'region_kind', 'register_region_kind', 'insert_region_operand', 'remove_region_operand',
    'remove_region_result',
    'remove_region_carry',
]
