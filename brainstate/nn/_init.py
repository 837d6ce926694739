"""Parameter initializers, and the hooks that (re)initialize a module tree's states.

An initializer is a callable ``init(shape, dtype=None, key=None) -> array``; without ``key`` it
draws from ``brainstate.random.DEFAULT`` (so ``brainstate.random.seed(n)`` makes a model's
initial parameters reproducible). ``Linear(..., w_init=...)`` also accepts an array.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._module import Module
from ..util import filter as filters

__all__ = [
    'Initializer', 'ZeroInit', 'Constant', 'Normal', 'TruncatedNormal', 'Uniform',
    'KaimingNormal', 'KaimingUniform', 'XavierNormal', 'XavierUniform', 'LecunNormal',
    'LecunUniform', 'param', 'init_all_states', 'reset_all_states',
]


def _key(key):
    if key is not None:
        return key
    from .. import random
    return random.split_key()


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``: the last axis is the output axis."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _float_dtype(dtype):
    return jnp.dtype(dtype) if dtype is not None else jnp.zeros(()).dtype


class Initializer:
    """Base class of initializers: ``init(shape, dtype=None, key=None)``."""

    def __call__(self, shape, dtype=None, key=None):
        raise NotImplementedError

    def __repr__(self):
        fields = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({fields})'


class ZeroInit(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None, key=None):
        return jnp.zeros(shape, _float_dtype(dtype))


class Constant(Initializer):
    """Every entry set to ``value``."""

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None, key=None):
        return jnp.full(shape, self.value, _float_dtype(dtype))


class Normal(Initializer):
    """``mean + scale * N(0, 1)``."""

    def __init__(self, mean=0.0, scale=1.0):
        self.mean, self.scale = mean, scale

    def __call__(self, shape, dtype=None, key=None):
        dtype = _float_dtype(dtype)
        return self.mean + self.scale * jax.random.normal(_key(key), shape, dtype)


class TruncatedNormal(Initializer):
    """A normal truncated to ``[lower, upper]`` standard deviations, scaled by ``scale``."""

    def __init__(self, mean=0.0, scale=1.0, lower=-2.0, upper=2.0):
        self.mean, self.scale, self.lower, self.upper = mean, scale, lower, upper

    def __call__(self, shape, dtype=None, key=None):
        dtype = _float_dtype(dtype)
        z = jax.random.truncated_normal(_key(key), self.lower, self.upper, shape, dtype)
        return self.mean + self.scale * z


class Uniform(Initializer):
    """Uniform on ``[min_val, max_val)``."""

    def __init__(self, min_val=0.0, max_val=1.0):
        self.min_val, self.max_val = min_val, max_val

    def __call__(self, shape, dtype=None, key=None):
        return jax.random.uniform(_key(key), shape, _float_dtype(dtype), self.min_val,
                                  self.max_val)


class _VarianceScaling(Initializer):
    """Variance ``scale / fan`` (fan from ``mode``), as a (truncated) normal or a uniform."""

    mode = 'fan_in'
    distribution = 'truncated_normal'

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def __call__(self, shape, dtype=None, key=None):
        dtype = _float_dtype(dtype)
        fan_in, fan_out = _fans(shape)
        fan = {'fan_in': fan_in, 'fan_out': fan_out, 'fan_avg': (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(fan, 1)
        key = _key(key)
        if self.distribution == 'uniform':
            limit = math.sqrt(3.0 * variance)
            return jax.random.uniform(key, shape, dtype, -limit, limit)
        if self.distribution == 'normal':
            return math.sqrt(variance) * jax.random.normal(key, shape, dtype)
        # A standard normal truncated to [-2, 2] has std 0.87962566103423978.
        std = math.sqrt(variance) / 0.87962566103423978
        return std * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


class KaimingNormal(_VarianceScaling):
    """He / Kaiming normal: variance ``2 / fan_in`` (good before ReLU)."""

    def __init__(self, scale: float = 2.0, distribution: str = 'truncated_normal',
                 mode: str = 'fan_in'):
        super().__init__(scale)
        self.distribution, self.mode = distribution, mode


class KaimingUniform(KaimingNormal):
    """He / Kaiming uniform: variance ``2 / fan_in``."""

    def __init__(self, scale: float = 2.0, mode: str = 'fan_in'):
        super().__init__(scale, 'uniform', mode)


class XavierNormal(KaimingNormal):
    """Glorot / Xavier normal: variance ``1 / fan_avg``."""

    def __init__(self, scale: float = 1.0, distribution: str = 'truncated_normal'):
        super().__init__(scale, distribution, 'fan_avg')


class XavierUniform(KaimingNormal):
    """Glorot / Xavier uniform: variance ``1 / fan_avg``."""

    def __init__(self, scale: float = 1.0):
        super().__init__(scale, 'uniform', 'fan_avg')


class LecunNormal(KaimingNormal):
    """LeCun normal: variance ``1 / fan_in``."""

    def __init__(self, scale: float = 1.0, distribution: str = 'truncated_normal'):
        super().__init__(scale, distribution, 'fan_in')


class LecunUniform(KaimingNormal):
    """LeCun uniform: variance ``1 / fan_in``."""

    def __init__(self, scale: float = 1.0):
        super().__init__(scale, 'uniform', 'fan_in')


def param(init: Any, shape, dtype=None, allow_none: bool = True):
    """Make an initial value: call an initializer, or check an array's shape.

    Args:
      init: an :class:`Initializer` (or any ``f(shape, dtype=...)``), an array, or ``None``.
      shape: the shape wanted.
      allow_none: return ``None`` for ``init=None`` (e.g. no bias) instead of raising.
    """
    shape = tuple(shape)
    if init is None:
        if allow_none:
            return None
        raise ValueError(f'An initializer is required for a parameter of shape {shape}.')
    if callable(init) and not isinstance(init, (jax.Array, np.ndarray)):
        return init(shape, dtype)
    value = jnp.asarray(init, dtype)
    if value.shape != shape:
        raise ValueError(f'A parameter of shape {shape} was given an array of shape '
                         f'{value.shape}.')
    return value


# -- state hooks over a module tree ---------------------------------------------------------

def _children_first(module: Module, exclude) -> list:
    """The modules of the tree, each after all of its sub-modules (post-order)."""
    nodes = module.nodes(Module)
    predicate = filters.to_predicate(exclude) if exclude is not None else None
    order, stack = [], []
    for path, node in nodes.items():
        while stack and stack[-1][0] != path[:len(stack[-1][0])]:
            order.append(stack.pop())
        stack.append((path, node))
    while stack:
        order.append(stack.pop())
    return [node for path, node in order if predicate is None or not predicate(path, node)]


def init_all_states(module: Module, *args, exclude=None, **kwargs) -> Module:
    """Call ``init_state(*args, **kwargs)`` on every module of the tree, sub-modules before
    the modules holding them, and return ``module``.

    ``init_state`` is where a module creates the states that depend on the input (a batch
    size, say), such as a neuron's membrane potential. ``exclude`` is a filter (a Module class,
    a predicate ``f(path, module)``, ...) of modules to skip.

    Example::

        net = brainstate.nn.init_all_states(Net(), batch_size=16)
    """
    for node in _children_first(module, exclude):
        node.init_state(*args, **kwargs)
    return module


def reset_all_states(module: Module, *args, exclude=None, **kwargs) -> Module:
    """Call ``reset_state(*args, **kwargs)`` on every module of the tree, sub-modules first,
    and return ``module``. Use it between trials or sequences to put dynamical states back to
    their initial values."""
    for node in _children_first(module, exclude):
        node.reset_state(*args, **kwargs)
    return module
