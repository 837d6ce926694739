"""Linear layers: dense (``Linear``), weight-standardised, sign-constrained, sparse,
all-to-all, one-to-one, and low-rank adapters (``LoRA``)."""

from __future__ import annotations

from typing import Callable

import brainunit as u
import jax.numpy as jnp

from .._state import ParamState
from . import init
from ._activations import unitless
from ._module import Module

__all__ = ['Linear', 'ScaledWSLinear', 'SignedWLinear', 'SparseLinear', 'AllToAll', 'OneToOne',
           'LoRA']


def _set_sizes(layer: Module, in_size, out_size):
    layer.in_size = in_size
    layer.out_size = out_size
    if layer.in_size[:-1] != layer.out_size[:-1]:
        raise AssertionError(
            f'{type(layer).__name__}: the first n-1 dimensions of "in_size" and "out_size" must '
            f'be the same, got in_size={layer.in_size} and out_size={layer.out_size}.')


def _add_bias(params: dict, b_init, n_out: int):
    if b_init is not None:
        params['bias'] = init.param(b_init, n_out, allow_none=False)


class Linear(Module):
    """A dense layer ``y = x @ W + b`` over the last axis of ``x``.

    Args:
      in_size: the size of one input (an int or a tuple; its last entry is the feature count).
      out_size: the size of one output (same leading entries as ``in_size``).
      w_init: the weight's initializer (shape ``(in, out)``) or an array.
      b_init: the bias's initializer (shape ``(out,)``), an array, or ``None`` for no bias.
      w_mask: an optional fixed array multiplied into the weight on every call.
      name: an optional module name.
      param_type: the State class holding the parameters.

    The parameters live in one state, ``self.weight``, holding ``{'weight': W, 'bias': b}``.

    Example::

        layer = brainstate.nn.Linear(784, 128)
        y = layer(jnp.ones((32, 784)))          # (32, 128)
    """

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, out_size, w_init=init.KaimingNormal(), b_init=init.ZeroInit(),
                 w_mask=None, name: str | None = None, param_type: type = ParamState):
        super().__init__(name=name)
        _set_sizes(self, in_size, out_size)
        self.w_mask = init.param(w_mask, self.in_size + self.out_size)
        params = {'weight': init.param(w_init, (self.in_size[-1], self.out_size[-1]),
                                       allow_none=False)}
        _add_bias(params, b_init, self.out_size[-1])
        self.weight = param_type(params)

    def update(self, x):
        params = self.weight.value
        w = params['weight']
        if self.w_mask is not None:
            w = w * self.w_mask
        y = jnp.dot(x, w) if unitless(x) and unitless(w) else u.linalg.dot(x, w)
        if 'bias' in params:
            y = y + params['bias']
        return y


class SignedWLinear(Module):
    """``y = x @ (|W| * w_sign)``: weights of fixed sign (all positive without ``w_sign``), as
    for excitatory and inhibitory connections."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, out_size, w_init=init.KaimingNormal(), w_sign=None,
                 name: str | None = None, param_type: type = ParamState):
        super().__init__(name=name)
        _set_sizes(self, in_size, out_size)
        self.w_sign = w_sign
        self.weight = param_type(init.param(w_init, self.in_size + self.out_size,
                                            allow_none=False))

    def update(self, x):
        w = u.math.abs(self.weight.value)
        if self.w_sign is not None:
            w = w * self.w_sign
        return u.math.matmul(x, w)


class ScaledWSLinear(Module):
    """A Linear layer whose weight is standardised (zero mean, unit variance over the input
    axis, times a learned ``gain`` when ``ws_gain``) before every use."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, out_size, w_init=init.KaimingNormal(), b_init=init.ZeroInit(),
                 w_mask=None, ws_gain: bool = True, eps: float = 1e-4, name: str | None = None,
                 param_type: type = ParamState):
        super().__init__(name=name)
        _set_sizes(self, in_size, out_size)
        self.w_mask = init.param(w_mask, (self.in_size[-1], 1))
        self.eps = eps
        params = {'weight': init.param(w_init, (self.in_size[-1], self.out_size[-1]),
                                       allow_none=False)}
        _add_bias(params, b_init, self.out_size[-1])
        if ws_gain:
            shape = params['weight'].shape
            params['gain'] = jnp.ones((1,) * (len(shape) - 1) + shape[-1:],
                                      params['weight'].dtype)
        self.weight = param_type(params)

    def update(self, x):
        from ._normalizations import weight_standardization
        params = self.weight.value
        w = weight_standardization(params['weight'], self.eps, params.get('gain'))
        if self.w_mask is not None:
            w = w * self.w_mask
        y = jnp.dot(x, w) if unitless(x) and unitless(w) else u.linalg.dot(x, w)
        if 'bias' in params:
            y = y + params['bias']
        return y


