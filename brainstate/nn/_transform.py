"""Bijective transforms for constrained parameters.

A :class:`~brainstate.nn.Param` stores its value in an unconstrained space and maps it to the
constrained one with ``t.forward``; ``t.inverse`` goes back. E.g. ``SoftplusT(0.)`` keeps a
parameter positive, ``SigmoidT(a, b)`` inside ``(a, b)``. Bounds may carry brainunit units.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import brainunit as u
import jax
import jax.numpy as jnp

__all__ = ['Transform', 'IdentityT', 'SigmoidT', 'SoftplusT', 'NegSoftplusT', 'LogT', 'ExpT',
           'TanhT', 'SoftsignT', 'AffineT', 'ChainT', 'MaskedT', 'ClipT', 'ReluT', 'PositiveT',
           'NegativeT', 'ScaledSigmoidT', 'PowerT', 'OrderedT', 'SimplexT', 'UnitVectorT']


def save_exp(x, max_value: float = 20.0):
    """``exp(x)`` with ``x`` clipped at ``max_value`` first (no overflow)."""
    return u.math.exp(u.math.clip(x, a_min=None, a_max=max_value))


def _sum_last(v):
    """Sum over the last axis (log-det-Jacobians are per event), or all of a scalar."""
    return jnp.sum(v, axis=-1) if jnp.ndim(v) > 0 else jnp.sum(v)


def _inverse_softplus(z):
    return z + jnp.log(-jnp.expm1(-z))


class Transform(ABC):
    """A bijection: ``forward`` (unconstrained to constrained), ``inverse``, and optionally
    ``log_abs_det_jacobian(x, y)``. Calling a transform applies ``forward``."""

    __module__ = 'brainstate.nn'

    def __repr__(self):
        return f'{type(self).__name__}()'

    def __call__(self, x):
        return self.forward(x)

    @abstractmethod
    def forward(self, x):
        """Map from the unconstrained to the constrained space."""

    @abstractmethod
    def inverse(self, y):
        """Map from the constrained to the unconstrained space."""

    def log_abs_det_jacobian(self, x, y):
        """``log |d forward / dx|`` summed over the last axis."""
        raise NotImplementedError(
            f'{type(self).__name__} does not implement log_abs_det_jacobian. Override this '
            f'method in your subclass.')


class IdentityT(Transform):
    """No constraint."""

    def forward(self, x):
        return x

    def inverse(self, y):
        return y

    def log_abs_det_jacobian(self, x, y):
        return jnp.zeros(jnp.shape(x)[:-1] if jnp.ndim(x) > 0 else ())


class _Interval(Transform):
    """A transform onto ``(lower, upper)``."""

    def __init__(self, lower, upper):
        self.lower = lower
        self.width = upper - lower
        self.unit = u.get_unit(lower)

    def __repr__(self):
        return f'{type(self).__name__}(lower={self.lower}, upper={self.lower + self.width})'


class SigmoidT(_Interval):
    """``lower + (upper - lower) * sigmoid(x)``."""

    def forward(self, x):
        return self.lower + self.width * (1.0 / (1.0 + save_exp(-x)))

    def inverse(self, y):
        return -u.math.log(1.0 / ((y - self.lower) / self.width) - 1.0)

    def log_abs_det_jacobian(self, x, y):
        log_width = jnp.log(u.get_mantissa(self.width))
        return _sum_last(log_width + jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x))


class SoftplusT(Transform):
    """``lower + softplus(x)``: values above ``lower``."""

    def __init__(self, lower):
        self.lower = lower
        self.unit = u.get_unit(lower)

    def __repr__(self):
        return f'SoftplusT(lower={self.lower})'

    def forward(self, x):
        return u.maybe_decimal(jax.nn.softplus(x) * self.unit + self.lower)

    def inverse(self, y):
        return _inverse_softplus(u.get_mantissa((y - self.lower) / self.unit))

    def log_abs_det_jacobian(self, x, y):
        return _sum_last(jax.nn.log_sigmoid(x))


class NegSoftplusT(SoftplusT):
    """``upper - softplus(-x)``: values below ``upper``."""

    def __init__(self, upper):
        super().__init__(upper)

    def __repr__(self):
        return f'NegSoftplusT(upper={self.lower})'

    def forward(self, x):
        return u.maybe_decimal(self.lower - jax.nn.softplus(-x) * self.unit)

    def inverse(self, y):
        return -_inverse_softplus(u.get_mantissa((self.lower - y) / self.unit))


class LogT(Transform):
    """``lower + exp(x)``: values above ``lower`` (the inverse is a log)."""

    def __init__(self, lower):
        self.lower = lower
        self.unit = u.get_unit(lower)

    def __repr__(self):
        return f'{type(self).__name__}(lower={self.lower})'

    def forward(self, x):
        return self.lower + save_exp(x) * self.unit

    def inverse(self, y):
        return u.math.log((y - self.lower) / self.unit)

    def log_abs_det_jacobian(self, x, y):
        return _sum_last(x)


class ExpT(LogT):
    """``lower + exp(x)`` (same map as :class:`LogT`)."""


class TanhT(_Interval):
    """``lower + (upper - lower) * (tanh(x) + 1) / 2``."""

    def forward(self, x):
        return self.lower + self.width * (jnp.tanh(x) + 1.0) / 2.0

    def inverse(self, y):
        return jnp.arctanh(2.0 * (y - self.lower) / self.width - 1.0)


class SoftsignT(_Interval):
    """``lower + (upper - lower) * (softsign(x) + 1) / 2``."""

    def forward(self, x):
        return self.lower + self.width * (x / (1.0 + u.math.abs(x)) + 1.0) / 2.0

    def inverse(self, y):
        z = 2.0 * (y - self.lower) / self.width - 1.0
        return z / (1.0 - u.math.abs(z))


class ClipT(Transform):
    """Clip to ``[lower, upper]`` (not a bijection: both directions clip)."""

    def __init__(self, lower, upper):
        self.lower, self.upper = lower, upper

    def __repr__(self):
        return f'ClipT(lower={self.lower}, upper={self.upper})'

    def forward(self, x):
        return u.math.clip(x, a_min=self.lower, a_max=self.upper)

    def inverse(self, y):
        return u.math.clip(y, a_min=self.lower, a_max=self.upper)


class AffineT(Transform):
    """``scale * x + shift`` (``scale`` non-zero)."""

    def __init__(self, scale, shift):
        if jnp.allclose(u.get_mantissa(scale), 0):
            raise ValueError('a cannot be zero, must be invertible')
        self.a, self.b = scale, shift

    def __repr__(self):
        return f'AffineT(scale={self.a}, shift={self.b})'

    def forward(self, x):
        return self.a * x + self.b

    def inverse(self, x):
        return (x - self.b) / self.a

    def log_abs_det_jacobian(self, x, y):
        log_a = jnp.log(jnp.abs(u.get_mantissa(self.a)))
        if jnp.ndim(x) == 0:
            return jnp.sum(log_a)
        return jnp.sum(jnp.broadcast_to(log_a, jnp.shape(x)), axis=-1)


class ChainT(Transform):
    """Apply ``transforms`` in order (the inverse in reverse order)."""

    def __init__(self, *transforms: Transform):
        self.transforms = transforms

    def __repr__(self):
        return f'ChainT({", ".join(repr(t) for t in self.transforms)})'

    def forward(self, x):
        for t in self.transforms:
            x = t.forward(x)
        return x

    def inverse(self, y):
        for t in reversed(self.transforms):
            y = t.inverse(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        total = jnp.zeros(jnp.shape(x)[:-1] if jnp.ndim(x) > 0 else ())
        for t in self.transforms:
            y = t.forward(x)
            total = total + t.log_abs_det_jacobian(x, y)
            x = y
        return total


class MaskedT(Transform):
    """Apply ``transform`` where ``mask`` is true, identity elsewhere (``safe_value`` is fed to
    the transform at masked-out entries so it never sees an invalid input)."""

    def __init__(self, mask, transform: Transform, safe_value=1.0):
        self.mask, self.transform, self.safe_value = mask, transform, safe_value

    def __repr__(self):
        return f'MaskedT(mask=..., transform={self.transform!r})'

    def forward(self, x):
        safe = u.math.where(self.mask, x, self.safe_value)
        return u.math.where(self.mask, self.transform.forward(safe), x)

    def inverse(self, y):
        safe = u.math.where(self.mask, y, self.safe_value)
        return u.math.where(self.mask, self.transform.inverse(safe), y)


class ReluT(Transform):
    """``relu(x) + lower_bound`` (not invertible below the bound)."""

    __module__ = 'brainstate.nn'

    def __init__(self, lower_bound: float = 0.0):
        self.lower_bound = lower_bound

    def forward(self, x):
        return u.math.relu(x) + self.lower_bound

    def inverse(self, y):
        return u.math.relu(y - self.lower_bound)


class PositiveT(Transform):
    """``exp(x)``: positive values."""

    def forward(self, x):
        return save_exp(x)

    def inverse(self, y):
        return u.math.log(y)

    def log_abs_det_jacobian(self, x, y):
        return _sum_last(x)


class NegativeT(Transform):
    """``-softplus(-x)``: negative values."""

    def forward(self, x):
        return -jax.nn.softplus(-x)

    def inverse(self, y):
        return -_inverse_softplus(-u.get_mantissa(y))


class ScaledSigmoidT(_Interval):
    """``lower + (upper - lower) * sigmoid(beta * x)``."""

    def __init__(self, lower, upper, beta: float = 1.0):
        if not beta > 0 or beta == float('inf') or beta != beta:
            raise ValueError(f'beta must be a positive finite number, but got {beta}.')
        super().__init__(lower, upper)
        self.beta = beta

    def __repr__(self):
        return (f'ScaledSigmoidT(lower={self.lower}, upper={self.lower + self.width}, '
                f'beta={self.beta})')

    def forward(self, x):
        return self.lower + self.width * jax.nn.sigmoid(self.beta * x)

    def inverse(self, y):
        return jax.scipy.special.logit((y - self.lower) / self.width) / self.beta


class PowerT(Transform):
    """Box-Cox: ``(x**lmbda - 1) / lmbda`` (``log(x)`` for ``lmbda == 0``)."""

    def __init__(self, lmbda: float = 0.5):
        self.lmbda = lmbda

    def __repr__(self):
        return f'PowerT(lmbda={self.lmbda})'

    def forward(self, x):
        if jnp.abs(self.lmbda) < 1e-10:
            return u.math.log(x)
        return (jnp.power(x, self.lmbda) - 1) / self.lmbda

    def inverse(self, y):
        if jnp.abs(self.lmbda) < 1e-10:
            return u.math.exp(y)
        return jnp.power(y * self.lmbda + 1, 1 / self.lmbda)


class OrderedT(Transform):
    """Increasing vectors: the first entry, then cumulative sums of softplus increments."""

    def forward(self, x):
        first = x[..., :1]
        return jnp.concatenate(
            [first, first + jnp.cumsum(jax.nn.softplus(x[..., 1:]), axis=-1)], axis=-1)

    def inverse(self, y):
        diffs = y[..., 1:] - y[..., :-1]
        return jnp.concatenate([y[..., :1], _inverse_softplus(diffs)], axis=-1)


class SimplexT(Transform):
    """Stick-breaking onto the simplex: ``n`` free values give ``n + 1`` positive entries
    summing to 1."""

    def forward(self, x):
        z = jax.nn.sigmoid(x)
        rest = jnp.cumprod(1 - z, axis=-1)
        before = jnp.concatenate([jnp.ones(z.shape[:-1] + (1,)), rest[..., :-1]], axis=-1)
        return jnp.concatenate([z * before, rest[..., -1:]], axis=-1)

    def inverse(self, y):
        head = y[..., :-1]
        remaining = 1 - jnp.cumsum(head, axis=-1) + head
        eps = jnp.finfo(y.dtype).eps
        return jax.scipy.special.logit(jnp.clip(head / (remaining + eps), eps, 1.0 - eps))


class UnitVectorT(Transform):
    """Normalise to unit length over the last axis (the inverse is the identity)."""

    def forward(self, x):
        return x / jnp.sqrt(jnp.sum(x ** 2, axis=-1, keepdims=True) + 1e-8)

    def inverse(self, y):
        return y
