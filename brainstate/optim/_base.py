"""Optimizers whose buffers are States, built on optax.

An optimizer holds the parameter States it trains (``register_trainable_weights``) and its
buffers (moments, step counts) in an :class:`OptimState`. ``opt.update(grads)`` reads them,
computes the update with optax and writes the new parameters and buffers back, so inside a
``brainstate.transform.jit`` step it is part of the compiled program.
"""

from __future__ import annotations

from collections.abc import Mapping


import jax
import numpy as np
import optax

from .._module import Module
from .._state import LongTermState, State
from ..util._flat_mapping import FlatMapping
from .._errors import ArgumentTypeError, BrainStateError, GradientError

__all__ = ['OptimState', 'Optimizer', 'OptaxOptimizer']


class _GradientKeyError(GradientError, KeyError):
    """The gradients' keys do not match the registered parameters (also a ``KeyError``)."""

    def __str__(self):  # KeyError would show the message's repr
        return str(self.args[0]) if self.args else ''


class _NotRegisteredError(BrainStateError, RuntimeError):
    """``update`` before ``register_trainable_weights`` (also a ``RuntimeError``)."""


class OptimState(LongTermState):
    """An optimizer's buffers (moments, step counts): a long-term state, never trained."""


class Optimizer(Module):
    """Base class of optimizers: ``register_trainable_weights(params)``, then
    ``update(grads)`` with gradients keyed like ``params``."""

    def __init__(self):
        super().__init__()
        self._bs_params: FlatMapping = FlatMapping()
        self._single = False

    @property
    def param_states(self) -> FlatMapping:
        """The registered parameter States, keyed as they were given."""
        return self._bs_params

    def register_trainable_weights(self, param_states) -> 'Optimizer':
        """Register the States to train.

        Args:
          param_states: a mapping (such as ``model.states(brainstate.ParamState)``), a
            list/tuple of States, or one State. :meth:`update` takes gradients with the same
            keys (positions for a list, the value's structure for one State).
        """
        if isinstance(param_states, State):
            items = [((), param_states)]
            self._single = True
        elif isinstance(param_states, Mapping):
            items = list(param_states.items())
            self._single = False
        elif isinstance(param_states, (list, tuple)):
            items = list(enumerate(param_states))
            self._single = False
        else:
            raise ArgumentTypeError(
                f'register_trainable_weights: expected a mapping of States (such '
                f'as `model.states(brainstate.ParamState)`), a list of States or a '
                f'State, got {type(param_states).__name__}.')
        for key, state in items:
            if not isinstance(state, State):
                raise ArgumentTypeError(f'register_trainable_weights: entry {key!r} is a '
                                        f'{type(state).__name__}, not a State.')
        mapping = FlatMapping()
        for key, state in items:
            dict.__setitem__(mapping, key, state)
        # A `_bs_` attribute is not walked: the States keep their paths in the model, and
        # `opt.states()` lists only the optimizer's own buffers.
        self._bs_params = mapping
        self._init_buffers([state.value for state in mapping.values()])
        return self

    def _init_buffers(self, values: list):
        raise NotImplementedError

    def _ordered_grads(self, grads) -> list:
        """The gradients as a list in the order of the registered parameters."""
        keys = list(self._bs_params.keys())
        if not keys:
            raise _NotRegisteredError(
                f'{type(self).__name__}.update: no parameters registered; call '
                f'`register_trainable_weights(params)` first.')
        if self._single:
            return [grads]
        if isinstance(grads, (list, tuple)) and not isinstance(grads, Mapping):
            grads = dict(enumerate(grads))
        if not isinstance(grads, Mapping):
            raise ArgumentTypeError(
                f'{type(self).__name__}.update: expected gradients keyed like the '
                f'registered parameters (a mapping), got {type(grads).__name__}.')
        missing = [k for k in keys if k not in grads]
        extra = [k for k in grads if k not in self._bs_params]
        if missing or extra:
            raise _GradientKeyError(
                f'{type(self).__name__}.update: the gradients\' keys do not match the '
                'registered parameters' + (f'; missing {missing}' if missing else '') +
                (f'; unknown {extra}' if extra else '') + '. Compute them with '
                '`brainstate.transform.grad(loss, params)` for the same `params`.')
        ordered = [grads[k] for k in keys]
        for key, state, grad in zip(keys, self._bs_params.values(), ordered):
            leaves, treedef = jax.tree.flatten(grad)
            got = [np.shape(g) for g in leaves]
            want = [a.shape for a in state.avals]
            if treedef != state.treedef or got != want:
                raise GradientError(
                    f'{type(self).__name__}.update: the gradient for {key!r} (State '
                    f'{state.label()}) has shapes {got} (structure {treedef}), but the '
                    f'parameter has {want} (structure {state.treedef}). '
                    f'Compute the gradients with `brainstate.transform.grad(loss, params)` for '
                    f'the registered `params`.')
        return ordered


class OptaxOptimizer(Optimizer):
    """Wrap any optax ``GradientTransformation`` as a stateful optimizer.

    Args:
      tx: the optax transformation (e.g. ``optax.chain(optax.clip_by_global_norm(1.0),
        optax.adam(1e-3))``). Its update must be added to the parameters
        (``optax.apply_updates``), as for every optax optimizer.

    Example::

        opt = brainstate.optim.OptaxOptimizer(optax.adamw(1e-3))
        opt.register_trainable_weights(model.states(brainstate.ParamState))

        @brainstate.transform.jit
        def train_step(x, y):
            grads = brainstate.transform.grad(loss_fn, opt.param_states)(x, y)
            opt.update(grads)
    """

    def __init__(self, tx: optax.GradientTransformation):
        super().__init__()
        if not (hasattr(tx, 'init') and hasattr(tx, 'update')):
            raise ArgumentTypeError(
                f'OptaxOptimizer: expected an optax GradientTransformation, got '
                f'{type(tx).__name__}.')
        self.tx = tx
        self.opt_state: OptimState | None = None

    def _init_buffers(self, values: list):
        self.opt_state = OptimState(self.tx.init(values))

    def update(self, grads):
        """Apply one optimization step: update every registered parameter in place."""
        ordered = self._ordered_grads(grads)
        if self.opt_state is None:
            raise _NotRegisteredError('update before register_trainable_weights.')
        states = list(self._bs_params.values())
        params = [state.value for state in states]
        updates, new_opt_state = self.tx.update(ordered, self.opt_state.value, params)
        new_params = optax.apply_updates(params, updates)
        for state, value in zip(states, new_params):
            state.value = value
        self.opt_state.value = new_opt_state

    def __repr__(self):
        return f'{type(self).__name__}()'
