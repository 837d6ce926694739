"""The common optimizers, as thin configurations of optax transformations."""

from __future__ import annotations

from typing import Callable

import optax

from ._base import OptaxOptimizer

__all__ = ['SGD', 'Momentum', 'Adam', 'AdamW']

_LR_DOC = ('a float, or an optax schedule (a function of the step count) for a varying '
           'learning rate')


class SGD(OptaxOptimizer):
    """Stochastic gradient descent: ``p <- p - lr * (g + weight_decay * p)``.

    Args:
      lr: the learning rate: {lr}.
      weight_decay: L2 penalty coefficient added to the gradient (0 for none).
    """

    def __init__(self, lr: float | Callable = 1e-3, weight_decay: float = 0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
        super().__init__(optax.chain(*parts, optax.sgd(lr)))

    def __repr__(self):
        return f'SGD(lr={self.lr!r}, weight_decay={self.weight_decay!r})'


class Momentum(OptaxOptimizer):
    """SGD with (heavy-ball or Nesterov) momentum.

    Args:
      lr: the learning rate: {lr}.
      momentum: the momentum coefficient.
      nesterov: use Nesterov momentum.
      weight_decay: L2 penalty coefficient added to the gradient.
    """

    def __init__(self, lr: float | Callable = 1e-3, momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 0.0):
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.weight_decay = weight_decay
        parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
        super().__init__(optax.chain(*parts, optax.sgd(lr, momentum=momentum,
                                                      nesterov=nesterov)))

    def __repr__(self):
        return f'Momentum(lr={self.lr!r}, momentum={self.momentum!r}, nesterov={self.nesterov})'


class Adam(OptaxOptimizer):
    """Adam (Kingma & Ba, 2015).

    Args:
      lr: the learning rate: {lr}.
      beta1, beta2: the decay rates of the first and second moment estimates.
      eps: added to the denominator for numerical stability.
      weight_decay: L2 penalty coefficient added to the gradient (coupled, as in the original
        Adam; see :class:`AdamW` for decoupled decay).
    """

    def __init__(self, lr: float | Callable = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay = weight_decay
        parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
        super().__init__(optax.chain(*parts, optax.adam(lr, b1=beta1, b2=beta2, eps=eps)))

    def __repr__(self):
        return f'Adam(lr={self.lr!r}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps})'


class AdamW(OptaxOptimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Args:
      lr: the learning rate: {lr}.
      beta1, beta2, eps: as for :class:`Adam`.
      weight_decay: the decoupled decay rate (multiplied by the learning rate).
    """

    def __init__(self, lr: float | Callable = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 1e-4):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay = weight_decay
        super().__init__(optax.adamw(lr, b1=beta1, b2=beta2, eps=eps,
                                     weight_decay=weight_decay))

    def __repr__(self):
        return (f'AdamW(lr={self.lr!r}, beta1={self.beta1}, beta2={self.beta2}, '
                f'eps={self.eps}, weight_decay={self.weight_decay})')


for _cls in (SGD, Momentum, Adam, AdamW):
    _cls.__doc__ = _cls.__doc__.replace('{lr}', _LR_DOC)
