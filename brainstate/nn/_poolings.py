"""Flatten/Unflatten and pooling layers (max, average, LP, max-unpooling, adaptive; 1-3 d).

Inputs are channels-last by default: a 2-d pooling takes ``(..., height, width, channels)``;
``channel_axis=None`` pools the last axes of an input without channels. Leading axes (a batch)
are kept. Giving ``in_size`` (the shape of one sample) sets ``out_size``, for ``Sequential``.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from ._module import Module
from ._support import dftype

__all__ = ['Flatten', 'Unflatten', 'AvgPool1d', 'AvgPool2d', 'AvgPool3d', 'MaxPool1d',
           'MaxPool2d', 'MaxPool3d', 'MaxUnpool1d', 'MaxUnpool2d', 'MaxUnpool3d', 'LPPool1d',
           'LPPool2d', 'LPPool3d', 'AdaptiveAvgPool1d', 'AdaptiveAvgPool2d', 'AdaptiveAvgPool3d',
           'AdaptiveMaxPool1d', 'AdaptiveMaxPool2d', 'AdaptiveMaxPool3d']


def _out_shape(fun, in_size):
    """The shape ``fun`` gives a sample of shape ``in_size`` (in a batch of 128, dropped)."""
    return jax.eval_shape(fun, jax.ShapeDtypeStruct((128,) + tuple(in_size), dftype())).shape[1:]


class Flatten(Module):
    """Flatten axes ``start_axis`` to ``end_axis`` into one (of a sample when ``in_size`` is
    given: leading batch axes are then kept)."""

    __module__ = 'brainstate.nn'

    def __init__(self, start_axis: int = 0, end_axis: int = -1, in_size=None):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis
        if in_size is not None:
            self.in_size = tuple(in_size)
            self.out_size = jax.eval_shape(
                functools.partial(u.math.flatten, start_axis=start_axis, end_axis=end_axis),
                jax.ShapeDtypeStruct(self.in_size, dftype())).shape

    def update(self, x):
        if self.in_size is None:
            start = self.start_axis % x.ndim if self.start_axis < 0 else self.start_axis
            end = self.end_axis + x.ndim if self.end_axis < 0 else self.end_axis
        else:
            if x.ndim < len(self.in_size):
                raise AssertionError('Input tensor has fewer dimensions than the expected shape.')
            extra = x.ndim - len(self.in_size)
            if self.in_size != x.shape[extra:]:
                raise ValueError(f'Input tensor has shape {x.shape}, but expected shape '
                                 f'{self.in_size}.')
            start = self.start_axis + extra if self.start_axis >= 0 else x.ndim + self.start_axis
            end = self.end_axis + extra if self.end_axis >= 0 else x.ndim + self.end_axis
        return u.math.flatten(x, start, end)


class Unflatten(Module):
    """Split axis ``axis`` into ``sizes``."""

    __module__ = 'brainstate.nn'

    def __init__(self, axis: int, sizes, name: str | None = None, in_size=None):
        super().__init__(name=name)
        if not isinstance(sizes, (tuple, list)):
            raise TypeError(f'unflattened sizes must be tuple or list, but found type '
                            f'{type(sizes).__name__}')
        for i, n in enumerate(sizes):
            if not isinstance(n, int):
                raise TypeError(f'unflattened sizes must be tuple of ints, but found element of '
                                f'type {type(n).__name__} at pos {i}')
        self.axis, self.sizes = axis, sizes
        if in_size is not None:
            self.in_size = tuple(in_size)
            self.out_size = jax.eval_shape(
                functools.partial(u.math.unflatten, axis=axis, sizes=sizes),
                jax.ShapeDtypeStruct(self.in_size, dftype())).shape

    def update(self, x):
        return u.math.unflatten(x, self.axis, self.sizes)


def _ints(value, n: int, what: str) -> tuple:
    """``value`` (an int or ``n`` ints) as a tuple of ``n`` ints."""
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, Sequence):
        if not isinstance(value, (tuple, list)):
            raise TypeError(f'{what} should be a tuple, but got {type(value)}')
        if not all(isinstance(v, int) for v in value):
            raise TypeError(f'{what} should be a tuple of ints. {value}')
        if len(value) != n:
            raise ValueError(f'{what} should a tuple with {n} ints, but got {len(value)}')
        return tuple(value)
    raise TypeError(f'{what} should be a int or a tuple with {n} ints.')


def _padding(padding, n: int):
    """``'SAME'``/``'VALID'``, or ``n`` ``(low, high)`` pairs."""
    if isinstance(padding, str):
        if padding not in ('SAME', 'VALID'):
            raise ValueError(f"Invalid padding '{padding}', must be 'SAME' or 'VALID'.")
        return padding
    if isinstance(padding, int):
        return [(padding, padding)] * n
    if isinstance(padding, (list, tuple)):
        if isinstance(padding[0], int):
            if len(padding) != n:
                raise ValueError(f'If padding is a sequence of ints, it should has the length of '
                                 f'{n}.')
            return [(p, p) for p in padding]
        if not all(isinstance(p, (tuple, list)) for p in padding):
            raise ValueError(f'padding should be sequence of Tuple[int, int]. {padding}')
        if not all(len(p) == 2 for p in padding):
            raise ValueError(f'Each entry in padding must be tuple of 2 ints. {padding} ')
        if len(padding) == 1:
            padding = tuple(padding) * n
        if len(padding) != n:
            raise ValueError(f'padding should has the length of {n}. {padding}')
        return padding
    raise ValueError(f'padding should be a str, int, or sequence, but got {type(padding)}')


def _check_channel_axis(channel_axis):
    if not (channel_axis is None or isinstance(channel_axis, int)):
        raise TypeError(f'channel_axis should be an int, but got {channel_axis}')
    return channel_axis


class _Window(Module):
    """What the windowed poolings share: kernel, stride, padding and the channel axis."""

    default_stride_is_kernel = True

    def _setup(self, pool_dim, kernel_size, stride, padding, channel_axis):
        self.pool_dim = pool_dim
        self.kernel_size = _ints(kernel_size, pool_dim, 'kernel_size')
        self.stride = _ints(self.kernel_size if stride is None else stride, pool_dim, 'stride')
        self.padding = _padding(padding, pool_dim)
        self.channel_axis = _check_channel_axis(channel_axis)

    def _set_in_size(self, in_size):
        if in_size is not None:
            self.in_size = tuple(in_size)
            self.out_size = _out_shape(self.update, self.in_size)

    def _check_ndim(self, x):
        need = self.pool_dim + (0 if self.channel_axis is None else 1)
        if x.ndim < need:
            raise ValueError(f'Expected input with >= {need} dimensions, but got {x.ndim}.')

    def _infer_shape(self, ndim, values, element):
        """Spread per-spatial-axis ``values`` over all ``ndim`` axes (``element`` elsewhere)."""
        ca = self.channel_axis
        if ca is not None and not -ndim <= ca < ndim:
            raise ValueError(f'Invalid channel axis {ca} for input with {ndim} dimensions')
        axes = list(range(ndim))
        if ca is not None:
            axes.pop(ca % ndim)
        out = [element] * ndim
        for value, axis in zip(values, axes[-self.pool_dim:]):
            out[axis] = value
        return out

    def _window(self, x):
        window = tuple(self._infer_shape(x.ndim, self.kernel_size, 1))
        strides = tuple(self._infer_shape(x.ndim, self.stride, 1))
        if isinstance(self.padding, str):
            pads = tuple(jax.lax.padtype_to_pads(x.shape, window, strides, self.padding))
        else:
            pads = tuple(self._infer_shape(x.ndim, self.padding, (0, 0)))
        return window, strides, pads


class _MaxPool(_Window):
    def __init__(self, pool_dim, kernel_size, stride=None, padding='VALID', channel_axis=-1,
                 return_indices: bool = False, name=None, in_size=None):
        super().__init__(name=name)
        self.init_value = -jnp.inf
        self.computation = jax.lax.max
        self.return_indices = return_indices
        self._setup(pool_dim, kernel_size, stride, padding, channel_axis)
        self._set_in_size(in_size)

    def update(self, x):
        self._check_ndim(x)
        window, strides, pads = self._window(x)
        if not self.return_indices:
            return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, pads)
        # Carry (value, flat index) pairs; ties keep the smallest index.
        n = x.size
        index = jnp.arange(n, dtype=jnp.int32).reshape(x.shape)

        def best(a, b):
            take_b = (b[0] > a[0]) | ((b[0] == a[0]) & (b[1] < a[1]))
            return jnp.where(take_b, b[0], a[0]), jnp.where(take_b, b[1], a[1])

        values, indices = jax.lax.reduce_window(
            (x, index), (jnp.asarray(-jnp.inf, x.dtype), jnp.array(n, jnp.int32)), best,
            window, strides, pads)
        return values, jnp.where(indices == n, 0, indices).astype(jnp.int32)


class _AvgPool(_Window):
    def __init__(self, pool_dim, kernel_size, stride=1, padding='VALID', channel_axis=-1,
                 name=None, in_size=None):
        super().__init__(name=name)
        self.init_value = 0.0
        self.computation = jax.lax.add
        self._setup(pool_dim, kernel_size, stride, padding, channel_axis)
        self._set_in_size(in_size)

    def update(self, x):
        self._check_ndim(x)
        window = self._infer_shape(x.ndim, self.kernel_size, 1)
        strides = self._infer_shape(x.ndim, self.stride, 1)
        pads = (self.padding if isinstance(self.padding, str)
                else self._infer_shape(x.ndim, self.padding, (0, 0)))
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
        if pads == 'VALID':
            return total / np.prod(window)
        # With padding, divide by the number of real (unpadded) entries in each window.
        counts = jax.lax.reduce_window(jnp.ones_like(x), 0.0, jax.lax.add, window, strides, pads)
        return total / jnp.maximum(counts, 1)


class _LPPool(_Window):
    def __init__(self, norm_type: float, pool_dim, kernel_size, stride=None, padding='VALID',
                 channel_axis=-1, name=None, in_size=None):
        super().__init__(name=name)
        if not norm_type > 0 or not np.isfinite(norm_type):
            raise ValueError(f'norm_type must be a positive finite number, got {norm_type}')
        self.norm_type = norm_type
        self._setup(pool_dim, kernel_size, stride, padding, channel_axis)
        self._set_in_size(in_size)

    def update(self, x):
        """``(mean over the window of |x|**p) ** (1/p)``."""
        self._check_ndim(x)
        window = self._infer_shape(x.ndim, self.kernel_size, 1)
        strides = self._infer_shape(x.ndim, self.stride, 1)
        pads = (self.padding if isinstance(self.padding, str)
                else self._infer_shape(x.ndim, self.padding, (0, 0)))
        total = jax.lax.reduce_window(jnp.abs(x) ** self.norm_type, 0.0, jax.lax.add, window,
                                      strides, pads)
        inv_p = 1.0 / self.norm_type
        scale = float(np.prod(self.kernel_size)) ** (-inv_p)
        positive = total > 0
        return scale * jnp.where(positive, jnp.where(positive, total, 1.0) ** inv_p, 0.0)


class _MaxUnpool(_Window):
    def __init__(self, pool_dim, kernel_size, stride=None, padding=0, channel_axis=-1,
                 name=None, in_size=None):
        super().__init__(name=name)
        self.pool_dim = pool_dim
        self.kernel_size = _ints(kernel_size, pool_dim, 'kernel_size')
        self.stride = _ints(self.kernel_size if stride is None else stride, pool_dim, 'stride')
        if isinstance(padding, int):
            padding = (padding,) * pool_dim
        elif isinstance(padding, (tuple, list)):
            if len(padding) != pool_dim:
                raise ValueError(f'padding should have {pool_dim} values, but got {len(padding)}')
        else:
            raise TypeError(f'padding should be int or tuple of {pool_dim} ints.')
        self.padding = tuple(padding)
        self.channel_axis = _check_channel_axis(channel_axis)
        if in_size is not None:
            self.in_size = tuple(in_size)

    def _compute_output_shape(self, input_shape, output_size=None):
        if output_size is not None:
            return output_size
        return tuple((input_shape[i] - 1) * self.stride[i] - 2 * self.padding[i]
                     + self.kernel_size[i] for i in range(self.pool_dim))

    def _get_spatial_axes(self, ndim):
        axes = list(range(ndim))
        if self.channel_axis is not None:
            axes.pop(self.channel_axis % ndim)
        return axes[-self.pool_dim:]

    def _get_spatial_dims(self, shape):
        return tuple(shape[i] for i in self._get_spatial_axes(len(shape)))

    def update(self, x, indices, output_size=None):
        """Place each value of ``x`` at its flat position ``indices`` (as MaxPool's
        ``return_indices`` gives) in a zero array of the unpooled shape."""
        self._check_ndim(x)
        axes = self._get_spatial_axes(x.ndim)
        natural = list(x.shape)
        for axis, n in zip(axes, self._compute_output_shape(self._get_spatial_dims(x.shape))):
            natural[axis] = n
        natural = tuple(natural)
        if output_size is None:
            shape = natural
        elif isinstance(output_size, (list, tuple)):
            if len(output_size) == x.ndim:
                shape = tuple(output_size)
            else:
                if len(output_size) != self.pool_dim:
                    raise ValueError(f'output_size must have {self.pool_dim} spatial dimensions, '
                                     f'got {len(output_size)}')
                shape = list(x.shape)
                for axis, n in zip(axes, output_size):
                    shape[axis] = n
                shape = tuple(shape)
        else:
            shape = list(x.shape)
            for axis in axes:
                shape[axis] = output_size
            shape = tuple(shape)
        flat_idx, flat_val = indices.ravel(), x.ravel()
        size = int(np.prod(shape))
        if shape == natural:
            return jnp.zeros(size, x.dtype).at[flat_idx].set(flat_val).reshape(shape)
        # A different output shape: re-index through coordinates; values outside are dropped
        # (sent to an extra slot).
        coords = jnp.unravel_index(flat_idx, natural)
        inside = jnp.ones(flat_idx.shape, bool)
        for c, n in zip(coords, shape):
            inside = inside & (c < n)
        target = jnp.ravel_multi_index(tuple(jnp.minimum(c, n - 1) for c, n in zip(coords, shape)),
                                       shape, mode='clip')
        target = jnp.where(inside, target, size)
        return jnp.zeros(size + 1, x.dtype).at[target].set(flat_val)[:size].reshape(shape)


def _adaptive_pool1d(x, target_size: int, operation: Callable):
    """Pool a 1-d array to ``target_size`` entries: the first ``len % target`` windows are one
    longer than the others."""
    size = jnp.size(x)
    if target_size < 1:
        raise ValueError(f'target_size must be >= 1, got {target_size}')
    if size < target_size:
        raise ValueError(f'target_size ({target_size}) must be <= input size ({size}); '
                         f'upsampling is not supported')
    n_long, block = size % target_size, size // target_size
    if n_long == 0:
        return jax.vmap(operation)(x.reshape(-1, block))
    split = n_long * (block + 1)
    return jnp.concatenate([jax.vmap(operation)(x[:split].reshape(n_long, -1)),
                            jax.vmap(operation)(x[split:].reshape(-1, block))])


def _generate_vmap(fun: Callable, map_axes):
    for axis in sorted(map_axes):
        fun = jax.vmap(fun, in_axes=(axis, None, None), out_axes=axis)
    return fun


class _AdaptivePool(Module):
    def __init__(self, in_size, target_size, num_spatial_dims: int, operation: Callable,
                 channel_axis=-1, name=None):
        super().__init__(name=name)
        self.channel_axis = channel_axis
        self.operation = operation
        if isinstance(target_size, str):
            raise TypeError('`target_size` must be an int or a sequence of ints, not a str.')
        if isinstance(target_size, int):
            if target_size <= 0:
                raise ValueError(f'`target_size` must be a positive int, but got {target_size}.')
            self.target_shape = (target_size,) * num_spatial_dims
        elif isinstance(target_size, Sequence) and len(target_size) == num_spatial_dims:
            for t in target_size:
                if t is None:
                    continue
                if not isinstance(t, int):
                    raise TypeError(f'`target_size` entries must be ints or None, but got '
                                    f'{type(t)}.')
                if t <= 0:
                    raise ValueError(f'`target_size` entries must be positive ints, but got {t}.')
            self.target_shape = tuple(target_size)
        else:
            raise ValueError(f'`target_size` must either be an int or tuple of length '
                             f'{num_spatial_dims} containing ints.')
        if in_size is not None:
            self.in_size = tuple(in_size)
            self.out_size = _out_shape(self.update, self.in_size)

    def update(self, x):
        ca = self.channel_axis
        if ca is not None:
            if not -x.ndim <= ca < x.ndim:
                raise ValueError(f'Invalid channel axis {ca} for {x.shape}')
            ca %= x.ndim
        if x.ndim - (0 if ca is None else 1) < len(self.target_shape):
            raise ValueError(f'Invalid input dimension. Except >={len(self.target_shape)} '
                             f'dimensions (channel_axis={self.channel_axis}). But got {x.ndim} '
                             f'dimensions.')
        axes = [i for i in range(x.ndim) if i != ca]
        for target, axis in zip(self.target_shape, axes[-len(self.target_shape):]):
            if target is None:
                continue
            others = [j for j in range(x.ndim) if j != axis]
            x = _generate_vmap(_adaptive_pool1d, others)(x, target, self.operation)
        return x


# The public classes: one per kind and dimension, as the published API names them.

class MaxPool1d(_MaxPool):
    """Max pooling over 1 spatial axis (``(..., length, channels)``)."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=None, padding='VALID', channel_axis=-1,
                 return_indices: bool = False, name=None, in_size=None):
        super().__init__(1, kernel_size, stride, padding, channel_axis, return_indices, name,
                         in_size)


