"""Regularisation (priors) for parameters.

Each regulariser gives ``loss(value)`` (a penalty, or a negative log prior density up to its
constant), ``sample_init(shape)`` (a draw from the prior, from ``brainstate.random``) and
``reset_value()`` (the prior's typical value). With ``fit_hyper=True`` the hyper-parameters that
shape the prior are ParamStates and are learned too. Positive hyper-parameters pass through
``relu(.) + 1e-8`` before use.
"""

from __future__ import annotations

import math

import brainunit as u
import jax.numpy as jnp
from jax.scipy.special import gammaln

from .._state import ParamState
from ._module import Module
from ._support import dftype
from ._utils import get_size, get_value

__all__ = ['Regularization', 'ChainedReg', 'GaussianReg', 'L1Reg', 'L2Reg', 'ElasticNetReg',
           'HuberReg', 'GroupLassoReg', 'TotalVariationReg', 'MaxNormReg', 'EntropyReg',
           'OrthogonalReg', 'SpectralNormReg', 'StudentTReg', 'CauchyReg', 'UniformReg',
           'LogNormalReg', 'ExponentialReg', 'GammaReg', 'BetaReg', 'HorseshoeReg',
           'InverseGammaReg', 'LogUniformReg', 'SpikeAndSlabReg', 'DirichletReg']

_EPS = 1e-8


def _random():
    from .. import random
    return random


def _randn(shape):
    return _random().randn(*get_size(shape))


def _rand(shape):
    return _random().rand(*get_size(shape))


def _pos(value):
    """A positive version of a hyper-parameter: ``relu(v) + 1e-8``."""
    return u.math.relu(get_value(value)) + _EPS


def _laplace(scale, shape):
    v = _rand(shape) - 0.5
    return scale * u.math.sign(v) * u.math.log(1 - 2 * u.math.abs(v) + _EPS)


def _softmax_flat(value):
    flat = u.math.reshape(value, (-1,))
    e = u.math.exp(flat - u.math.max(flat))
    return e / (u.math.sum(e) + _EPS)


class Regularization(Module):
    """Base class: ``loss(value)``, ``sample_init(shape)``, ``reset_value()``."""

    __module__ = 'brainstate.nn'

    def __init__(self, fit_hyper: bool = False):
        super().__init__()
        self.fit_hyper = fit_hyper

    def _hyper(self, value, learnable: bool = True):
        """A hyper-parameter: an array, or a ParamState when it is learned."""
        value = u.math.asarray(value, dtype=dftype())
        return ParamState(value) if (self.fit_hyper and learnable) else value

    def loss(self, value):
        """The penalty of ``value``."""
        raise NotImplementedError

    def sample_init(self, shape):
        """A draw of shape ``shape`` from the prior."""
        raise NotImplementedError

    def reset_value(self):
        """The prior's typical value (what ``Param.reset_to_prior`` sets)."""
        raise NotImplementedError


class _Weighted(Regularization):
    """A regulariser with a fixed ``weight``, whose samples are ``N(0, 1/weight)`` and whose
    typical value is 0 (unless a subclass says otherwise)."""

    def __init__(self, weight: float = 1.0, fit_hyper: bool = False):
        super().__init__(fit_hyper)
        self.weight = self._hyper(weight, learnable=False)

    def sample_init(self, shape):
        return 1.0 / u.math.sqrt(u.math.relu(get_value(self.weight)) + _EPS) * _randn(shape)

    def reset_value(self):
        return 0.0


