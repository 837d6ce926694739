"""brainstate: a tracing compiler for stateful JAX programs.

Write ordinary Python that reads and writes ``State.value``; wrap it in a transform from
``brainstate.transform``; the function is traced into a state IR (``brainstate.ir``), optimized
by passes (``brainstate.passes``), lowered to a jaxpr and compiled by XLA.
"""

__version__ = '0.1.0'

from ._errors import (ArgumentTypeError, ArgumentValueError, BatchAxisError, BrainStateError,
                      GradientError, StateArgumentError, StateValueError, TracerLeakError)
from ._state import (BatchState, HiddenState, LongTermState, ParamState, ShortTermState, State)
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
    'Module', 'BrainStateError', 'StateValueError', 'TracerLeakError', 'StateArgumentError',
    'BatchAxisError', 'GradientError', 'ArgumentValueError', 'ArgumentTypeError',
    'environ', 'typing', 'mixin', 'graph', 'ir', 'passes', 'transform', 'nn', 'optim', 'util', 'random',
]
