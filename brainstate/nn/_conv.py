"""Convolutions (1-3 spatial dims): plain, weight-standardised and transposed.

Inputs are channels-last by default, ``(batch, *spatial, channels)`` or one sample
``(*spatial, channels)``; ``channel_first=True`` takes ``(batch, channels, *spatial)``.
``in_size`` is the shape of one sample; ``out_size`` is computed from it.

Example::

    conv = brainstate.nn.Conv2d((28, 28, 1), 16, kernel_size=3)      # padding 'SAME'
    conv(jnp.ones((8, 28, 28, 1))).shape                           # (8, 28, 28, 16)
"""

from __future__ import annotations

import collections.abc
from typing import Sequence

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from .._state import ParamState
from . import init
from ._module import Module
from ._normalizations import weight_standardization

__all__ = ['Conv1d', 'Conv2d', 'Conv3d', 'ScaledWSConv1d', 'ScaledWSConv2d', 'ScaledWSConv3d',
           'ConvTranspose1d', 'ConvTranspose2d', 'ConvTranspose3d']


def to_dimension_numbers(num_spatial_dims: int, channels_last: bool,
                         transpose: bool) -> jax.lax.ConvDimensionNumbers:
    """The ``lax`` dimension numbers of an image layout and a ``(*kernel, in, out)`` kernel
    (``(*kernel, out, in)`` when ``transpose``)."""
    n = num_spatial_dims + 2
    spatial = tuple(range(1, n - 1)) if channels_last else tuple(range(2, n))
    image = (0, n - 1) + spatial if channels_last else (0, 1) + spatial
    kernel = ((n - 2, n - 1) if transpose else (n - 1, n - 2)) + tuple(range(n - 2))
    return jax.lax.ConvDimensionNumbers(lhs_spec=image, rhs_spec=kernel, out_spec=image)


def replicate(element, num_replicate: int, name: str) -> tuple:
    """A scalar (or a length-1 sequence) repeated ``num_replicate`` times, or a sequence of
    that length."""
    if isinstance(element, (str, bytes)) or not isinstance(element, collections.abc.Sequence):
        return (element,) * num_replicate
    if len(element) == 1:
        return tuple(element) * num_replicate
    if len(element) == num_replicate:
        return tuple(element)
    raise TypeError(f'{name} must be a scalar or sequence of length 1 or sequence of length '
                    f'{num_replicate}.')


def _bias_shape(num_spatial_dims: int, out_channels: int, channel_first: bool) -> tuple:
    if channel_first:
        return (1, out_channels) + (1,) * num_spatial_dims
    return (1,) * num_spatial_dims + (out_channels,)


def _conv_transpose_padding(k: int, s: int, padding: str) -> tuple:
    """The explicit padding of a transposed convolution with kernel ``k``, stride ``s``."""
    if padding == 'SAME':
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
    elif padding == 'VALID':
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    else:
        raise ValueError(f'Invalid padding mode: {padding}')
    return pad_a, pad_len - pad_a


