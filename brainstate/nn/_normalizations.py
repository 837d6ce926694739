"""Normalisation layers: batch (0-3 spatial dims), layer, RMS and group normalisation, and
weight standardisation.

Batch normalisation follows ``brainstate.environ``'s ``fit`` flag: while fitting it normalises
by the batch's statistics and updates the running averages (``BatchState``); otherwise it
normalises by the running averages.
"""

from __future__ import annotations

from typing import Any, Sequence

import brainunit as u
import jax
import jax.numpy as jnp

from .._state import BatchState, ParamState
from . import init
from ._module import Module
from ._support import dftype, get_fit

__all__ = ['weight_standardization', 'BatchNorm0d', 'BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d',
           'LayerNorm', 'RMSNorm', 'GroupNorm']


def weight_standardization(w, eps: float = 1e-4, gain=None, out_axis: int = -1):
    """Standardise a weight over every axis but ``out_axis``:
    ``(w - mean) / sqrt(max(var * fan_in, eps))``, times ``gain`` when given."""
    w = u.maybe_custom_array(w)
    out_axis = out_axis % w.ndim
    axes = [i for i in range(w.ndim) if i != out_axis]
    fan_in = 1
    for i in axes:
        fan_in *= w.shape[i]
    mean = u.math.mean(w, axis=axes, keepdims=True)
    var = u.math.var(w, axis=axes, keepdims=True)
    temp = u.math.maximum(var * fan_in, eps)
    if isinstance(temp, u.Quantity):
        unit, temp = temp.unit, temp.mantissa
        scale = jax.lax.rsqrt(temp)
        if not unit.is_unitless:
            scale = u.Quantity(scale, unit=1 / unit ** 0.5)
    else:
        scale = jax.lax.rsqrt(temp)
    if gain is not None:
        scale = gain * scale
    return w * scale - mean * scale


def canonicalize_dtype(*args, dtype=None, inexact: bool = True):
    """The dtype of a computation over ``args`` (promoted to a float when ``inexact``)."""
    if dtype is None:
        dtype = jnp.result_type(*[jnp.asarray(x) for x in args if x is not None])
        if inexact and not jnp.issubdtype(dtype, jnp.inexact):
            dtype = jnp.promote_types(jnp.float32, dtype)
    if inexact and not jnp.issubdtype(dtype, jnp.inexact):
        raise ValueError(f'Dtype must be inexact: {dtype}')
    return dtype


def _canonicalize_axes(ndim: int, feature_axes: Sequence[int]) -> tuple:
    axes = []
    for axis in feature_axes:
        if axis < 0:
            axis += ndim
        if axis < 0 or axis >= ndim:
            raise ValueError(f'Invalid axis {axis} for {ndim}D input')
        axes.append(axis)
    return tuple(axes)


def _abs_sq(x):
    if jnp.iscomplexobj(x):
        return jnp.square(jnp.real(x)) + jnp.square(jnp.imag(x))
    return jnp.square(x)


class NormalizationParamState(ParamState):
    """The ``{'scale': ..., 'bias': ...}`` of a normalisation layer."""

    def execute(self, x):
        params = self.value
        if 'scale' in params:
            x = x * params['scale']
        if 'bias' in params:
            x = x + params['bias']
        return x


def _compute_stats(x, axes, dtype, axis_name=None, axis_index_groups=None, use_mean=True,
                   use_fast_variance=True, mask=None):
    """Mean and variance of ``x`` over ``axes`` (``mean`` is zeros when not ``use_mean``),
    averaged over the named mapped axis ``axis_name`` too when given."""
    dtype = jnp.promote_types(jnp.result_type(x) if dtype is None else dtype, jnp.float32)
    x = jnp.asarray(x, dtype)
    axes = _canonicalize_axes(x.ndim, axes)

    def mean(*xs):
        mus = [v.mean(axes, where=mask) for v in xs]
        if axis_name is not None:
            mus = [jax.lax.pmean(m, axis_name, axis_index_groups=axis_index_groups) for m in mus]
        return mus

    if not use_mean:
        (var,) = mean(_abs_sq(x))
        return jnp.zeros_like(var), var
    if use_fast_variance:
        mu, mu2 = mean(x, _abs_sq(x))
        return mu, jnp.maximum(0.0, mu2 - _abs_sq(mu))
    (mu,) = mean(x)
    (var,) = mean(_abs_sq(x - jnp.expand_dims(mu, axes)))
    return mu, var


