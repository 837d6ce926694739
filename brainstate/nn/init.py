"""Parameter initializers: ``init(shape, dtype=None, rng=None) -> array``.

Each initializer draws from its own ``brainstate.random.RandomState`` when built with
``seed=``, else from the global one (``brainstate.random.DEFAULT``, so ``brainstate.random.seed``
makes a model reproducible). ``unit=`` gives the result a brainunit unit. A call may pass
``dtype=``, ``rng=`` (a RandomState) or ``key=`` (a JAX key) to override the defaults.

Example::

    w = brainstate.nn.init.KaimingNormal(seed=0)((784, 128))
    v = brainstate.nn.init.Uniform(-70., -50., unit=u.mV)((100,))   # a Quantity in mV
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from .._state import State
from ._support import dftype

__all__ = [
    'param', 'calculate_init_gain', 'Initializer', 'ZeroInit', 'Constant', 'Identity', 'Normal',
    'TruncatedNormal', 'Uniform', 'Gamma', 'Exponential', 'VarianceScaling', 'KaimingUniform',
    'KaimingNormal', 'XavierUniform', 'XavierNormal', 'LecunUniform', 'LecunNormal',
    'Orthogonal', 'DeltaOrthogonal',
]


def to_size(x):
    """A shape as a tuple (an int gives ``(x,)``; ``None`` stays ``None``)."""
    if isinstance(x, (tuple, list)):
        return tuple(x)
    if isinstance(x, (int, np.integer)):
        return (int(x),)
    if x is None:
        return None
    raise ValueError(f'Cannot make a size for {x}')


def _format_shape(shape) -> tuple:
    """A shape from an int, a tuple, or a one-element sequence holding a tuple."""
    if isinstance(shape, int):
        return (shape,)
    if len(shape) == 0:
        raise ValueError('Please provide shape.')
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _is_scalar(x) -> bool:
    """Whether ``x`` is a scalar (a Python number or a 0-d array or Quantity)."""
    return u.math.isscalar(x)


def are_broadcastable_shapes(shape1, shape2) -> bool:
    """Whether two shapes broadcast together (trailing axes equal or 1)."""
    for a, b in zip(shape1[::-1], shape2[::-1]):
        if a != b and 1 not in (a, b):
            return False
    return True


def _expand_params_to_match_sizes(params, sizes):
    """Add leading axes to ``params`` until it has as many axes as ``sizes``."""
    for _ in range(len(sizes) - params.ndim):
        params = u.math.expand_dims(params, axis=0)
    return params


def _rng(seed):
    from .. import random
    return random.default_rng(seed)


def _with_unit(value, unit):
    return u.maybe_decimal(u.Quantity(value, unit=unit))


class Initializer:
    """Base class of initializers: ``init(shape, **kwargs) -> array``."""

    __module__ = 'brainstate.nn'

    def __call__(self, shape, **kwargs):
        raise NotImplementedError

    def _draw_from(self, kwargs):
        """The RandomState a call draws from: ``rng=``, a ``key=``, or this initializer's."""
        if kwargs.get('key') is not None:
            from .. import random
            return random.RandomState(kwargs['key'])
        return kwargs.get('rng') or self.rng

    def __repr__(self):
        fields = ', '.join(f'{k}={v!r}' for k, v in vars(self).items()
                           if not k.startswith('_') and k != 'rng')
        return f'{type(self).__name__}({fields})'


class ZeroInit(Initializer):
    """All zeros (in ``unit``)."""

    def __init__(self, unit=u.UNITLESS):
        self.unit = unit

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        return u.maybe_decimal(u.math.zeros(to_size(shape), dtype=dtype, unit=self.unit))


class Constant(Initializer):
    """Every entry ``value`` (which may be a Quantity)."""

    def __init__(self, value=1.0):
        self.value = value

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        return u.maybe_decimal(u.math.full(to_size(shape), self.value, dtype=dtype))


