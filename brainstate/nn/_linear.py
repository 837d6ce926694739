"""Linear: the dense layer ``y = x @ W + b``."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from .._module import Module
from .._state import ParamState
from ._init import KaimingNormal, ZeroInit, param

__all__ = ['Linear']


def _size(size, name: str) -> tuple[int, ...]:
    size = (size,) if isinstance(size, int) else tuple(size)
    if not size or not all(isinstance(n, int) and n > 0 for n in size):
        raise ValueError(f'Linear: {name} must be a positive int (or a tuple ending in one), '
                         f'got {size!r}.')
    return size


class Linear(Module):
    """A dense layer: ``y = x @ W + b`` over the last axis of ``x``.

    Args:
      in_size: the number of input features (an int, or a tuple whose last entry is it).
      out_size: the number of output features (same form).
      w_init: the weight's initializer (shape ``(in, out)``) or an array. Default: Kaiming
        normal, from ``brainstate.random.DEFAULT``.
      b_init: the bias's initializer (shape ``(out,)``), an array, or ``None`` for no bias.
      w_mask: an optional fixed array multiplied into the weight on every call (e.g. to keep a
        connectivity pattern).
      name: an optional module name.
      param_type: the State class holding the parameters (``ParamState``).

    The parameters live in one state, ``self.weight``, holding ``{'weight': W, 'bias': b}``.

    Example::

        layer = brainstate.nn.Linear(784, 128)
        y = layer(jnp.ones((32, 784)))          # (32, 128)
    """

    def __init__(self, in_size: int | Sequence[int], out_size: int | Sequence[int],
                 w_init=KaimingNormal(), b_init=ZeroInit(), w_mask=None,
                 name: str | None = None, param_type: type = ParamState):
        super().__init__(name=name)
        self.in_size = _size(in_size, 'in_size')
        self.out_size = _size(out_size, 'out_size')
        n_in, n_out = self.in_size[-1], self.out_size[-1]
        params = {'weight': param(w_init, (n_in, n_out), allow_none=False)}
        bias = param(b_init, (n_out,))
        if bias is not None:
            params['bias'] = bias
        self.w_mask = None if w_mask is None else jnp.asarray(w_mask)
        self.weight = param_type(params)

    def update(self, x):
        params = self.weight.value
        w = params['weight']
        if self.w_mask is not None:
            w = w * self.w_mask
        y = jnp.matmul(x, w)
        if 'bias' in params:
            y = y + params['bias']
        return y

    def __repr__(self):
        return f'Linear(in_size={self.in_size}, out_size={self.out_size})'
