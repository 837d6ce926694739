"""Activation functions. They accept arrays and brainunit quantities alike (via
``brainunit.math``), so a layer can work on values with physical units. A plain array goes
straight to ``jax.nn`` / ``jax.numpy`` where brainunit would call the same function
(:func:`unitless`): the same jaxpr, without brainunit's dispatch (~15 µs a call while tracing)."""

from __future__ import annotations

from typing import Any, Sequence

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    'tanh', 'relu', 'squareplus', 'softplus', 'soft_sign', 'sigmoid', 'silu', 'swish',
    'log_sigmoid', 'elu', 'leaky_relu', 'hard_tanh', 'celu', 'selu', 'gelu', 'glu', 'logsumexp',
    'log_softmax', 'softmax', 'standardize', 'one_hot', 'relu6', 'hard_sigmoid', 'hard_silu',
    'hard_swish', 'hard_shrink', 'rrelu', 'mish', 'soft_shrink', 'prelu', 'tanh_shrink',
    'softmin', 'sparse_plus', 'sparse_sigmoid',
]


def unitless(x) -> bool:
    """Whether ``x`` is an array without units (a JAX array, a tracer or a NumPy array), which
    the activations hand to JAX directly."""
    return isinstance(x, (jax.Array, np.ndarray))


def tanh(x):
    """Hyperbolic tangent."""
    return jnp.tanh(x) if unitless(x) else u.math.tanh(x)


def relu(x):
    """``max(x, 0)``."""
    return jax.nn.relu(x) if unitless(x) else u.math.relu(x)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return jax.nn.relu6(x) if unitless(x) else u.math.relu6(x)


def squareplus(x, b=4):
    """``(x + sqrt(x**2 + b)) / 2``, a smooth ReLU."""
    return u.math.squareplus(x, b=b)


def softplus(x):
    """``log(1 + exp(x))``."""
    return jax.nn.softplus(x) if unitless(x) else u.math.softplus(x)


def soft_sign(x):
    """``x / (1 + |x|)``."""
    return jax.nn.soft_sign(x) if unitless(x) else u.math.soft_sign(x)


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    return jax.nn.sigmoid(x) if unitless(x) else u.math.sigmoid(x)


def silu(x):
    """``x * sigmoid(x)`` (also called swish)."""
    return jax.nn.silu(x) if unitless(x) else u.math.silu(x)


swish = silu


def log_sigmoid(x):
    """``-softplus(-x)``."""
    return jax.nn.log_sigmoid(x) if unitless(x) else u.math.log_sigmoid(x)


def elu(x, alpha=1.0):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return u.math.elu(x, alpha=alpha)


def leaky_relu(x, negative_slope=0.01):
    """``x`` for ``x >= 0``, else ``negative_slope * x``."""
    return u.math.leaky_relu(x, negative_slope=negative_slope)


def hard_tanh(x, min_val: float = -1.0, max_val: float = 1.0):
    """``x`` clipped to ``[min_val, max_val]`` (bounds in ``x``'s unit when it has one)."""
    q = u.Quantity(x)
    low = u.Quantity(min_val).to(q.unit).mantissa
    high = u.Quantity(max_val).to(q.unit).mantissa
    m = q.mantissa
    out = jnp.where(m > high, high, jnp.where(m < low, low, m))
    return u.maybe_decimal(out * q.unit)


def celu(x, alpha=1.0):
    """``max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return u.math.celu(x, alpha=alpha)


def selu(x):
    """Scaled ELU (self-normalising)."""
    return jax.nn.selu(x) if unitless(x) else u.math.selu(x)


def gelu(x, approximate: bool = True):
    """Gaussian error linear unit (the tanh approximation when ``approximate``)."""
    if unitless(x):
        return jax.nn.gelu(x, approximate=approximate)
    return u.math.gelu(x, approximate=approximate)


def glu(x, axis: int = -1):
    """Gated linear unit: split ``x`` in two halves ``a, b`` along ``axis``; ``a * sigmoid(b)``."""
    return u.math.glu(x, axis=axis)


def logsumexp(a, axis=None, b=None, keepdims: bool = False, return_sign: bool = False):
    """``log(sum(b * exp(a)))`` computed stably."""
    return jax.scipy.special.logsumexp(a, axis=axis, b=b, keepdims=keepdims,
                                       return_sign=return_sign)


def log_softmax(x, axis=-1, where=None):
    """``x - logsumexp(x, axis)``."""
    return jax.nn.log_softmax(x, axis=axis, where=where)


def softmax(x, axis=-1, where=None):
    """``exp(x) / sum(exp(x), axis)``."""
    return jax.nn.softmax(x, axis=axis, where=where)


def softmin(x, axis=-1):
    """``softmax(-x, axis)``."""
    return jax.nn.softmax(-x, axis=axis)


def standardize(x, axis=-1, variance=None, epsilon=1e-5, where=None):
    """``(x - mean) / sqrt(variance + epsilon)`` along ``axis``."""
    return jax.nn.standardize(x, axis=axis, variance=variance, epsilon=epsilon, where=where)


def one_hot(x: Any, num_classes: int, *, dtype: Any = jnp.float_, axis: int | Sequence[int] = -1):
    """One-hot encode integer labels ``x`` into ``num_classes`` classes."""
    return jax.nn.one_hot(x, num_classes, dtype=dtype, axis=axis)


def hard_sigmoid(x):
    """``relu6(x + 3) / 6``."""
    return jax.nn.hard_sigmoid(x) if unitless(x) else u.math.hard_sigmoid(x)


def hard_silu(x):
    """``x * hard_sigmoid(x)``."""
    return jax.nn.hard_silu(x) if unitless(x) else u.math.hard_silu(x)


hard_swish = hard_silu


def hard_shrink(x, lambd: float = 0.5):
    """``x`` where ``|x| > lambd``, else 0."""
    return u.math.where(x > lambd, x, u.math.where(x < -lambd, x, u.math.zeros_like(x)))


def soft_shrink(x, lambd: float = 0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    return u.math.where(x > lambd, x - lambd,
                        u.math.where(x < -lambd, x + lambd, u.math.zeros_like(x)))


def rrelu(x, lower: float = 1.0 / 8, upper: float = 1.0 / 3):
    """Randomised leaky ReLU: negative entries scaled by a slope drawn uniformly from
    ``[lower, upper]`` (from ``brainstate.random``)."""
    from .. import random
    mantissa = u.get_mantissa(x)
    dtype = jnp.result_type(mantissa, float)
    a = random.uniform(lower, upper, size=jnp.shape(mantissa), dtype=dtype)
    return u.math.where(mantissa >= 0.0, x, a * x)


def mish(x):
    """``x * tanh(softplus(x))``."""
    return x * u.math.tanh(softplus(x))


def prelu(x, a=0.25):
    """``x`` for ``x >= 0``, else ``a * x`` (``a`` is usually learned)."""
    return u.math.where(x >= 0.0, x, a * x)


def tanh_shrink(x):
    """``x - tanh(x)``."""
    return x - u.math.tanh(x)


def sparse_plus(x):
    """0 below -1, ``(x + 1)**2 / 4`` on ``[-1, 1]``, ``x`` above 1."""
    return jax.nn.sparse_plus(x) if unitless(x) else u.math.sparse_plus(x)


def sparse_sigmoid(x):
    """0 below -1, ``(x + 1) / 2`` on ``[-1, 1]``, 1 above."""
    return jax.nn.sparse_sigmoid(x) if unitless(x) else u.math.sparse_sigmoid(x)