class _BaseConv(Module):
    """What every convolution shares: sizes, channels, strides, dilations, padding, groups."""

    num_spatial_dims: int
    transpose = False

    def __init__(self, in_size: Sequence[int], out_channels: int, kernel_size, stride=1,
                 padding='SAME', lhs_dilation=1, rhs_dilation=1, groups: int = 1, w_mask=None,
                 channel_first: bool = False, name: str | None = None):
        super().__init__(name=name)
        self._setup(in_size, out_channels, kernel_size, stride, padding, lhs_dilation,
                    rhs_dilation, groups, w_mask, channel_first)

    def _setup(self, in_size, out_channels, kernel_size, stride, padding, lhs_dilation,
               rhs_dilation, groups, w_mask, channel_first):
        n = self.num_spatial_dims
        if n + 1 != len(in_size):
            raise ValueError(f'in_size must have {n + 1} entries ({n} spatial dimensions plus the '
                             f'channel dimension), but got {tuple(in_size)} with length '
                             f'{len(in_size)}.')
        self.in_size = tuple(in_size)
        self.channel_first = channel_first
        self.channels_last = not channel_first
        self.in_channels = in_size[0] if channel_first else in_size[-1]
        self.out_channels = out_channels
        self.stride = replicate(stride, n, 'stride')
        self.kernel_size = replicate(kernel_size, n, 'kernel_size')
        if lhs_dilation is not None:
            self.lhs_dilation = replicate(lhs_dilation, n, 'lhs_dilation')
        self.rhs_dilation = replicate(rhs_dilation, n, 'rhs_dilation')
        self.groups = groups
        self.dimension_numbers = to_dimension_numbers(n, self.channels_last, self.transpose)
        self.padding, self.padding_mode = self._parse_padding(padding)
        if out_channels % groups != 0:
            raise ValueError(f'"out_channels" ({out_channels}) should be divisible by groups '
                             f'({groups})')
        if self.in_channels % groups != 0:
            raise ValueError(f'"in_channels" ({self.in_channels}) should be divisible by groups '
                             f'({groups})')
        per_group = self.in_channels // groups
        self.kernel_shape = self.kernel_size + ((out_channels, per_group) if self.transpose
                                                else (per_group, out_channels))
        self.w_mask = init.param(w_mask, self.kernel_shape, allow_none=True)

    def _make_params(self, w_init, b_init, param_type, extra=None):
        self.w_initializer, self.b_initializer = w_init, b_init
        weight = init.param(w_init, self.kernel_shape, allow_none=False)
        params = {'weight': weight}
        if b_init is not None:
            params['bias'] = init.param(
                b_init, _bias_shape(self.num_spatial_dims, self.out_channels,
                                    self.channel_first), allow_none=True)
        params.update(extra(weight) if extra else {})
        self.weight = param_type(params)
        self.out_size = jax.eval_shape(
            self._conv_op, jax.ShapeDtypeStruct((128,) + self.in_size, weight.dtype),
            params).shape[1:]

    def _parse_padding(self, padding):
        n = self.num_spatial_dims
        if isinstance(padding, str):
            if padding not in ('SAME', 'VALID'):
                raise ValueError(f"String padding must be 'SAME' or 'VALID', got {padding!r}.")
            return padding, padding
        if isinstance(padding, int):
            return ((padding, padding),) * n, 'explicit'
        if isinstance(padding, (tuple, list)):
            if len(padding) == 0:
                raise ValueError(f'Padding sequence must not be empty; expected an int, a '
                                 f'Tuple[int, int], or a sequence of Tuple[int, int] with length '
                                 f'1 or {n}.')
            if isinstance(padding[0], int):
                if n == 1 and len(padding) == 2:
                    return (tuple(padding),), 'explicit'
                if len(padding) == n:
                    return tuple((p, p) for p in padding), 'explicit'
                raise ValueError(f'Integer padding tuple {padding} must have length {n} (one '
                                 f'value per spatial dim).')
            if isinstance(padding[0], (tuple, list)):
                if len(padding) == 1:
                    return tuple(padding) * n, 'explicit'
                if len(padding) != n:
                    raise ValueError(f'Padding {padding} must be a Tuple[int, int], or sequence '
                                     f'of Tuple[int, int] with length 1, or sequence of '
                                     f'Tuple[int, int] with length {n}.')
                return tuple(padding), 'explicit'
            raise ValueError(f'Padding {padding} must be a Tuple[int, int], or a sequence of '
                             f'Tuple[int, int]; got element of type {type(padding[0]).__name__}.')
        raise ValueError(f"Padding must be a string ('SAME'/'VALID'), an int, a Tuple[int, int], "
                         f"or a sequence of Tuple[int, int]; got {type(padding).__name__}.")

    def _check_input_dim(self, x):
        n = self.num_spatial_dims
        if x.ndim == n + 2:
            shape = x.shape[1:]
        elif x.ndim == n + 1:
            shape = x.shape
        else:
            raise ValueError(f'expected {n + 2}D (with batch) or {n + 1}D (without batch) input '
                             f'(got {x.ndim}D input, {x.shape})')
        if self.in_size != shape:
            raise ValueError(f'The expected input shape is {self.in_size}, while we got {shape}.')

    def update(self, x):
        self._check_input_dim(x)
        single = x.ndim == self.num_spatial_dims + 1
        if single:
            x = u.math.expand_dims(x, 0)
        y = self._conv_op(x, self.weight.value)
        return u.math.squeeze(y, axis=0) if single else y

    def _kernel(self, params):
        w = params['weight']
        return w * self.w_mask if self.w_mask is not None else w

    def _conv_op(self, x, params):
        """The convolution of a batch ``x`` with ``params`` (defined by each kind)."""
        raise NotImplementedError(f'{type(self).__name__} must define _conv_op.')

    def _cross_correlate(self, x, params):
        y = jax.lax.conv_general_dilated(
            x, self._kernel(params), window_strides=self.stride, padding=self.padding,
            lhs_dilation=self.lhs_dilation, rhs_dilation=self.rhs_dilation,
            feature_group_count=self.groups, dimension_numbers=self.dimension_numbers)
        return y + params['bias'] if 'bias' in params else y


