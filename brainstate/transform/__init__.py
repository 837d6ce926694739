"""State-aware transforms: they read and write States for you, and never drop an update."""

from ._jit import JittedFunction, jit
from ._make_jaxpr import make_jaxpr
from ._progress_bar import ProgressBar
from ._checkpoint import checkpoint, remat
from ._conditions import cond, ifelse, switch
from ._loops import (bounded_while_loop, checkpointed_for_loop, checkpointed_scan, for_loop,
                     scan, while_loop)
from ._autograd import (GradientTransform, fwd_grad, grad, hessian, jacfwd, jacobian, jacrev,
                        value_and_grad, vector_grad, vjp, jvp)
from ._eval_shape import eval_shape

__all__ = ['jit', 'JittedFunction', 'make_jaxpr',
           'grad', 'value_and_grad', 'vector_grad', 'fwd_grad', 'jacrev', 'jacobian', 'jacfwd',
           'hessian', 'vjp', 'jvp', 'GradientTransform', 'eval_shape',
           'scan', 'for_loop', 'checkpointed_scan', 'checkpointed_for_loop', 'while_loop',
           'bounded_while_loop', 'cond', 'switch', 'ifelse', 'checkpoint', 'remat', 'ProgressBar']
from ._vmap import VmappedFunction, vmap, vmap_new_states
from ._map import map

__all__ += ['vmap', 'vmap_new_states', 'VmappedFunction', 'map']
from ._eager import clear_eager_cache, eager_cache_info

__all__ += ['eager_cache_info', 'clear_eager_cache']