class ChainedReg(Regularization):
    """The sum of several regularisers' losses, times ``weight``; samples and typical value
    from the first."""

    def __init__(self, *regularizations, weight: float = 1.0, fit_hyper: bool = False):
        super().__init__(fit_hyper=fit_hyper)
        self.regularizations = regularizations
        for i, reg in enumerate(regularizations):
            setattr(self, f'_reg_{i}', reg)
        self.weight = u.math.asarray(weight, dtype=dftype())

    def loss(self, value):
        if not self.regularizations:
            return 0.0
        total = self.regularizations[0].loss(value)
        for reg in self.regularizations[1:]:
            total = total + reg.loss(value)
        return self.weight * total

    def sample_init(self, shape):
        if not self.regularizations:
            return u.math.zeros(get_size(shape))
        return self.regularizations[0].sample_init(shape)

    def reset_value(self):
        return self.regularizations[0].reset_value() if self.regularizations else 0.0


class GaussianReg(Regularization):
    """Gaussian prior ``N(mean, std**2)``: ``weight * (sum(prec * (v - mean)**2) -
    sum(log prec))`` with ``prec = 1 / std**2``. Learns ``mean`` and the precision with
    ``fit_hyper``."""

    def __init__(self, mean, std, weight: float = 1.0, fit_hyper: bool = False):
        super().__init__(fit_hyper)
        mean = u.math.asarray(mean, dtype=dftype())
        std = u.math.asarray(std, dtype=dftype())
        precision = 1.0 / (std ** 2 + _EPS)
        self.mean = ParamState(mean) if fit_hyper else mean
        self.precision = ParamState(precision) if fit_hyper else precision
        self.weight = u.math.asarray(weight, dtype=dftype())

    def loss(self, value):
        prec = u.math.relu(get_value(self.precision)) + 1e-6
        return self.weight * (u.math.sum(prec * (value - get_value(self.mean)) ** 2)
                              - u.math.sum(u.math.log(prec)))

    def sample_init(self, shape):
        std = 1.0 / u.math.sqrt(_pos(self.precision))
        return get_value(self.mean) + std * _randn(shape)

    def reset_value(self):
        return get_value(self.mean)


class L1Reg(_Weighted):
    """``weight * sum(|v|)`` (a Laplace prior): encourages sparsity."""

    def loss(self, value):
        return self.weight * u.math.sum(u.math.abs(value))

    def sample_init(self, shape):
        return _laplace(1.0 / (self.weight + _EPS), shape)


class L2Reg(_Weighted):
    """``relu(weight) * sum(v**2)`` (weight decay; a Gaussian prior)."""

    def loss(self, value):
        return u.math.relu(get_value(self.weight)) * u.math.sum(value ** 2)


class ElasticNetReg(Regularization):
    """``alpha * l1_weight * sum|v| + (1 - alpha) * l2_weight * sum v**2`` (``alpha`` clipped
    to [0, 1]; learned with ``fit_hyper``)."""

    def __init__(self, l1_weight: float = 1.0, l2_weight: float = 1.0, alpha: float = 0.5,
                 fit_hyper: bool = False):
        super().__init__(fit_hyper)
        self.l1_weight = self._hyper(l1_weight, learnable=False)
        self.l2_weight = self._hyper(l2_weight, learnable=False)
        self.alpha = self._hyper(alpha)

    def loss(self, value):
        alpha = u.math.clip(get_value(self.alpha), 0.0, 1.0)
        l1 = self.l1_weight * u.math.sum(u.math.abs(value))
        l2 = self.l2_weight * u.math.sum(value ** 2)
        return alpha * l1 + (1.0 - alpha) * l2

    def sample_init(self, shape):
        alpha = u.math.clip(get_value(self.alpha), 0.0, 1.0)
        l2 = 1.0 / u.math.sqrt(_pos(self.l2_weight)) * _randn(shape)
        l1 = _laplace(1.0 / _pos(self.l1_weight), shape)
        return alpha * l1 + (1.0 - alpha) * l2

    def reset_value(self):
        return 0.0


