"""Dropout: zero random entries while training, scaling the rest to keep the mean."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from .._module import Module

__all__ = ['Dropout']


class Dropout(Module):
    """Keep each entry with probability ``prob`` (and divide by ``prob``), zero it otherwise.

    Args:
      prob: the probability to *keep* an entry (as in BrainState; ``1 - rate`` in other
        libraries). ``1.0`` disables dropout.
      broadcast_dims: axes along which one mask is shared (e.g. ``(0,)`` for one mask for the
        whole batch).
      training: whether a call drops entries. Set ``layer.training = False`` (or call with
        ``training=False``) to evaluate. It is a Python flag read while tracing: a function
        jitted for training and one for evaluation are separate functions.
      rng: the ``brainstate.random.RandomState`` drawing the masks (default: the global one,
        ``brainstate.random.DEFAULT``); its key is a state, so each call of a jitted step draws
        a new mask.

    Example::

        drop = brainstate.nn.Dropout(0.9)
        y = drop(x)                   # training: about 10% zeros, the rest scaled by 1/0.9
        y = drop(x, training=False)   # identity
    """

    def __init__(self, prob: float = 0.5, broadcast_dims: Sequence[int] = (),
                 training: bool = True, rng=None, name: str | None = None):
        super().__init__(name=name)
        if not 0.0 < prob <= 1.0:
            raise ValueError(f'Dropout: prob is the probability to keep an entry and must be in '
                             f'(0, 1], got {prob}.')
        self.prob = float(prob)
        self.broadcast_dims = tuple(broadcast_dims)
        self.training = training
        self.rng = rng

    def update(self, x, training: bool | None = None):
        training = self.training if training is None else training
        if not training or self.prob == 1.0:
            return x
        from .. import random
        rng = self.rng if self.rng is not None else random.DEFAULT
        shape = list(jnp.shape(x))
        for dim in self.broadcast_dims:
            shape[dim] = 1
        keep = rng.bernoulli(self.prob, size=tuple(shape))
        keep = jnp.broadcast_to(keep, jnp.shape(x))
        return jnp.where(keep, x / self.prob, jnp.zeros_like(x))

    def __repr__(self):
        return f'Dropout(prob={self.prob})'