def _normalize(x, mean, var, weights, reduction_axes, feature_axes, dtype, epsilon):
    if mean is None:
        return jnp.asarray(x, dtype)
    reduction_axes = _canonicalize_axes(x.ndim, reduction_axes)
    stats_shape = [1 if i in reduction_axes else n for i, n in enumerate(x.shape)]
    y = (x - mean.reshape(stats_shape)) * jax.lax.rsqrt(var.reshape(stats_shape) + epsilon)
    if weights is not None:
        y = weights.execute(y)
        dtype = canonicalize_dtype(x, *jax.tree.leaves(weights.value), dtype=dtype)
    return jnp.asarray(y, dtype)


def _feature_shape(in_size, feature_axes) -> tuple:
    return tuple(n if i in feature_axes else 1 for i, n in enumerate(in_size))


class _BatchNorm(Module):
    """Batch normalisation over every axis but the feature axes (see the 0d-3d classes)."""

    __module__ = 'brainstate.nn'
    num_spatial_dims: int

    def __init__(self, in_size, feature_axis=-1, *, track_running_stats: bool = True,
                 epsilon: float = 1e-5, momentum: float = 0.99, affine: bool = True,
                 bias_initializer=init.Constant(0.0), scale_initializer=init.Constant(1.0),
                 axis_name=None, axis_index_groups=None, use_fast_variance: bool = True,
                 name: str | None = None, dtype: Any = None,
                 param_type: type = NormalizationParamState, mean_type: type = BatchState):
        super().__init__(name=name)
        self.in_size = in_size
        self.out_size = in_size
        self.affine = affine
        self.bias_initializer, self.scale_initializer = bias_initializer, scale_initializer
        self.dtype = dtype or dftype()
        self.track_running_stats = track_running_stats
        self.momentum = jnp.asarray(momentum, self.dtype)
        self.epsilon = jnp.asarray(epsilon, self.dtype)
        self.use_fast_variance = use_fast_variance
        feature_axis = (feature_axis,) if isinstance(feature_axis, int) else feature_axis
        self.feature_axes = _canonicalize_axes(len(self.in_size), feature_axis)
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        shape = _feature_shape(self.in_size, self.feature_axes)
        if track_running_stats:
            self.running_mean = mean_type(jnp.zeros(shape, self.dtype))
            self.running_var = mean_type(jnp.ones(shape, self.dtype))
        else:
            self.running_mean = self.running_var = None
        if affine:
            if not track_running_stats:
                raise AssertionError('Affine parameters are not needed when track_running_stats '
                                     'is False.')
            self.weight = param_type({'bias': init.param(bias_initializer, shape),
                                      'scale': init.param(scale_initializer, shape)})
        else:
            self.weight = None

    def update(self, x, mask=None):
        n = self.num_spatial_dims
        if x.ndim == n + 2:
            sample_shape, batched = x.shape[1:], True
        elif x.ndim == n + 1:
            sample_shape, batched = x.shape, False
        else:
            raise ValueError(f'expected {n + 2}D (with batch) or {n + 1}D (without batch) input '
                             f'(got {x.ndim}D input, {x.shape})')
        if self.in_size != sample_shape:
            raise ValueError(f'The expected input shape is {self.in_size}, while we got '
                             f'{sample_shape}.')
        offset = 1 if batched else 0
        reduction_axes = tuple(i for i in range(x.ndim) if i - offset not in self.feature_axes)
        fit = get_fit(type(self).__name__)
        if not self.track_running_stats:
            mean = var = None
        elif fit:
            mean, var = _compute_stats(x, reduction_axes, self.dtype, self.axis_name,
                                       self.axis_index_groups,
                                       use_fast_variance=self.use_fast_variance, mask=mask)
            m = self.momentum
            self.running_mean.value = m * self.running_mean.value + (1 - m) * mean
            self.running_var.value = m * self.running_var.value + (1 - m) * var
        else:
            mean, var = self.running_mean.value, self.running_var.value
        return _normalize(x, mean, var, self.weight, reduction_axes, self.feature_axes,
                          self.dtype, self.epsilon)