class SparseLinear(Module):
    """``y = x @ S + b`` with ``S`` a ``brainunit.sparse`` matrix whose non-zero values are the
    trainable parameter."""

    __module__ = 'brainstate.nn'

    def __init__(self, spar_mat, b_init=None, in_size=None, name: str | None = None,
                 param_type: type = ParamState):
        super().__init__(name=name)
        if not isinstance(spar_mat, u.sparse.SparseMatrix):
            raise AssertionError('"weight" must be a SparseMatrix.')
        self.out_size = spar_mat.shape[-1]
        if in_size is not None:
            self.in_size = in_size
            if self.in_size[:-1] != self.out_size[:-1]:
                raise AssertionError('The first n-1 dimensions of "in_size" and "out_size" must '
                                     'be the same.')
        self.spar_mat = spar_mat
        params = {'weight': spar_mat.data}
        _add_bias(params, b_init, self.out_size[-1])
        self.weight = param_type(params)

    def update(self, x):
        params = self.weight.value
        y = x @ self.spar_mat.with_data(params['weight'])
        if 'bias' in params:
            y = y + params['bias']
        return y


class AllToAll(Module):
    """All-to-all connections ``y = x @ W (+ b)``; a scalar weight connects every pair with the
    same strength. ``include_self=False`` removes the ``i -> i`` connections."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, out_size, w_init=init.KaimingNormal(), b_init=None,
                 include_self: bool = True, name: str | None = None,
                 param_type: type = ParamState):
        super().__init__(name=name)
        _set_sizes(self, in_size, out_size)
        self.include_self = include_self
        params = {'weight': init.param(w_init, (self.in_size[-1], self.out_size[-1]),
                                       allow_none=False)}
        _add_bias(params, b_init, self.out_size[-1])
        self.weight = param_type(params)

    def update(self, pre_val):
        params = self.weight.value
        x, x_unit = u.get_mantissa(pre_val), u.get_unit(pre_val)
        w, w_unit = u.get_mantissa(params['weight']), u.get_unit(params['weight'])
        n_in, n_out = self.in_size[-1], self.out_size[-1]
        if jnp.ndim(w) == 0:
            total = jnp.sum(x) if x.ndim == 1 else jnp.sum(x, axis=-1, keepdims=True)
            if not self.include_self:
                if n_in >= n_out:
                    own = x[..., :n_out]
                else:
                    own = jnp.concatenate([x, jnp.zeros(x.shape[:-1] + (n_out - n_in,),
                                                        x.dtype)], axis=-1)
                total = total - own
            y = w * total
        else:
            if jnp.ndim(w) != 2:
                raise AssertionError('"weight" must be a 2D matrix.')
            if not self.include_self:
                w = w * (1 - jnp.eye(*w.shape, dtype=w.dtype))
            y = x @ w
        y = u.maybe_decimal(u.Quantity(y, unit=w_unit * x_unit))
        if 'bias' in params:
            y = y + params['bias']
        return y


class OneToOne(Module):
    """Element-wise connections: ``y = x * w (+ b)``."""

    __module__ = 'brainstate.nn'

    def __init__(self, in_size, w_init=init.Normal(), b_init=None, name: str | None = None,
                 param_type: type = ParamState):
        super().__init__(name=name)
        self.in_size = in_size
        self.out_size = in_size
        params = {'weight': init.param(w_init, self.in_size, allow_none=False)}
        if b_init is not None:
            params['bias'] = init.param(b_init, self.out_size, allow_none=False)
        self.weight = param_type(params)

    def update(self, pre_val):
        params = self.weight.value
        y = pre_val * params['weight']
        if 'bias' in params:
            y = y + params['bias']
        return y


class LoRA(Module):
    """A low-rank adapter ``y = x @ A @ B (+ base_module(x))`` with ``A: (in, rank)`` and
    ``B: (rank, out)``.

    Example::

        base = brainstate.nn.Linear(64, 32)
        lora = brainstate.nn.LoRA(64, 4, 32, base_module=base)
    """

    __module__ = 'brainstate.nn'

    def __init__(self, in_features: int, lora_rank: int, out_features: int, *,
                 base_module: Module | None = None, kernel_init=init.LecunNormal(),
                 param_type: type = ParamState, in_size=None):
        super().__init__()
        self.in_size = in_features
        self.out_size = out_features
        self.in_features, self.out_features = in_features, out_features
        self.base_module = base_module
        self.weight = param_type({'lora_a': kernel_init((in_features, lora_rank)),
                                  'lora_b': kernel_init((lora_rank, out_features))})
        if in_size is not None:
            self.in_size = in_size
            self.out_size = tuple(self.in_size[:-1]) + (out_features,)

    def __call__(self, x):
        params = self.weight.value
        out = x @ params['lora_a'] @ params['lora_b']
        if self.base_module is not None:
            if not callable(self.base_module):
                raise ValueError('`self.base_module` must be callable.')
            out = out + self.base_module(x)
        return out

    update = __call__