class MaxPool2d(_MaxPool):
    """Max pooling over 2 spatial axes (``(..., height, width, channels)``).

    Example::

        pool = brainstate.nn.MaxPool2d(2, 2)
        pool(jnp.ones((8, 28, 28, 16))).shape      # (8, 14, 14, 16)
    """

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=None, padding='VALID', channel_axis=-1,
                 return_indices: bool = False, name=None, in_size=None):
        super().__init__(2, kernel_size, stride, padding, channel_axis, return_indices, name,
                         in_size)


class MaxPool3d(_MaxPool):
    """Max pooling over 3 spatial axes."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=None, padding='VALID', channel_axis=-1,
                 return_indices: bool = False, name=None, in_size=None):
        super().__init__(3, kernel_size, stride, padding, channel_axis, return_indices, name,
                         in_size)


class AvgPool1d(_AvgPool):
    """Average pooling over 1 spatial axis (stride 1 by default)."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=1, padding='VALID', channel_axis=-1, name=None,
                 in_size=None):
        super().__init__(1, kernel_size, stride, padding, channel_axis, name, in_size)


class AvgPool2d(_AvgPool):
    """Average pooling over 2 spatial axes (stride 1 by default)."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=1, padding='VALID', channel_axis=-1, name=None,
                 in_size=None):
        super().__init__(2, kernel_size, stride, padding, channel_axis, name, in_size)


class AvgPool3d(_AvgPool):
    """Average pooling over 3 spatial axes (stride 1 by default)."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=1, padding='VALID', channel_axis=-1, name=None,
                 in_size=None):
        super().__init__(3, kernel_size, stride, padding, channel_axis, name, in_size)


