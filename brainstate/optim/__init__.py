"""Optimizers whose buffers are States, built on optax.

Example::

    params = model.states(brainstate.ParamState)
    opt = brainstate.optim.Adam(lr=1e-3)
    opt.register_trainable_weights(params)

    @brainstate.transform.jit
    def train_step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        opt.update(grads)            # parameters and Adam's moments updated in place
        return loss_fn(x, y)
"""

from ._base import OptaxOptimizer, OptimState, Optimizer
from ._optimizers import SGD, Adam, AdamW, Momentum

__all__ = ['Optimizer', 'OptaxOptimizer', 'OptimState', 'SGD', 'Momentum', 'Adam', 'AdamW']
