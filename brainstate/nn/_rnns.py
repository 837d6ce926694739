"""Recurrent cells: vanilla RNN (published name ``ValinaRNNCell``), GRU, MGU, LSTM and
UR-LSTM. Each keeps its hidden state in ``HiddenState``s created by ``init_state(batch_size)``
and advances it one step per call.

Example::

    cell = brainstate.nn.GRUCell(10, 32)
    brainstate.nn.init_all_states(cell, batch_size=8)
    h = cell(jnp.ones((8, 10)))          # (8, 32); cell.h holds it too
"""

from __future__ import annotations

import jax.numpy as jnp

from .._state import HiddenState, ParamState
from . import _activations as functional
from . import init
from ._linear import Linear
from ._module import Module

__all__ = ['RNNCell', 'ValinaRNNCell', 'GRUCell', 'MGUCell', 'LSTMCell', 'URLSTMCell']


class RNNCell(Module):
    """Base class of recurrent cells."""

    __module__ = 'brainstate.nn'
    _state_names = ('h',)

    def _setup(self, num_in, num_out, state_init, activation):
        self.num_in, self.num_out = num_in, num_out
        self.in_size, self.out_size = (num_in,), (num_out,)
        self._state_initializer = state_init
        if isinstance(activation, str):
            activation = getattr(functional, activation)
        elif not callable(activation):
            raise AssertionError('The activation function should be a string or a callable '
                                 'function. ')
        self.activation = activation

    def _initial(self, batch_size):
        return init.param(self._state_initializer, [self.num_out], batch_size)

    def init_state(self, batch_size: int | None = None, **kwargs):
        for name in self._state_names:
            setattr(self, name, HiddenState(self._initial(batch_size)))

    def reset_state(self, batch_size: int | None = None, **kwargs):
        for name in self._state_names:
            getattr(self, name).value = self._initial(batch_size)


class ValinaRNNCell(RNNCell):
    """A vanilla RNN cell: ``h = activation(W [x, h] + b)`` (the published name keeps its
    spelling).

    Parameters
    ----------
    num_in : int
        The number of input features.
    num_out : int
        The number of hidden units.
    w_init, b_init, state_init : initializer or array
        The weights', biases' and hidden state's initial values.
    activation : str or callable
        The activation (a name from ``brainstate.nn``, e.g. ``'tanh'``, or a function).

    Examples
    --------
    >>> cell = brainstate.nn.ValinaRNNCell(10, 32)
    >>> brainstate.nn.init_all_states(cell, batch_size=8)
    >>> cell(jnp.ones((8, 10))).shape
    (8, 32)
    """

    def __init__(self, num_in: int, num_out: int, state_init=init.ZeroInit(),
                 w_init=init.XavierNormal(), b_init=init.ZeroInit(), activation='relu',
                 name: str | None = None):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init, activation)
        self.W = Linear(num_in + num_out, num_out, w_init=w_init, b_init=b_init)

    def update(self, x):
        self.h.value = self.activation(self.W(jnp.concatenate([x, self.h.value], axis=-1)))
        return self.h.value


class GRUCell(RNNCell):
    """Gated recurrent unit: reset gate ``r``, update gate ``z``,
    ``h = (1 - z) * h + z * act(W_h [x, r * h])``.

    Parameters
    ----------
    num_in : int
        The number of input features.
    num_out : int
        The number of hidden units.
    w_init, b_init, state_init : initializer or array
        The weights', biases' and hidden state's initial values.
    activation : str or callable
        The activation (a name from ``brainstate.nn``, e.g. ``'tanh'``, or a function).

    Examples
    --------
    >>> cell = brainstate.nn.GRUCell(10, 32)
    >>> brainstate.nn.init_all_states(cell, batch_size=8)
    >>> cell(jnp.ones((8, 10))).shape
    (8, 32)
    """

    def __init__(self, num_in: int, num_out: int, w_init=init.Orthogonal(),
                 b_init=init.ZeroInit(), state_init=init.ZeroInit(), activation='tanh',
                 name: str | None = None):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init, activation)
        self.Wrz = Linear(num_in + num_out, num_out * 2, w_init=w_init, b_init=b_init)
        self.Wh = Linear(num_in + num_out, num_out, w_init=w_init, b_init=b_init)

    def update(self, x):
        old = self.h.value
        r, z = jnp.split(functional.sigmoid(self.Wrz(jnp.concatenate([x, old], axis=-1))), 2,
                         axis=-1)
        candidate = self.activation(self.Wh(jnp.concatenate([x, r * old], axis=-1)))
        self.h.value = (1 - z) * old + z * candidate
        return self.h.value


