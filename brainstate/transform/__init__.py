"""State-aware transforms: they read and write States for you, and never drop an update."""

from ._jit import JittedFunction, jit
from ._make_jaxpr import StatefulFunction, make_jaxpr
from ._progress_bar import ProgressBar
from ._checkpoint import checkpoint, remat
from ._conditions import cond, ifelse, switch
from ._loops import (bounded_while_loop, checkpointed_for_loop, checkpointed_scan, for_loop,
                     scan, while_loop)
from ._autograd import (GradientTransform, fwd_grad, grad, hessian, jacfwd, jacobian, jacrev,
                        value_and_grad, vector_grad, vjp, jvp)
from ._eval_shape import eval_shape

__all__ = ['jit', 'JittedFunction', 'make_jaxpr', 'StatefulFunction',
           'grad', 'value_and_grad', 'vector_grad', 'fwd_grad', 'jacrev', 'jacobian', 'jacfwd',
           'hessian', 'vjp', 'jvp', 'GradientTransform', 'eval_shape',
           'scan', 'for_loop', 'checkpointed_scan', 'checkpointed_for_loop', 'while_loop',
           'bounded_while_loop', 'cond', 'switch', 'ifelse', 'checkpoint', 'remat', 'ProgressBar']
from ._vmap import VmappedFunction, vmap, vmap_new_states
from ._map import map

__all__ += ['vmap', 'vmap_new_states', 'VmappedFunction', 'map']
from ._unvmap import unvmap
from ._error_if import jit_error_if

__all__ += ['unvmap', 'jit_error_if']
from ._checkify import (all_checks, automatic_checks, check, check_error, checkify,
                        div_checks, float_checks, index_checks, nan_checks, user_checks)

__all__ += ['checkify', 'check', 'check_error', 'all_checks', 'user_checks', 'nan_checks',
            'div_checks', 'index_checks', 'float_checks', 'automatic_checks']
from ._named_scope import named_call, named_scope

__all__ += ['named_call', 'named_scope']
from ._find_state import StateFinder

__all__ += ['StateFinder']
from ._eager import clear_eager_cache, eager_cache_info

__all__ += ['eager_cache_info', 'clear_eager_cache']
from ._debug import breakpoint_if, debug_nan, debug_nan_if

__all__ += ['debug_nan', 'debug_nan_if', 'breakpoint_if']
from ._shard_map import shard_map

__all__ += ['shard_map']
from ._ir_processing import eqns_to_closed_jaxpr, eqns_to_jaxpr

__all__ += ['eqns_to_jaxpr', 'eqns_to_closed_jaxpr']
from ._ir_inline import inline_jit

__all__ += ['inline_jit']
from ._mapping2 import (StatefulMapping, pmap2, pmap2_new_states, vmap2,
                        vmap2_new_states)
from ._mapping_core import in_new_state_probe

__all__ += ['StatefulMapping', 'vmap2', 'vmap2_new_states', 'pmap2', 'pmap2_new_states',
            'in_new_state_probe']
from ._ir_optim import (algebraic_simplification, common_subexpression_elimination,
                        constant_fold, copy_propagation, dead_code_elimination, optimize_jaxpr)

__all__ += ['constant_fold', 'dead_code_elimination', 'common_subexpression_elimination',
            'copy_propagation', 'algebraic_simplification', 'optimize_jaxpr']
from ._ir_visualize import draw, draw_dot_graph, view_pydot

__all__ += ['draw', 'view_pydot', 'draw_dot_graph']
from ._ir_tocode import fn_to_python_code, jaxpr_to_python_code, register_prim_handler

__all__ += ['fn_to_python_code', 'jaxpr_to_python_code', 'register_prim_handler']
