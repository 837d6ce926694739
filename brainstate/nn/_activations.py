"""Activation functions, and Module versions of the common ones (for ``Sequential``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._module import Module

__all__ = [
    'relu', 'relu6', 'gelu', 'sigmoid', 'tanh', 'softmax', 'log_softmax', 'silu', 'swish',
    'elu', 'selu', 'celu', 'leaky_relu', 'softplus', 'softsign', 'log_sigmoid', 'hard_tanh',
    'identity',
    'ReLU', 'GELU', 'Sigmoid', 'Tanh', 'Softmax', 'LogSoftmax', 'SiLU', 'ELU', 'LeakyReLU',
    'Softplus', 'Identity',
]

relu = jax.nn.relu
relu6 = jax.nn.relu6
gelu = jax.nn.gelu
sigmoid = jax.nn.sigmoid
tanh = jnp.tanh
softmax = jax.nn.softmax
log_softmax = jax.nn.log_softmax
silu = jax.nn.silu
swish = jax.nn.swish
elu = jax.nn.elu
selu = jax.nn.selu
celu = jax.nn.celu
leaky_relu = jax.nn.leaky_relu
softplus = jax.nn.softplus
softsign = jax.nn.soft_sign
log_sigmoid = jax.nn.log_sigmoid
hard_tanh = jax.nn.hard_tanh


def identity(x):
    """Return ``x`` unchanged."""
    return x


class _Activation(Module):
    """A stateless Module applying an activation function (for ``Sequential``)."""

    def __init__(self, name: str | None = None, **options):
        super().__init__(name=name)
        self.options = options

    def update(self, x):
        return type(self).function(x, **self.options)

    def __repr__(self):
        options = ', '.join(f'{k}={v!r}' for k, v in self.options.items())
        return f'{type(self).__name__}({options})'


def _module(name: str, function, doc: str, **defaults):
    def __init__(self, name: str | None = None, **options):
        _Activation.__init__(self, name=name, **{**defaults, **options})

    cls = type(name, (_Activation,), {'function': staticmethod(function), '__doc__': doc,
                                      '__init__': __init__,
                                      '__module__': __name__})
    return cls


ReLU = _module('ReLU', relu, 'Module form of :func:`relu`.')
GELU = _module('GELU', gelu, 'Module form of :func:`gelu` (``approximate=True`` by default).')
Sigmoid = _module('Sigmoid', sigmoid, 'Module form of :func:`sigmoid`.')
Tanh = _module('Tanh', tanh, 'Module form of :func:`tanh`.')
Softmax = _module('Softmax', softmax, 'Module form of :func:`softmax` (``axis=-1``).')
LogSoftmax = _module('LogSoftmax', log_softmax, 'Module form of :func:`log_softmax`.')
SiLU = _module('SiLU', silu, 'Module form of :func:`silu`.')
ELU = _module('ELU', elu, 'Module form of :func:`elu` (``alpha=1.0``).')
LeakyReLU = _module('LeakyReLU', leaky_relu,
                    'Module form of :func:`leaky_relu` (``negative_slope=0.01``).')
Softplus = _module('Softplus', softplus, 'Module form of :func:`softplus`.')
Identity = _module('Identity', identity, 'Module form of :func:`identity`.')