class LPPool1d(_LPPool):
    """Power-average pooling ``(mean |x|**p) ** (1/p)`` over 1 spatial axis."""

    __module__ = 'brainstate.nn'

    def __init__(self, norm_type, kernel_size, stride=None, padding='VALID', channel_axis=-1,
                 name=None, in_size=None):
        super().__init__(norm_type, 1, kernel_size, stride, padding, channel_axis, name, in_size)


class LPPool2d(_LPPool):
    """Power-average pooling over 2 spatial axes."""

    __module__ = 'brainstate.nn'

    def __init__(self, norm_type, kernel_size, stride=None, padding='VALID', channel_axis=-1,
                 name=None, in_size=None):
        super().__init__(norm_type, 2, kernel_size, stride, padding, channel_axis, name, in_size)


class LPPool3d(_LPPool):
    """Power-average pooling over 3 spatial axes."""

    __module__ = 'brainstate.nn'

    def __init__(self, norm_type, kernel_size, stride=None, padding='VALID', channel_axis=-1,
                 name=None, in_size=None):
        super().__init__(norm_type, 3, kernel_size, stride, padding, channel_axis, name, in_size)


class MaxUnpool1d(_MaxUnpool):
    """The partial inverse of ``MaxPool1d(return_indices=True)``."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=None, padding=0, channel_axis=-1, name=None,
                 in_size=None):
        super().__init__(1, kernel_size, stride, padding, channel_axis, name, in_size)


class MaxUnpool2d(_MaxUnpool):
    """The partial inverse of ``MaxPool2d(return_indices=True)``."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=None, padding=0, channel_axis=-1, name=None,
                 in_size=None):
        super().__init__(2, kernel_size, stride, padding, channel_axis, name, in_size)