def _batch_norm(name, n, doc):
    return type(name, (_BatchNorm,), {'num_spatial_dims': n, '__doc__': doc,
                                      '__module__': 'brainstate.nn'})


_BN_DOC = """Batch normalisation of {what}.

    Args:
      in_size: the shape of one sample, {shape} (features last by default).
      feature_axis: the axis (of a sample) holding the features.
      track_running_stats: keep running averages of the mean and variance (``BatchState``)
        used when not fitting.
      epsilon: added to the variance.
      momentum: the running averages' decay: ``new = momentum * old + (1 - momentum) * batch``.
      affine: learn a ``scale`` and ``bias`` per feature (a ParamState ``weight``).

    Reads ``brainstate.environ``'s ``fit`` flag: set it with ``environ.context(fit=True)``.

    Example::

        bn = brainstate.nn.{name}({example})
        with brainstate.environ.context(fit=True):
            y = bn(x)      # batch statistics; running averages updated
    """
BatchNorm0d = _batch_norm('BatchNorm0d', 0, _BN_DOC.format(
    what='feature vectors', shape='``(features,)``', name='BatchNorm0d', example='10'))
BatchNorm1d = _batch_norm('BatchNorm1d', 1, _BN_DOC.format(
    what='sequences', shape='``(length, channels)``', name='BatchNorm1d', example='(100, 3)'))
BatchNorm2d = _batch_norm('BatchNorm2d', 2, _BN_DOC.format(
    what='images', shape='``(height, width, channels)``', name='BatchNorm2d',
    example='(28, 28, 16)'))
BatchNorm3d = _batch_norm('BatchNorm3d', 3, _BN_DOC.format(
    what='volumes', shape='``(depth, height, width, channels)``', name='BatchNorm3d',
    example='(8, 8, 8, 4)'))


def _axes(value):
    return (value,) if isinstance(value, int) else value


class LayerNorm(Module):
    """Normalise each sample over ``reduction_axes`` (the last by default), then scale and
    shift per feature (``use_scale``/``use_bias``)."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, reduction_axes=-1, feature_axes=-1, *, epsilon: float = 1e-6,
                 use_bias: bool = True, use_scale: bool = True, bias_init=init.ZeroInit(),
                 scale_init=init.Constant(1.0), axis_name=None, axis_index_groups=None,
                 use_fast_variance: bool = True, dtype=None,
                 param_type: type = NormalizationParamState):
        super().__init__()
        self.in_size = in_size
        self.out_size = in_size
        self.feature_axes = _canonicalize_axes(len(self.in_size), _axes(feature_axes))
        self.reduction_axes = _axes(reduction_axes)
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        shape = _feature_shape(self.in_size, self.feature_axes)
        weights = {}
        if use_scale:
            weights['scale'] = init.param(scale_init, shape)
        if use_bias:
            weights['bias'] = init.param(bias_init, shape)
        self.weight = param_type(weights) if weights else None
        self.epsilon = epsilon
        self.dtype = dtype or dftype()
        self.use_bias, self.use_scale = use_bias, use_scale
        self.bias_init, self.scale_init = bias_init, scale_init
        self.use_fast_variance = use_fast_variance

    def update(self, x, *, mask=None):
        mean, var = _compute_stats(x, self.reduction_axes, self.dtype, self.axis_name,
                                   self.axis_index_groups,
                                   use_fast_variance=self.use_fast_variance, mask=mask)
        return _normalize(x, mean, var, self.weight, self.reduction_axes, self.feature_axes,
                          self.dtype, self.epsilon)


class RMSNorm(Module):
    """Divide each sample by its root mean square over ``reduction_axes``, then scale per
    feature (``use_scale``)."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, *, epsilon: float = 1e-6, dtype=None, use_scale: bool = True,
                 scale_init=init.Constant(1.0), reduction_axes=-1, feature_axes=-1,
                 axis_name=None, axis_index_groups=None, use_fast_variance: bool = True,
                 param_type: type = NormalizationParamState):
        super().__init__()
        self.in_size = in_size
        self.out_size = in_size
        self.feature_axes = _canonicalize_axes(len(self.in_size), _axes(feature_axes))
        self.reduction_axes = _axes(reduction_axes)
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        shape = _feature_shape(self.in_size, self.feature_axes)
        self.scale = param_type({'scale': init.param(scale_init, shape)}) if use_scale else None
        self.epsilon = epsilon
        self.dtype = dtype or dftype()
        self.use_scale, self.scale_init = use_scale, scale_init
        self.use_fast_variance = use_fast_variance

    def update(self, x, *, mask=None):
        mean, var = _compute_stats(x, self.reduction_axes, self.dtype, self.axis_name,
                                   self.axis_index_groups, use_mean=False,
                                   use_fast_variance=self.use_fast_variance, mask=mask)
        return _normalize(x, mean, var, self.scale, self.reduction_axes, self.feature_axes,
                          self.dtype, self.epsilon)