class Identity(Initializer):
    """``value`` on the diagonal of a 2-D weight, 0 elsewhere."""

    def __init__(self, value=1.0, unit=u.UNITLESS):
        self.value, self.unit = value, unit

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        shape = to_size(shape)
        if len(shape) > 2:
            raise ValueError(f'Only support initialize 2D weights for {type(self).__name__}.')
        eye = jnp.eye(*shape, dtype=dtype) * jnp.asarray(self.value, dtype)
        return _with_unit(eye, self.unit)


class Normal(Initializer):
    """``mean + scale * N(0, 1)``."""

    def __init__(self, mean=0.0, scale=1.0, unit=u.UNITLESS, seed=None):
        self.mean, self.scale, self.unit = mean, scale, unit
        self.rng = _rng(seed)

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        w = self._draw_from(kwargs).normal(loc=self.mean, scale=self.scale,
                                           size=to_size(shape), dtype=dtype)
        return _with_unit(w, self.unit)


class TruncatedNormal(Initializer):
    """A normal ``N(loc, scale)`` truncated to ``[lower, upper]`` (in standard deviations)."""

    def __init__(self, loc=0.0, scale=1.0, unit=u.UNITLESS, lower=-2.0, upper=2.0, seed=None):
        if not scale > 0:
            raise AssertionError('`scale` must be positive.')
        self.loc, self.scale, self.lower, self.upper, self.unit = loc, scale, lower, upper, unit
        self.rng = _rng(seed)

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        w = self._draw_from(kwargs).truncated_normal(
            self.lower, self.upper, size=to_size(shape), loc=self.loc, scale=self.scale,
            dtype=dtype)
        return _with_unit(w, self.unit)


class Uniform(Initializer):
    """Uniform on ``[min_val, max_val)``."""

    def __init__(self, min_val=0.0, max_val=1.0, seed=None, unit=u.UNITLESS):
        self.min_val, self.max_val, self.unit = min_val, max_val, unit
        self.rng = _rng(seed)

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        w = self._draw_from(kwargs).uniform(self.min_val, self.max_val, size=to_size(shape),
                                            dtype=dtype)
        return _with_unit(w, self.unit)


class Gamma(Initializer):
    """Gamma-distributed entries with shape parameter ``shape`` and ``scale``."""

    def __init__(self, shape, unit=u.UNITLESS, scale=None, seed=None):
        self.shape, self.scale, self.unit = shape, scale, unit
        self.rng = _rng(seed)

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        scale = 1.0 if self.scale is None else self.scale
        w = self._draw_from(kwargs).gamma(self.shape, scale=scale, size=to_size(shape),
                                          dtype=dtype)
        return _with_unit(w, self.unit)


class Exponential(Initializer):
    """Exponentially distributed entries with ``scale`` (the mean)."""

    def __init__(self, scale=None, seed=None, unit=u.UNITLESS):
        self.scale, self.unit = scale, unit
        self.rng = _rng(seed)

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        scale = 1.0 if self.scale is None else self.scale
        w = self._draw_from(kwargs).exponential(scale=scale, size=to_size(shape), dtype=dtype)
        return _with_unit(w, self.unit)


def _compute_fans(shape, in_axis=-2, out_axis=-1):
    receptive = np.prod(shape) / shape[in_axis] / shape[out_axis]
    return shape[in_axis] * receptive, shape[out_axis] * receptive