class MaxUnpool3d(_MaxUnpool):
    """The partial inverse of ``MaxPool3d(return_indices=True)``."""

    __module__ = 'brainstate.nn'

    def __init__(self, kernel_size, stride=None, padding=0, channel_axis=-1, name=None,
                 in_size=None):
        super().__init__(3, kernel_size, stride, padding, channel_axis, name, in_size)


def _adaptive(name, dims, operation, what):
    def __init__(self, target_size, channel_axis=-1, name=None, in_size=None):
        _AdaptivePool.__init__(self, in_size=in_size, target_size=target_size,
                               num_spatial_dims=dims, operation=operation,
                               channel_axis=channel_axis, name=name)

    doc = (f'{what} pooling of {dims} spatial axes to a fixed ``target_size`` (an int, or one '
           f'int or ``None`` per axis).')
    return type(name, (_AdaptivePool,), {'__init__': __init__, '__doc__': doc,
                                         '__module__': 'brainstate.nn'})


AdaptiveAvgPool1d = _adaptive('AdaptiveAvgPool1d', 1, jnp.mean, 'Adaptive average')
AdaptiveAvgPool2d = _adaptive('AdaptiveAvgPool2d', 2, jnp.mean, 'Adaptive average')
AdaptiveAvgPool3d = _adaptive('AdaptiveAvgPool3d', 3, jnp.mean, 'Adaptive average')
AdaptiveMaxPool1d = _adaptive('AdaptiveMaxPool1d', 1, jnp.max, 'Adaptive max')
AdaptiveMaxPool2d = _adaptive('AdaptiveMaxPool2d', 2, jnp.max, 'Adaptive max')
AdaptiveMaxPool3d = _adaptive('AdaptiveMaxPool3d', 3, jnp.max, 'Adaptive max')
