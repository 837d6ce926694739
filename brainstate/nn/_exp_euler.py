"""The exponential Euler step for stiff ODEs (and SDEs) ``dx/dt = f(x, ...)``."""

from __future__ import annotations

from typing import Callable

import brainunit as u
import jax.numpy as jnp

from ._support import get_dt

__all__ = ['exp_euler_step']


def _standard_normal_like(x):
    """N(0, 1) noise of ``x``'s shape and float dtype, from ``brainstate.random``."""
    from .. import random
    if hasattr(random, 'randn_like'):
        return random.randn_like(x)
    mantissa = u.get_mantissa(x)
    return random.normal(size=jnp.shape(mantissa), dtype=jnp.result_type(mantissa))


def exp_euler_step(fn: Callable, *args, **kwargs):
    """One exponential-Euler step of ``dx/dt = fn(x, *rest)`` over ``brainstate.environ``'s
    ``dt``: ``x + dt * phi(dt * J) * fn(x)`` with ``J = d fn / d x`` (element-wise, by
    ``vector_grad``) and ``phi(z) = (exp(z) - 1) / z``. Exact for linear equations such as a
    leaky membrane ``dV/dt = (-V + I) / tau``.

    For an SDE ``dx = f dt + g dW`` pass the diffusion too: ``exp_euler_step(f, g, x, ...)``
    adds ``g(x, ...) * sqrt(dt) * N(0, 1)`` (from ``brainstate.random``).

    Args:
      fn: the drift ``f(x, *args, **kwargs)``.
      *args: optionally the diffusion function first; then the state ``x`` (a float array or
        brainunit Quantity) and the other arguments of ``fn``.

    Example::

        brainstate.environ.set(dt=0.1)
        v = brainstate.nn.exp_euler_step(lambda v, i: (-v + i) / 10., v, i)
    """
    if not callable(fn):
        raise AssertionError('The drift function should be callable.')
    if not args:
        raise AssertionError('The input arguments should not be empty.')
    diffusion = None
    if callable(args[0]):
        diffusion, args = args[0], args[1:]
        if not args:
            raise AssertionError('State variable is required after diffusion function.')
    state = u.math.asarray(args[0])
    dtype = u.math.get_dtype(state)
    if dtype not in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64):
        raise ValueError(f'State variable dtype must be float16, bfloat16, float32, or float64 '
                         f'for Exponential Euler method, but got {dtype}.')
    from ..transform import vector_grad
    dt = get_dt()
    jacobian, drift = vector_grad(fn, argnums=0, return_value=True)(*args, **kwargs)
    jacobian = u.Quantity(u.get_mantissa(jacobian), u.get_unit(drift) / u.get_unit(state))
    x_next = state + dt * u.math.exprel(dt * jacobian) * drift
    if diffusion is not None:
        term = diffusion(*args, **kwargs) * u.math.sqrt(dt) * _standard_normal_like(state)
        if u.get_dim(x_next) != u.get_dim(term):
            drift_unit = u.get_unit(x_next)
            raise ValueError(
                f'Unit mismatch between drift and diffusion terms. State has unit '
                f'{u.get_unit(state)}, drift produces unit {drift_unit}, expected diffusion unit '
                f'{drift_unit / u.get_unit(dt) ** 0.5}, but got {u.get_unit(term)}.')
        x_next = x_next + term
    return x_next
