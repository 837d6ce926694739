"""Compiler passes over the state IR."""

from ._hoist_states import hoist_states

from ._pass import (FunctionPass, Pass, PassStatistics, get_pass, register,
                    registered_passes)
from ._manager import PassFailure, PassManager, PassRecord, parse_pipeline

register('hoist-states', 'Forward reads from writes, read each state once at entry and write '
         'it once at exit, and make regions pure.')(hoist_states)

from ._dead_writes import eliminate_dead_writes
from ._dce import dead_code_elimination
from ._cse import common_subexpression_elimination
from ._fold_constants import fold_constants
from ._algebraic_simplify import algebraic_simplify
from ._copy_propagation import copy_propagation
from ._analyses import analyze_donation, analyze_read_only_states
from ._pack_states import pack_packed_states
from ._batching import (BatchingResult, BatchingSpec, PRIMITIVE_BATCHING_RULES,
                        analyze_batching)
from ._default_pipeline import (DEFAULT_PIPELINE, default_pipeline, get_default_pipeline,
                                optimize, set_default_pipeline, set_pass_options)

__all__ = [
    'Pass', 'FunctionPass', 'PassStatistics', 'register', 'get_pass', 'registered_passes',
    'PassManager', 'PassFailure', 'PassRecord', 'parse_pipeline',
    'hoist_states', 'eliminate_dead_writes', 'dead_code_elimination',
    'common_subexpression_elimination', 'fold_constants', 'algebraic_simplify',
    'copy_propagation', 'analyze_read_only_states',
    'analyze_donation', 'pack_packed_states', 'analyze_batching', 'BatchingSpec', 'BatchingResult',
    'PRIMITIVE_BATCHING_RULES',
    'DEFAULT_PIPELINE', 'set_default_pipeline', 'get_default_pipeline',
    'default_pipeline', 'set_pass_options', 'optimize', 'prepare_for_lowering',
]


def prepare_for_lowering(graph, passes=None):
    """Run the pipeline (default: the global setting) and whatever lowering needs; return the
    graph."""
    optimize(graph, passes)
    return graph