class GroupNorm(Module):
    """Split the features (last axis) into groups (``num_groups`` of them, or groups of
    ``group_size``) and normalise each group over the sample's other axes."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, feature_axis=-1, num_groups: int | None = 32,
                 group_size: int | None = None, *, epsilon: float = 1e-6, dtype=None,
                 use_bias: bool = True, use_scale: bool = True, bias_init=init.ZeroInit(),
                 scale_init=init.Constant(1.0), reduction_axes=None, axis_name=None,
                 axis_index_groups=None, use_fast_variance: bool = True,
                 param_type: type = NormalizationParamState):
        super().__init__()
        self.in_size = in_size
        self.out_size = in_size
        self.feature_axes = _canonicalize_axes(len(self.in_size), _axes(feature_axis))
        self.reduction_axes = _axes(reduction_axes) if reduction_axes is not None else None
        self.axis_name, self.axis_index_groups = axis_name, axis_index_groups
        if (num_groups is None) == (group_size is None):
            raise ValueError('Either `num_groups` or `group_size` should be specified. If '
                             '`group_size` is to be specified, pass `num_groups=None` as '
                             'argument to override the default `num_groups` value of 32.')
        shape = _feature_shape(self.in_size, self.feature_axes)
        features = [n for i, n in enumerate(self.in_size) if i in self.feature_axes]
        if len(features) != 1:
            raise AssertionError('GroupNorm only supports 1D feature axis.')
        n = features[0]
        if group_size is not None:
            if n % group_size != 0:
                raise ValueError(f'Number of features ({n}) is not multiple of the group size '
                                 f'({group_size}).')
            self.num_groups, self.group_size = n // group_size, group_size
        else:
            if not isinstance(num_groups, int) or num_groups <= 0 or n % num_groups != 0:
                raise ValueError(f'Number of groups ({num_groups}) does not divide the number '
                                 f'of channels ({n}).')
            self.num_groups, self.group_size = num_groups, n // num_groups
        weights = {}
        if use_scale:
            weights['scale'] = init.param(scale_init, shape)
        if use_bias:
            weights['bias'] = init.param(bias_init, shape)
        self.weight = param_type(weights) if weights else None
        self.epsilon = epsilon
        self.dtype = dtype
        self.use_bias, self.use_scale = use_bias, use_scale
        self.bias_init, self.scale_init = bias_init, scale_init
        self.use_fast_variance = use_fast_variance

    def update(self, x, *, mask=None):
        axes = self.reduction_axes if self.reduction_axes is not None else (
            list(range(1, x.ndim - 1)) + [-1])
        axes = _canonicalize_axes(x.ndim, axes)
        grouped = x.reshape(x.shape[:-1] + (self.num_groups, self.group_size))
        if mask is not None:
            mask = mask.reshape(mask.shape[:-1] + (self.num_groups, self.group_size))
        mean, var = _compute_stats(grouped, list(axes[:-1]) + [-1], self.dtype, self.axis_name,
                                   self.axis_index_groups,
                                   use_fast_variance=self.use_fast_variance, mask=mask)
        mean = jnp.repeat(mean, self.group_size, axis=1)
        var = jnp.repeat(var, self.group_size, axis=1)
        return _normalize(x, mean, var, self.weight, axes[:-1], self.feature_axes, self.dtype,
                          self.epsilon)
