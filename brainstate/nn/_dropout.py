"""Dropout layers. They read ``brainstate.environ``'s ``fit`` flag: while fitting they drop
entries at random (from ``brainstate.random``); otherwise they return the input unchanged.

``prob`` is the probability to *keep* an entry (``1 - rate`` in other libraries).

Example::

    drop = brainstate.nn.Dropout(0.9)
    with brainstate.environ.context(fit=True):
        y = drop(x)        # about 10% zeros, the rest divided by 0.9
    with brainstate.environ.context(fit=False):
        y = drop(x)        # x
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import brainunit as u
import jax.numpy as jnp

from .._state import ShortTermState
from . import init
from ._module import ElementWiseBlock
from ._support import get_fit

__all__ = ['Dropout', 'Dropout1d', 'Dropout2d', 'Dropout3d', 'AlphaDropout',
           'FeatureAlphaDropout', 'DropoutFixed']

# SELU's negative saturation value: -scale * alpha.
_ALPHA = -1.7580993408473766


def _check_prob(prob):
    if not 0.0 <= prob <= 1.0:
        raise AssertionError(f'Dropout probability must be in the range [0, 1]. But got {prob}.')


def _bernoulli(prob, shape):
    from .. import random
    return random.bernoulli(prob, tuple(shape))


def _keep_scaled(x, keep, prob):
    dtype = u.math.get_dtype(x)
    return u.math.where(keep, u.math.asarray(x / prob, dtype=dtype),
                        u.math.asarray(0.0, dtype=dtype))


class Dropout(ElementWiseBlock):
    """Keep each entry with probability ``prob`` (dividing it by ``prob``), zero it otherwise,
    while fitting. ``broadcast_dims`` share one mask along those axes."""

    __module__ = 'brainstate.nn'

    def __init__(self, prob: float = 0.5, broadcast_dims: Sequence[int] = (),
                 name: str | None = None):
        super().__init__(name=name)
        _check_prob(prob)
        self.prob = prob
        self.broadcast_dims = broadcast_dims

    def __call__(self, x):
        if not (get_fit('Dropout') and self.prob < 1.0):
            return x
        shape = list(x.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        keep = u.math.broadcast_to(_bernoulli(self.prob, shape), x.shape)
        return _keep_scaled(x, keep, self.prob)

    update = __call__


class _DropoutNd(ElementWiseBlock):
    """Channel-wise dropout: one keep/drop decision per (sample, channel)."""

    __module__ = 'brainstate.nn'
    minimal_dim: int
    _note = ''

    def __init__(self, prob: float = 0.5, channel_axis: int = -1, name: str | None = None):
        super().__init__(name=name)
        _check_prob(prob)
        self.prob = prob
        self.channel_axis = channel_axis

    def __call__(self, x):
        ndim = u.math.ndim(x)
        if ndim not in (self.minimal_dim, self.minimal_dim + 1):
            raise RuntimeError(f'{type(self).__name__.lower()}: Expected {self.minimal_dim}D or '
                               f'{self.minimal_dim + 1}D input, but received a {ndim}D input. '
                               f'{self._note}')
        if ndim == self.minimal_dim:
            axis = self.channel_axis % x.ndim
            shape = [n if i == axis else 1 for i, n in enumerate(x.shape)]
        else:
            axis = self.channel_axis + 1 if self.channel_axis >= 0 else x.ndim + self.channel_axis
            if axis == 0:
                raise AssertionError(f'Channel axis must not be 0. But got {self.channel_axis}.')
            shape = [n if i in (axis, 0) else 1 for i, n in enumerate(x.shape)]
        if not (get_fit(type(self).__name__) and self.prob < 1.0):
            return x
        keep = jnp.broadcast_to(_bernoulli(self.prob, shape), x.shape)
        dtype = u.math.get_dtype(x)
        return jnp.where(keep, jnp.asarray(x / self.prob, dtype), jnp.asarray(0.0, dtype))

    update = __call__


class Dropout1d(_DropoutNd):
    """Channel-wise dropout of ``(length, channels)`` inputs (with an optional batch axis)."""

    minimal_dim = 2
    _note = ('Note that dropout1d exists to provide channel-wise dropout on inputs with 1 '
             'spatial dimension, a channel dimension, and an optional batch dimension (i.e. 2D '
             'or 3D inputs).')


class Dropout2d(_DropoutNd):
    """Channel-wise dropout of ``(height, width, channels)`` inputs (optional batch axis)."""

    minimal_dim = 3
    _note = ('Note that dropout2d exists to provide channel-wise dropout on inputs with 2 '
             'spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D '
             'or 4D inputs).')


class Dropout3d(_DropoutNd):
    """Channel-wise dropout of ``(depth, height, width, channels)`` inputs."""

    minimal_dim = 4
    _note = ('Note that dropout3d exists to provide channel-wise dropout on inputs with 3 '
             'spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 4D '
             'or 5D inputs).')


def _alpha_affine(prob):
    q = 1.0 - prob
    a = (prob * (1 + q * _ALPHA ** 2)) ** -0.5
    return a, -a * q * _ALPHA


class AlphaDropout(_DropoutNd):
    """Dropout for SELU networks: dropped entries take SELU's saturation value and the result
    is rescaled to keep the mean and variance."""

    def __init__(self, prob: float = 0.5, name: str | None = None):
        super().__init__(prob, name=name)
        self.alpha = _ALPHA
        self.a, self.b = _alpha_affine(prob)

    def __call__(self, x):
        if not (get_fit('AlphaDropout') and self.prob < 1.0):
            return x
        dtype = u.math.get_dtype(x)
        keep = _bernoulli(self.prob, x.shape)
        kept = u.math.where(keep, u.math.asarray(x, dtype=dtype),
                            u.math.asarray(self.alpha, dtype=dtype))
        return kept * self.a + self.b

    update = __call__


class FeatureAlphaDropout(ElementWiseBlock):
    """Alpha dropout with one decision per (sample, channel)."""

    __module__ = 'brainstate.nn'

    def __init__(self, prob: float = 0.5, channel_axis: int = -1, name: str | None = None):
        super().__init__(name=name)
        _check_prob(prob)
        self.prob, self.channel_axis = prob, channel_axis
        self.alpha = _ALPHA
        self.a, self.b = _alpha_affine(prob)

    def __call__(self, x):
        if not (get_fit('FeatureAlphaDropout') and self.prob < 1.0):
            return x
        dtype = u.math.get_dtype(x)
        axis = self.channel_axis % x.ndim
        shape = [1] * x.ndim
        shape[0] = x.shape[0]
        shape[axis] = x.shape[axis]
        keep = u.math.broadcast_to(_bernoulli(self.prob, shape), x.shape)
        kept = u.math.where(keep, u.math.asarray(x, dtype=dtype),
                            u.math.asarray(self.alpha, dtype=dtype))
        return kept * self.a + self.b

    update = __call__


class DropoutFixed(ElementWiseBlock):
    """Dropout with a mask drawn once by ``init_state(batch_size)`` and kept (a
    ``ShortTermState``) for every step of a sequence."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, prob: float = 0.5, name: str | None = None):
        super().__init__(name=name)
        _check_prob(prob)
        self.prob = prob
        self.in_size = in_size
        self.out_size = in_size

    def init_state(self, batch_size=None, **kwargs):
        if self.prob < 1.0:
            self.mask = ShortTermState(init.param(partial(_bernoulli, self.prob), self.in_size,
                                                  batch_size))

    def update(self, x):
        if not (get_fit('DropoutFixed') and self.prob < 1.0):
            return x
        if self.mask.value.shape != x.shape:
            raise ValueError(f'Input shape {x.shape} does not match the mask shape '
                             f'{self.mask.value.shape}. Please call `init_state()` method first.')
        dtype = u.math.get_dtype(x)
        return u.math.where(self.mask.value, u.math.asarray(x / self.prob, dtype=dtype),
                            u.math.asarray(0.0, dtype=dtype) * u.get_unit(x))