class VarianceScaling(Initializer):
    """Entries of variance ``scale / fan``, ``fan`` from ``mode`` (``'fan_in'``, ``'fan_out'``,
    ``'fan_avg'``), drawn from ``distribution`` (``'truncated_normal'``, ``'normal'``,
    ``'uniform'``). The weight's input axis is ``in_axis`` and its output axis ``out_axis``;
    the other axes form the receptive field."""

    def __init__(self, scale, mode: str, distribution: str, in_axis: int = -2,
                 out_axis: int = -1, seed=None, unit=u.UNITLESS):
        if mode not in ('fan_in', 'fan_out', 'fan_avg'):
            raise AssertionError(f'mode must be fan_in, fan_out or fan_avg, got {mode!r}.')
        if distribution not in ('truncated_normal', 'normal', 'uniform'):
            raise AssertionError(f'distribution must be truncated_normal, normal or uniform, '
                                 f'got {distribution!r}.')
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.in_axis, self.out_axis, self.unit = in_axis, out_axis, unit
        self.rng = _rng(seed)

    def __call__(self, shape, **kwargs):
        shape = to_size(shape)
        dtype = kwargs.get('dtype') or dftype()
        rng = self._draw_from(kwargs)
        fan_in, fan_out = _compute_fans(shape, self.in_axis, self.out_axis)
        fan = {'fan_in': fan_in, 'fan_out': fan_out, 'fan_avg': (fan_in + fan_out) / 2}[self.mode]
        variance = jnp.asarray(self.scale / fan, dtype)
        if self.distribution == 'truncated_normal':
            # A standard normal truncated to [-2, 2] has standard deviation 0.87962566103423978.
            std = jnp.sqrt(variance) / 0.87962566103423978
            w = rng.truncated_normal(-2, 2, size=shape, dtype=dtype) * std.astype(dtype)
        elif self.distribution == 'normal':
            w = rng.normal(size=shape, dtype=dtype) * jnp.sqrt(variance).astype(dtype)
        else:
            w = rng.uniform(-1, 1, size=shape, dtype=dtype) * jnp.sqrt(3 * variance).astype(dtype)
        return _with_unit(w, self.unit)


def _scaling(name, scale, mode, distribution, doc):
    def __init__(self, scale=scale, mode=mode, distribution=distribution, in_axis=-2,
                 out_axis=-1, seed=None, unit=u.UNITLESS):
        VarianceScaling.__init__(self, scale, mode, distribution, in_axis=in_axis,
                                 out_axis=out_axis, seed=seed, unit=unit)

    return type(name, (VarianceScaling,), {'__init__': __init__, '__doc__': doc,
                                           '__module__': 'brainstate.nn'})


KaimingUniform = _scaling('KaimingUniform', 2.0, 'fan_in', 'uniform',
                          'He / Kaiming uniform: variance ``2 / fan_in``.')
KaimingNormal = _scaling('KaimingNormal', 2.0, 'fan_in', 'truncated_normal',
                         'He / Kaiming (truncated) normal: variance ``2 / fan_in``.')
XavierUniform = _scaling('XavierUniform', 1.0, 'fan_avg', 'uniform',
                         'Glorot / Xavier uniform: variance ``1 / fan_avg``.')
XavierNormal = _scaling('XavierNormal', 1.0, 'fan_avg', 'truncated_normal',
                        'Glorot / Xavier (truncated) normal: variance ``1 / fan_avg``.')
LecunUniform = _scaling('LecunUniform', 1.0, 'fan_in', 'uniform',
                        'LeCun uniform: variance ``1 / fan_in``.')