class _Conv(_BaseConv):
    """A convolution ``y = conv(x, W) + b`` (cross-correlation, as in every DL library).

    Args:
      in_size: the shape of one sample (spatial dims and channels).
      out_channels: the number of output channels.
      kernel_size: an int or one per spatial dim.
      stride, lhs_dilation, rhs_dilation: ints or one per spatial dim.
      padding: ``'SAME'``, ``'VALID'``, an int, ``(low, high)`` pairs.
      groups: the number of feature groups.
      w_init, b_init: initializers (``b_init=None``: no bias).
      w_mask: a fixed array multiplied into the kernel.
    """

    def __init__(self, in_size: Sequence[int], out_channels: int, kernel_size, stride=1,
                 padding='SAME', lhs_dilation=1, rhs_dilation=1, groups: int = 1,
                 w_init=init.XavierNormal(), b_init=None, w_mask=None,
                 channel_first: bool = False, name: str | None = None,
                 param_type: type = ParamState):
        super().__init__(in_size, out_channels, kernel_size, stride, padding, lhs_dilation,
                         rhs_dilation, groups, w_mask, channel_first, name)
        self._make_params(w_init, b_init, param_type)

    _conv_op = _BaseConv._cross_correlate


class _ScaledWSConv(_BaseConv):
    """A convolution whose kernel is standardised (per output channel) before each use, times
    a learned ``gain`` when ``ws_gain``."""

    def __init__(self, in_size: Sequence[int], out_channels: int, kernel_size, stride=1,
                 padding='SAME', lhs_dilation=1, rhs_dilation=1, groups: int = 1,
                 ws_gain: bool = True, eps: float = 1e-4, w_init=init.XavierNormal(),
                 b_init=None, w_mask=None, channel_first: bool = False,
                 name: str | None = None, param_type: type = ParamState):
        super().__init__(in_size, out_channels, kernel_size, stride, padding, lhs_dilation,
                         rhs_dilation, groups, w_mask, channel_first, name)
        self.eps = eps
        gain = ((lambda w: {'gain': jnp.ones((1,) * len(self.kernel_size)
                                             + (1, self.out_channels), w.dtype)})
                if ws_gain else None)
        self._make_params(w_init, b_init, param_type, gain)

    def _kernel(self, params):
        w = weight_standardization(params['weight'], self.eps, params.get('gain'))
        return w * self.w_mask if self.w_mask is not None else w

    _conv_op = _BaseConv._cross_correlate


class _ConvTranspose(_BaseConv):
    """A transposed convolution (the gradient of a convolution with respect to its input):
    upsamples by ``stride``."""

    transpose = True

    def __init__(self, in_size: Sequence[int], out_channels: int, kernel_size, stride=1,
                 padding='SAME', rhs_dilation=1, groups: int = 1, w_init=init.XavierNormal(),
                 b_init=None, w_mask=None, channel_first: bool = False,
                 name: str | None = None, param_type: type = ParamState):
        Module.__init__(self, name=name)
        self._setup(in_size, out_channels, kernel_size, stride, padding, None, rhs_dilation,
                    groups, w_mask, channel_first)
        self._make_params(w_init, b_init, param_type)

    def _resolve_padding(self):
        if self.padding in ('SAME', 'VALID'):
            return tuple(_conv_transpose_padding((k - 1) * d + 1, s, self.padding)
                         for k, s, d in zip(self.kernel_size, self.stride, self.rhs_dilation))
        return self.padding

    def _conv_op(self, x, params):
        w = jnp.flip(self._kernel(params), axis=tuple(range(self.num_spatial_dims)))
        y = jax.lax.conv_general_dilated(
            x, w, window_strides=(1,) * self.num_spatial_dims, padding=self._resolve_padding(),
            lhs_dilation=self.stride, rhs_dilation=self.rhs_dilation,
            feature_group_count=self.groups, dimension_numbers=self.dimension_numbers)
        return y + params['bias'] if 'bias' in params else y


def _conv_class(name, base, n):
    return type(name, (base,), {'num_spatial_dims': n, '__module__': 'brainstate.nn',
                                '__doc__': f'{n}-d form of: ' + (base.__doc__ or '')})


Conv1d = _conv_class('Conv1d', _Conv, 1)
Conv2d = _conv_class('Conv2d', _Conv, 2)
Conv3d = _conv_class('Conv3d', _Conv, 3)
ScaledWSConv1d = _conv_class('ScaledWSConv1d', _ScaledWSConv, 1)
ScaledWSConv2d = _conv_class('ScaledWSConv2d', _ScaledWSConv, 2)
ScaledWSConv3d = _conv_class('ScaledWSConv3d', _ScaledWSConv, 3)
ConvTranspose1d = _conv_class('ConvTranspose1d', _ConvTranspose, 1)
ConvTranspose2d = _conv_class('ConvTranspose2d', _ConvTranspose, 2)
ConvTranspose3d = _conv_class('ConvTranspose3d', _ConvTranspose, 3)
