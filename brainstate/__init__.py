"""brainstate: a tracing compiler for stateful JAX programs.

Write ordinary Python that reads and writes ``State.value``; wrap it in a transform from
``brainstate.transform``; the function is traced into a state IR (``brainstate.ir``), optimized
by passes (``brainstate.passes``), lowered to a jaxpr and compiled by XLA.
"""

__version__ = '0.1.0'

from ._errors import (ArgumentTypeError, ArgumentValueError, BatchAxisError, BrainStateError,
                      GradientError, StateArgumentError, StateValueError, TraceContextError,
                      TracerLeakError)
from ._state import (BatchState, HiddenState, LongTermState, ParamState, ShortTermState, State,
                     DelayState, NonBatchState, maybe_state)
from ._state_api import TreefyState
from ._state_sharding import shard_states
from ._state_pack import PackedBuffer, StatePack, pack_states
from ._state_hidden import FakeState, HiddenGroupState, HiddenTreeState
from ._state_dict import StateDictManager
from ._state_observe import (StateTraceStack, NewStateCatcher, catch_new_states,
                             check_state_value_tree, check_state_jax_tracer)
from ._state_hooks import (Hook, HookHandle, HookError, HookExecutionError, HookRegistrationError,
                           HookCancellationError, HookWarning, HookConfig, HookManager, HookContext,
                           ReadHookContext, WriteHookContext, MutableWriteHookContext,
                           RestoreHookContext, InitHookContext, GlobalHookRegistry,
                           register_state_hook, unregister_state_hook, clear_state_hooks,
                           has_state_hooks, list_state_hooks)
from . import environ
from . import typing
from . import mixin
from . import util
from . import graph
from ._module import Module
from . import ir
from . import passes
from . import transform
from . import nn
from . import optim
from . import random
from ._deprecated_alias import augment, compile  # deprecated names of brainstate.transform

__all__ = [
    'State', 'ParamState', 'HiddenState', 'ShortTermState', 'LongTermState', 'BatchState',
    'DelayState', 'NonBatchState', 'HiddenGroupState', 'HiddenTreeState', 'FakeState',
    'TreefyState', 'pack_states', 'StatePack', 'PackedBuffer', 'StateDictManager', 'StateTraceStack', 'NewStateCatcher', 'catch_new_states',
    'check_state_value_tree', 'check_state_jax_tracer', 'maybe_state', 'TraceContextError',
    'Hook', 'HookHandle', 'HookError', 'HookExecutionError', 'HookRegistrationError',
    'HookCancellationError', 'HookWarning', 'HookConfig', 'HookManager', 'HookContext',
    'ReadHookContext', 'WriteHookContext', 'MutableWriteHookContext', 'RestoreHookContext',
    'InitHookContext', 'GlobalHookRegistry', 'register_state_hook', 'unregister_state_hook',
    'clear_state_hooks', 'has_state_hooks', 'list_state_hooks',
    'shard_states',
    'Module', 'BrainStateError', 'StateValueError', 'TracerLeakError', 'StateArgumentError',
    'BatchAxisError', 'GradientError', 'ArgumentValueError', 'ArgumentTypeError',
    'augment', 'compile', 'functional',
    'environ', 'typing', 'mixin', 'graph', 'ir', 'passes', 'transform', 'nn', 'optim', 'util', 'random',
]

# Old module names of the published library, kept as deprecated aliases.
from ._deprecation import create_deprecated_module_proxy as _deprecated

augment = _deprecated(
    'brainstate.augment', transform, 'brainstate.transform',
    scoped_apis=['GradientTransform', 'grad', 'vector_grad', 'hessian', 'jacobian', 'jacrev',
                 'jacfwd', 'vmap'])
compile = _deprecated(
    'brainstate.compile', transform, 'brainstate.transform',
    scoped_apis=['checkpoint', 'remat', 'cond', 'switch', 'ifelse', 'jit_error_if', 'jit', 'scan',
                 'checkpointed_scan', 'for_loop', 'checkpointed_for_loop', 'while_loop',
                 'bounded_while_loop', 'StatefulFunction', 'make_jaxpr', 'ProgressBar'])
functional = _deprecated(
    'brainstate.functional', nn, 'brainstate.nn',
    scoped_apis=['weight_standardization', 'clip_grad_norm', 'tanh', 'relu', 'squareplus',
                 'softplus', 'soft_sign', 'sigmoid', 'silu', 'swish', 'log_sigmoid', 'elu',
                 'leaky_relu', 'hard_tanh', 'celu', 'selu', 'gelu', 'glu', 'logsumexp',
                 'log_softmax', 'softmax', 'standardize', 'relu6', 'hard_sigmoid', 'sparse_plus',
                 'hard_silu', 'hard_swish', 'hard_shrink', 'rrelu', 'one_hot'])
del _deprecated


def __getattr__(name):
    if name in ('surrogate', 'init', 'optim_braintools'):
        import warnings
        warnings.warn(f'brainstate.{name} module is deprecated and will be removed in a future '
                      f'version. Please use braintools.{name} instead.', DeprecationWarning,
                      stacklevel=2)
        import braintools
        return getattr(braintools, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