LecunNormal = _scaling('LecunNormal', 1.0, 'fan_in', 'truncated_normal',
                       'LeCun (truncated) normal: variance ``1 / fan_in``.')


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix along ``axis``, times ``scale``."""

    def __init__(self, scale=1.0, axis: int = -1, seed=None, unit=u.UNITLESS):
        self.scale, self.axis, self.unit = scale, axis, unit
        self.rng = _rng(seed)

    def __call__(self, shape, **kwargs):
        dtype = kwargs.get('dtype') or dftype()
        shape = to_size(shape)
        n_rows = shape[self.axis]
        n_cols = int(np.prod(shape)) // n_rows
        matrix = (n_rows, n_cols) if n_rows > n_cols else (n_cols, n_rows)
        q, r = jnp.linalg.qr(self._draw_from(kwargs).normal(size=matrix, dtype=dtype))
        q = q * jnp.sign(jnp.diag(r))
        if n_rows < n_cols:
            q = q.T
        q = jnp.reshape(q, (n_rows,) + tuple(np.delete(np.array(shape), self.axis)))
        q = jnp.moveaxis(q, 0, self.axis)
        return _with_unit(jnp.asarray(self.scale, dtype) * q, self.unit)


class DeltaOrthogonal(Initializer):
    """For convolution kernels (3-5 d): an orthogonal matrix at the kernel's centre, 0
    elsewhere."""

    def __init__(self, scale=1.0, axis: int = -1, seed=None, unit=u.UNITLESS):
        self.scale, self.axis, self.unit = scale, axis, unit
        self.orthogonal = Orthogonal(scale=scale, axis=axis, seed=seed)

    def __call__(self, shape, **kwargs):
        shape = to_size(shape)
        dtype = kwargs.get('dtype') or dftype()
        if len(shape) not in (3, 4, 5):
            raise ValueError('Delta orthogonal initializer requires a 3D, 4D or 5D shape.')
        if shape[-1] < shape[-2]:
            raise ValueError('`fan_in` must be less or equal than `fan_out`. ')
        ortho = u.get_mantissa(self.orthogonal(shape[-2:], **kwargs))
        centre = tuple((k - 1) // 2 for k in shape[:-2])
        w = jnp.zeros(shape, dtype).at[centre].set(ortho)
        return _with_unit(w, self.unit)


def calculate_init_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity (as PyTorch's ``calculate_gain``)."""
    if nonlinearity in ('linear', 'conv1d', 'conv2d', 'conv3d', 'conv_transpose1d',
                        'conv_transpose2d', 'conv_transpose3d', 'sigmoid'):
        return 1
    if nonlinearity == 'tanh':
        return 5.0 / 3
    if nonlinearity == 'relu':
        return math.sqrt(2.0)
    if nonlinearity == 'leaky_relu':
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f'negative_slope {param} not a valid number')
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == 'selu':
        return 3.0 / 4
    raise ValueError(f'Unsupported nonlinearity {nonlinearity}')


def param(parameter: Callable | Any, sizes, batch_size: int | None = None,
          allow_none: bool = True, allow_scalar: bool = True):
    """Make an initial value of shape ``sizes`` (with a leading ``batch_size`` axis if given).

    ``parameter`` is an initializer (called with the shape), an array / Quantity / State
    (checked to broadcast to ``sizes``, repeated over the batch), a scalar (returned as is when
    ``allow_scalar``), or ``None`` (returned when ``allow_none``).
    """
    if parameter is None:
        if allow_none:
            return None
        raise ValueError('Expect a parameter with type of float, ArrayType, Initializer, or '
                         'Callable function, but we got None. ')
    if allow_scalar and u.math.isscalar(parameter):
        return parameter
    sizes = tuple(to_size(sizes))
    if callable(parameter) and not isinstance(parameter, State):
        return parameter((batch_size,) + sizes if batch_size is not None else sizes)
    if not isinstance(parameter, (np.ndarray, jax.Array, u.Quantity, State)):
        raise ValueError(f'Unknown parameter type: {type(parameter)}')
    value = parameter.value if isinstance(parameter, State) else parameter
    if not are_broadcastable_shapes(value.shape, sizes):
        raise ValueError(f'The shape of the parameter {value.shape} does not match with the '
                         f'given size {sizes}')
    if batch_size is not None:
        if value.ndim <= len(sizes):
            value = _expand_params_to_match_sizes(value, sizes)
            value = u.math.repeat(u.math.expand_dims(value, axis=0), batch_size, axis=0)
        elif value.shape[0] != batch_size:
            raise ValueError(f'The batch size of the parameter {value.shape[0]} does not match '
                             f'with the given batch size {batch_size}')
    return type(parameter)(value) if isinstance(parameter, State) else value