class HuberReg(_Weighted):
    """Huber penalty: quadratic below ``delta``, linear above (``delta`` learned with
    ``fit_hyper``)."""

    def __init__(self, weight: float = 1.0, delta: float = 1.0, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.delta = self._hyper(delta)

    def loss(self, value):
        delta = _pos(self.delta)
        a = u.math.abs(value)
        huber = u.math.where(a <= delta, 0.5 * value ** 2, delta * (a - 0.5 * delta))
        return self.weight * u.math.sum(huber)


class GroupLassoReg(_Weighted):
    """``weight * sum over groups of ||group||_2``: the flattened value cut into groups of
    ``group_size`` (zero-padded); encourages whole groups to vanish."""

    def __init__(self, weight: float = 1.0, group_size: int = 1, fit_hyper: bool = False):
        if not isinstance(group_size, int):
            raise TypeError(f'group_size must be an int, but got {type(group_size)}.')
        if group_size <= 0:
            raise ValueError(f'group_size must be a positive integer, but got {group_size}.')
        super().__init__(weight, fit_hyper)
        self.group_size = group_size

    def loss(self, value):
        flat = u.math.reshape(value, (-1,))
        remainder = flat.shape[0] % self.group_size
        if remainder:
            pad = (u.math.zeros(self.group_size - remainder, dtype=u.get_mantissa(flat).dtype)
                   * u.get_unit(flat))
            flat = u.math.concatenate([flat, pad])
        sq = u.math.sum(u.math.reshape(flat, (-1, self.group_size)) ** 2, axis=1)
        return self.weight * u.math.sum(u.math.sqrt(sq + _EPS * u.get_unit(sq)))


class TotalVariationReg(_Weighted):
    """``weight * sum |differences|`` of the flattened value (first or second ``order``):
    encourages smooth profiles."""

    def __init__(self, weight: float = 1.0, order: int = 1, fit_hyper: bool = False):
        if order not in (1, 2):
            raise ValueError(f'order must be 1 or 2, but got {order}.')
        super().__init__(weight, fit_hyper)
        self.order = order

    def loss(self, value):
        flat = u.math.reshape(value, (-1,))
        diff = (flat[1:] - flat[:-1] if self.order == 1
                else flat[2:] - 2 * flat[1:-1] + flat[:-2])
        return self.weight * u.math.sum(u.math.abs(diff))

    def sample_init(self, shape):
        shape = get_size(shape)
        noise = super().sample_init(shape)
        return u.math.cumsum(noise.flatten()).reshape(shape) / math.sqrt(float(math.prod(shape)))


class MaxNormReg(_Weighted):
    """``weight * relu(||v|| - max_value)**2``: a soft cap on the value's norm."""

    def __init__(self, weight: float = 1.0, max_value: float = 1.0, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.max_value = self._hyper(max_value)

    def loss(self, value):
        norm = u.math.sqrt(u.math.sum(value ** 2) + _EPS)
        return self.weight * u.math.relu(norm - _pos(self.max_value)) ** 2

    def sample_init(self, shape):
        sample = _randn(shape)
        norm = u.math.sqrt(u.math.sum(sample ** 2) + _EPS)
        return sample * (_pos(self.max_value) / (norm + _EPS) * 0.5)


class EntropyReg(_Weighted):
    """The entropy of ``softmax(flattened value)``, maximised (``maximize=True``: the loss is
    ``-weight * H``) or minimised."""

    def __init__(self, weight: float = 1.0, maximize: bool = True, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.maximize = maximize

    def loss(self, value):
        p = _softmax_flat(value)
        entropy = -u.math.sum(p * u.math.log(p + _EPS))
        return -self.weight * entropy if self.maximize else self.weight * entropy

    def sample_init(self, shape):
        return u.math.zeros(get_size(shape)) if self.maximize else _randn(shape)


def _as_matrix(value):
    if value.ndim == 1:
        n = int(math.sqrt(float(value.shape[0])))
        return (u.math.reshape(value, (n, n)) if n * n == value.shape[0]
                else u.math.reshape(value, (-1, 1)))
    if value.ndim > 2:
        return u.math.reshape(value, (value.shape[0], -1))
    return value


class OrthogonalReg(_Weighted):
    """``weight * ||W^T W - I||_F**2``: encourages orthonormal columns."""

    def loss(self, value):
        if value.ndim == 0:
            return self.weight * (u.math.abs(value) - 1.0) ** 2
        w = _as_matrix(value)
        gram = u.math.matmul(w.T, w)
        return self.weight * u.math.sum((gram - u.math.eye(gram.shape[0])) ** 2)

    def sample_init(self, shape):
        shape = get_size(shape)
        if len(shape) == 1:
            side = int(math.ceil(math.sqrt(float(shape[0]))))
            q, _ = jnp.linalg.qr(_random().randn(side, side))
            return u.math.reshape(q, (-1,))[:shape[0]]
        if len(shape) == 2:
            q, _ = jnp.linalg.qr(_random().randn(*shape))
            return q[:shape[0], :shape[1]]
        return _randn(shape) * 0.1


class SpectralNormReg(_Weighted):
    """``weight * relu(sigma_max(W) - max_value)**2``: a soft cap on the largest singular
    value."""

    def __init__(self, weight: float = 1.0, max_value: float = 1.0,
                 n_power_iterations: int = 1, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.max_value = self._hyper(max_value)
        self.n_power_iterations = n_power_iterations

    def _estimate_spectral_norm(self, w):
        if w.ndim == 0:
            return u.math.abs(w)
        if w.ndim == 1:
            return u.math.sqrt(u.math.sum(w ** 2))
        if w.ndim > 2:
            w = u.math.reshape(w, (w.shape[0], -1))
        return jnp.linalg.svd(w, compute_uv=False)[0]

    def loss(self, value):
        sigma = self._estimate_spectral_norm(value)
        return self.weight * u.math.relu(sigma - _pos(self.max_value)) ** 2

    def sample_init(self, shape):
        shape = get_size(shape)
        sample = _randn(shape)
        if len(shape) >= 2:
            return sample * (_pos(self.max_value) / (self._estimate_spectral_norm(sample) + _EPS))
        norm = u.math.sqrt(u.math.sum(sample ** 2) + _EPS)
        return sample * _pos(self.max_value) / (norm + _EPS)


class StudentTReg(_Weighted):
    """Student-t prior (``df`` degrees of freedom, ``scale``): the negative log density."""

    def __init__(self, weight: float = 1.0, df: float = 3.0, scale: float = 1.0,
                 fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.df = self._hyper(df)
        self.scale = self._hyper(scale)

    def loss(self, value):
        df, scale = _pos(self.df), _pos(self.scale)
        z = value / scale
        data = u.math.sum(0.5 * (df + 1.0) * u.math.log(1.0 + z ** 2 / df))
        norm = value.size * (u.math.log(scale) + gammaln(df / 2.0)
                             + 0.5 * u.math.log(df * math.pi) - gammaln((df + 1.0) / 2.0))
        return self.weight * (data + norm)

    def sample_init(self, shape):
        return _pos(self.scale) * _randn(shape)


class CauchyReg(_Weighted):
    """Cauchy prior of ``scale``: ``weight * (sum log(1 + (v/scale)**2) + n log scale)``."""

    def __init__(self, weight: float = 1.0, scale: float = 1.0, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.scale = self._hyper(scale)

    def loss(self, value):
        scale = _pos(self.scale)
        data = u.math.sum(u.math.log(1.0 + (value / scale) ** 2))
        return self.weight * (data + value.size * u.math.log(scale))

    def sample_init(self, shape):
        return _pos(self.scale) * u.math.tan(math.pi * (_rand(shape) - 0.5))


class UniformReg(_Weighted):
    """Soft box ``[lower, upper]``: ``weight * sum(relu(lower - v)**2 + relu(v - upper)**2)``."""

    def __init__(self, weight: float = 1.0, lower: float = -1.0, upper: float = 1.0,
                 fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.lower = self._hyper(lower)
        self.upper = self._hyper(upper)

    def loss(self, value):
        lower, upper = get_value(self.lower), get_value(self.upper)
        return self.weight * u.math.sum(u.math.relu(lower - value) ** 2
                                        + u.math.relu(value - upper) ** 2)

    def sample_init(self, shape):
        lower, upper = get_value(self.lower), get_value(self.upper)
        return lower + (upper - lower) * _rand(shape)

    def reset_value(self):
        return (get_value(self.lower) + get_value(self.upper)) / 2.0


class LogNormalReg(_Weighted):
    """Log-normal prior (``mu``, ``sigma`` of the log): the negative log density."""

    def __init__(self, weight: float = 1.0, mu: float = 0.0, sigma: float = 1.0,
                 fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.mu = self._hyper(mu)
        self.sigma = self._hyper(sigma)

    def loss(self, value):
        mu, sigma = get_value(self.mu), _pos(self.sigma)
        log_x = u.math.log(u.math.relu(value) + _EPS)
        data = u.math.sum((log_x - mu) ** 2 / (2 * sigma ** 2) + log_x)
        return self.weight * (data + value.size * u.math.log(sigma))

    def sample_init(self, shape):
        return u.math.exp(get_value(self.mu) + _pos(self.sigma) * _randn(shape))

    def reset_value(self):
        return u.math.exp(get_value(self.mu))


class ExponentialReg(_Weighted):
    """Exponential prior of ``rate``: ``weight * rate * sum(relu(v))``."""

    def __init__(self, weight: float = 1.0, rate: float = 1.0, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.rate = self._hyper(rate)

    def loss(self, value):
        return self.weight * _pos(self.rate) * u.math.sum(u.math.relu(value))

    def sample_init(self, shape):
        return -u.math.log(_rand(shape) + _EPS) / _pos(self.rate)


class GammaReg(_Weighted):
    """Gamma prior (shape ``alpha``, rate ``beta``): the negative log density."""

    def __init__(self, weight: float = 1.0, alpha: float = 2.0, beta: float = 1.0,
                 fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.alpha = self._hyper(alpha)
        self.beta = self._hyper(beta)

    def loss(self, value):
        alpha, beta = _pos(self.alpha), _pos(self.beta)
        x = u.math.relu(value) + _EPS
        data = u.math.sum(-(alpha - 1) * u.math.log(x) + beta * x)
        return self.weight * (data + value.size * (-alpha * u.math.log(beta) + gammaln(alpha)))

    def sample_init(self, shape):
        return _random().gamma(_pos(self.alpha), scale=1.0 / _pos(self.beta),
                               size=get_size(shape))

    def reset_value(self):
        return u.math.maximum((_pos(self.alpha) - 1) / _pos(self.beta), _EPS)


class BetaReg(_Weighted):
    """Beta prior (``a``, ``b``) on values in (0, 1): the negative log density."""

    def __init__(self, weight: float = 1.0, a: float = 2.0, b: float = 2.0,
                 fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.a = self._hyper(a)
        self.b = self._hyper(b)

    def loss(self, value):
        a, b = _pos(self.a), _pos(self.b)
        x = u.math.clip(value, _EPS, 1.0 - _EPS)
        data = u.math.sum(-(a - 1) * u.math.log(x) - (b - 1) * u.math.log(1 - x))
        return self.weight * (data + value.size * (gammaln(a) + gammaln(b) - gammaln(a + b)))

    def sample_init(self, shape):
        return _random().beta(_pos(self.a), _pos(self.b), size=get_size(shape))

    def reset_value(self):
        a, b = _pos(self.a), _pos(self.b)
        return u.math.clip((a - 1) / (a + b - 2 + _EPS), 0.0, 1.0)


class HorseshoeReg(_Weighted):
    """Horseshoe-like sparsity prior of global scale ``tau``."""

    def __init__(self, weight: float = 1.0, tau: float = 1.0, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.tau = self._hyper(tau)

    def loss(self, value):
        tau = _pos(self.tau)
        data = u.math.sum(u.math.log(1.0 + (value / tau) ** 2))
        return self.weight * (data + value.size * u.math.log(tau))

    def sample_init(self, shape):
        local = u.math.abs(u.math.tan(math.pi * (_rand(shape) - 0.5)))
        return _pos(self.tau) * local * _randn(shape)


class InverseGammaReg(_Weighted):
    """Inverse-gamma prior (shape ``alpha``, scale ``beta``): the negative log density."""

    def __init__(self, weight: float = 1.0, alpha: float = 2.0, beta: float = 1.0,
                 fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.alpha = self._hyper(alpha)
        self.beta = self._hyper(beta)

    def loss(self, value):
        alpha, beta = _pos(self.alpha), _pos(self.beta)
        x = u.math.relu(value) + _EPS
        data = u.math.sum((alpha + 1) * u.math.log(x) + beta / x)
        return self.weight * (data + value.size * (-alpha * u.math.log(beta) + gammaln(alpha)))

    def sample_init(self, shape):
        g = _random().gamma(_pos(self.alpha), scale=1.0, size=get_size(shape))
        return _pos(self.beta) / (g + _EPS)

    def reset_value(self):
        return _pos(self.beta) / (_pos(self.alpha) + 1)


class LogUniformReg(_Weighted):
    """Log-uniform prior on ``[lower, upper]``: ``weight * sum(log(clip(v)))``."""

    def __init__(self, weight: float = 1.0, lower: float = 1e-3, upper: float = 1e3,
                 fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.lower = self._hyper(lower)
        self.upper = self._hyper(upper)

    def loss(self, value):
        x = u.math.clip(u.math.relu(value) + _EPS, _pos(self.lower), _pos(self.upper))
        return self.weight * u.math.sum(u.math.log(x))

    def sample_init(self, shape):
        lo, hi = u.math.log(_pos(self.lower)), u.math.log(_pos(self.upper))
        return u.math.exp(lo + (hi - lo) * _rand(shape))

    def reset_value(self):
        return u.math.sqrt(_pos(self.lower) * _pos(self.upper))


class SpikeAndSlabReg(_Weighted):
    """A mixture of a narrow (``spike_scale``) and a wide (``slab_scale``) Gaussian with
    spike probability ``pi``: the negative log mixture density."""

    def __init__(self, weight: float = 1.0, spike_scale: float = 0.01, slab_scale: float = 1.0,
                 pi: float = 0.5, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.spike_scale = self._hyper(spike_scale)
        self.slab_scale = self._hyper(slab_scale)
        self.pi = self._hyper(pi)

    def loss(self, value):
        spike, slab = _pos(self.spike_scale), _pos(self.slab_scale)
        pi = u.math.clip(get_value(self.pi), _EPS, 1.0 - _EPS)
        density = (pi * u.math.exp(-0.5 * (value / spike) ** 2) / spike
                   + (1 - pi) * u.math.exp(-0.5 * (value / slab) ** 2) / slab)
        return self.weight * u.math.sum(-u.math.log(density + _EPS))

    def sample_init(self, shape):
        pi = u.math.clip(get_value(self.pi), _EPS, 1.0 - _EPS)
        is_spike = _rand(shape) < pi
        spike = _pos(self.spike_scale) * _randn(shape)
        slab = _pos(self.slab_scale) * _randn(shape)
        return u.math.where(is_spike, spike, slab)


class DirichletReg(_Weighted):
    """Dirichlet prior (concentration ``alpha``) on ``softmax(flattened value)``."""

    def __init__(self, weight: float = 1.0, alpha: float = 1.0, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.alpha = self._hyper(alpha)

    def loss(self, value):
        p = _softmax_flat(value)
        return self.weight * u.math.sum(-(_pos(self.alpha) - 1) * u.math.log(p + _EPS))

    def sample_init(self, shape):
        g = _random().gamma(_pos(self.alpha), scale=1.0, size=get_size(shape))
        return u.math.log(g / (u.math.sum(g) + _EPS) + _EPS)
