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

__all__ = [
    'State', 'ParamState', 'HiddenState', 'ShortTermState', 'LongTermState', 'BatchState',
    'DelayState', 'NonBatchState', 'HiddenGroupState', 'HiddenTreeState', 'FakeState',
    'TreefyState', 'StateDictManager', 'StateTraceStack', 'NewStateCatcher', 'catch_new_states',
    'check_state_value_tree', 'check_state_jax_tracer', 'maybe_state', 'TraceContextError',
    'Hook', 'HookHandle', 'HookError', 'HookExecutionError', 'HookRegistrationError',
    'HookCancellationError', 'HookWarning', 'HookConfig', 'HookManager', 'HookContext',
    'ReadHookContext', 'WriteHookContext', 'MutableWriteHookContext', 'RestoreHookContext',
    'InitHookContext', 'GlobalHookRegistry', 'register_state_hook', 'unregister_state_hook',
    'clear_state_hooks', 'has_state_hooks', 'list_state_hooks',
    'Module', 'BrainStateError', 'StateValueError', 'TracerLeakError', 'StateArgumentError',
    'BatchAxisError', 'GradientError', 'ArgumentValueError', 'ArgumentTypeError',
    'environ', 'typing', 'mixin', 'graph', 'ir', 'passes', 'transform', 'nn', 'optim', 'util', 'random',
]
