"""Neural-network building blocks: layers, activations, initializers and state hooks."""

from .._module import Module
from ._activations import (ELU, GELU, Identity, LeakyReLU, LogSoftmax, ReLU, SiLU, Sigmoid,
                           Softmax, Softplus, Tanh, celu, elu, gelu, hard_tanh, identity,
                           leaky_relu, log_sigmoid, log_softmax, relu, relu6, selu, sigmoid,
                           silu, softmax, softplus, softsign, swish, tanh)
from ._dropout import Dropout
from ._init import (Constant, Initializer, KaimingNormal, KaimingUniform, LecunNormal,
                    LecunUniform, Normal, TruncatedNormal, Uniform, XavierNormal, XavierUniform,
                    ZeroInit, init_all_states, param, reset_all_states)
from ._linear import Linear
from ._sequential import Sequential
from . import _init as init

__all__ = [
    'Module', 'Linear', 'Sequential', 'Dropout', 'init_all_states', 'reset_all_states', 'init',
    'param', 'Initializer', 'ZeroInit', 'Constant', 'Normal', 'TruncatedNormal', 'Uniform',
    'KaimingNormal', 'KaimingUniform', 'XavierNormal', 'XavierUniform', 'LecunNormal',
    'LecunUniform',
    'relu', 'relu6', 'gelu', 'sigmoid', 'tanh', 'softmax', 'log_softmax', 'silu', 'swish', 'elu',
    'selu', 'celu', 'leaky_relu', 'softplus', 'softsign', 'log_sigmoid', 'hard_tanh', 'identity',
    'ReLU', 'GELU', 'Sigmoid', 'Tanh', 'Softmax', 'LogSoftmax', 'SiLU', 'ELU', 'LeakyReLU',
    'Softplus', 'Identity',
]
