"""The state IR: graphs of state reads, state writes and JAX primitives.

Public face of the IR; the implementation lives in the private modules.
"""

from ._graph import Graph, GraphEditError, Literal, NODE_KINDS, Node, Value
from ._lower import LoweredGraph, LoweringError, REGION_LOWERING_RULES, lower_subgraph, lower_to_jaxpr
from ._primitives import state_read_p, state_write_p
from ._printer import describe_node, format_graph, source_location, value_name
from ._trace import TraceContext, trace, trace_flat
from ._from_jaxpr import graph_from_jaxpr
from ._region import REGION_KINDS, bind_region, region_p, trace_body
from . import _region_lowering  # registers the lowering rules of the built-in regions
from ._parser import IRParseError, parse
from ._verifier import IRVerificationError, REGION_VERIFY_RULES, infer_result_types, verify

__all__ = [
    'Graph', 'Node', 'Value', 'Literal', 'NODE_KINDS', 'GraphEditError', 'value_name',
    'describe_node',
    'trace', 'trace_flat', 'TraceContext', 'graph_from_jaxpr',
    'lower_to_jaxpr', 'lower_subgraph', 'LoweredGraph', 'LoweringError', 'REGION_LOWERING_RULES',
    'parse', 'IRParseError',
    'verify', 'IRVerificationError', 'REGION_VERIFY_RULES', 'infer_result_types', 'format_graph', 'source_location',
    'state_read_p', 'state_write_p',
    'region_p', 'REGION_KINDS', 'trace_body', 'bind_region',
]