class MGUCell(RNNCell):
    """Minimal gated unit: one forget gate ``f``,
    ``h = (1 - f) * h + f * act(W_h [x, f * h])``.

    Parameters
    ----------
    num_in : int
        The number of input features.
    num_out : int
        The number of hidden units.
    w_init, b_init, state_init : initializer or array
        The weights', biases' and hidden state's initial values.
    activation : str or callable
        The activation (a name from ``brainstate.nn``, e.g. ``'tanh'``, or a function).

    Examples
    --------
    >>> cell = brainstate.nn.MGUCell(10, 32)
    >>> brainstate.nn.init_all_states(cell, batch_size=8)
    >>> cell(jnp.ones((8, 10))).shape
    (8, 32)
    """

    def __init__(self, num_in: int, num_out: int, w_init=init.Orthogonal(),
                 b_init=init.ZeroInit(), state_init=init.ZeroInit(), activation='tanh',
                 name: str | None = None):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init, activation)
        self.Wf = Linear(num_in + num_out, num_out, w_init=w_init, b_init=b_init)
        self.Wh = Linear(num_in + num_out, num_out, w_init=w_init, b_init=b_init)

    def update(self, x):
        old = self.h.value
        f = functional.sigmoid(self.Wf(jnp.concatenate([x, old], axis=-1)))
        candidate = self.activation(self.Wh(jnp.concatenate([x, f * old], axis=-1)))
        self.h.value = (1 - f) * old + f * candidate
        return self.h.value


class LSTMCell(RNNCell):
    """Long short-term memory: gates ``i, g, f, o`` from one Linear of ``[x, h]``; the forget
    gate has a +1 bias: ``c = sigmoid(f + 1) c + sigmoid(i) act(g)``, ``h = sigmoid(o) act(c)``.
    The cell state is ``self.c``, the output ``self.h``.

    Parameters
    ----------
    num_in : int
        The number of input features.
    num_out : int
        The number of hidden units.
    w_init, b_init, state_init : initializer or array
        The weights', biases' and hidden state's initial values.
    activation : str or callable
        The activation (a name from ``brainstate.nn``, e.g. ``'tanh'``, or a function).

    Examples
    --------
    >>> cell = brainstate.nn.LSTMCell(10, 32)
    >>> brainstate.nn.init_all_states(cell, batch_size=8)
    >>> cell(jnp.ones((8, 10))).shape
    (8, 32)
    """

    _state_names = ('c', 'h')

    def __init__(self, num_in: int, num_out: int, w_init=init.XavierNormal(),
                 b_init=init.ZeroInit(), state_init=init.ZeroInit(), activation='tanh',
                 name: str | None = None):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init, activation)
        self.W = Linear(num_in + num_out, num_out * 4, w_init=w_init, b_init=b_init)

    def update(self, x):
        h, c = self.h.value, self.c.value
        i, g, f, o = jnp.split(self.W(jnp.concatenate([x, h], axis=-1)), 4, axis=-1)
        c = functional.sigmoid(f + 1.0) * c + functional.sigmoid(i) * self.activation(g)
        h = functional.sigmoid(o) * self.activation(c)
        self.h.value, self.c.value = h, c
        return h


class URLSTMCell(RNNCell):
    """LSTM with uniform gate initialisation and a refine gate (Gu et al., 2020): the forget
    bias is drawn so ``sigmoid(bias)`` is uniform on ``(1/n, 1 - 1/n)``.

    Parameters
    ----------
    num_in : int
        The number of input features.
    num_out : int
        The number of hidden units.
    w_init, b_init, state_init : initializer or array
        The weights', biases' and hidden state's initial values.
    activation : str or callable
        The activation (a name from ``brainstate.nn``, e.g. ``'tanh'``, or a function).

    Examples
    --------
    >>> cell = brainstate.nn.URLSTMCell(10, 32)
    >>> brainstate.nn.init_all_states(cell, batch_size=8)
    >>> cell(jnp.ones((8, 10))).shape
    (8, 32)
    """

    _state_names = ('c', 'h')

    def __init__(self, num_in: int, num_out: int, w_init=init.XavierNormal(),
                 state_init=init.ZeroInit(), activation='tanh', name: str | None = None):
        super().__init__(name=name)
        self._setup(num_in, num_out, state_init, activation)
        self.W = Linear(num_in + num_out, num_out * 4, w_init=w_init, b_init=None)
        self.bias = ParamState(self._forget_bias())

    def _forget_bias(self):
        from .. import random
        p = random.uniform(1 / self.num_out, 1 - 1 / self.num_out, (self.num_out,))
        return -jnp.log(1 / p - 1)

    def update(self, x):
        h, c = self.h.value, self.c.value
        f, r, u, o = jnp.split(self.W(jnp.concatenate([x, h], axis=-1)), 4, axis=-1)
        f_gate = functional.sigmoid(f + self.bias.value)
        r_gate = functional.sigmoid(r - self.bias.value)
        g = 2 * r_gate * f_gate + (1 - 2 * r_gate) * f_gate ** 2
        c = g * c + (1 - g) * self.activation(u)
        h = functional.sigmoid(o) * self.activation(c)
        self.h.value, self.c.value = h, c
        return h
