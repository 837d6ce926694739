"""Param: a parameter module with a bijective transform, a regulariser and a cache.

The stored value lives in an unconstrained space (``t.inverse`` of the value given);
``value()`` maps it back with ``t.forward`` (then ``precompute`` if given). A trainable Param
(``fit=True``) holds it in a ``ParamState`` (``param.val``), so optimisers and
``module.states(ParamState)`` find it; ``Const`` is a Param that never trains.

Example::

    tau = brainstate.nn.Param(10.0, t=brainstate.nn.SoftplusT(0.0), reg=brainstate.nn.L2Reg(0.01))
    tau.value()        # 10.0, always positive however training moves tau.val
    tau.reg_loss()     # 0.01 * 10.0**2
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

import brainunit as u
import jax
import numpy as np

from .._state import ParamState, State
from ._module import Module
from ._regularization import Regularization
from ._support import dftype
from ._transform import IdentityT, Transform

__all__ = ['Param', 'Const']

_HIDDEN = ('_enable_cache_logging', '_cache_lock', '_cached_value', '_cache_valid',
           '_cache_logger', 'precompute', '_cache_invalidation_hook_handle')


class _WatchedParamState(ParamState):
    """A ParamState that tells its Param whenever its stored value changes (a direct write,
    or a transform writing back a compiled step's result), so the Param's cache is dropped."""

    _on_write = None

    def _set_outside_trace(self, new_value):
        super()._set_outside_trace(new_value)
        callback = self.__dict__.get('_on_write')
        if callback is not None:
            callback()


class _HookHandle:
    """Names the cache-invalidation link between a Param and its state."""

    def __init__(self, state):
        self.state = state

    def remove(self):
        self.state._on_write = None


class Param(Module):
    """A parameter with an optional transform ``t``, regulariser ``reg`` and ``precompute``.

    Args:
      value: the initial value, in the constrained space (may be a brainunit Quantity).
      t: a :class:`~brainstate.nn.Transform` mapping the stored value to the constrained one.
      reg: a :class:`~brainstate.nn.Regularization` (its loss is ``reg_loss()``), or ``None``.
      precompute: a function applied to the transformed value by ``value()``.
      fit: whether it is trainable (held in a ``ParamState``).
      enable_cache_logging: log cache hits, misses and invalidations at INFO level.

    ``cache()`` computes and keeps the transformed value until ``set_value``, a write of the
    state or ``clear_cache()``; ``value()`` returns the kept value while it is valid.
    """

    __module__ = 'brainstate.nn'

    def __init__(self, value, t: Transform = IdentityT(), reg: Regularization | None = None,
                 precompute: Callable | None = None, fit: bool = True,
                 enable_cache_logging: bool = False):
        super().__init__()
        self.fit = fit
        self.t = t
        self.reg = reg
        if precompute is not None and not callable(precompute):
            raise AssertionError('precompute must be a callable function or None.')
        self.precompute = precompute
        self._enable_cache_logging = enable_cache_logging
        self._cache_lock = threading.RLock()
        self._cached_value = None
        self._cache_valid = False
        self._cache_logger = None
        self._cache_invalidation_hook_handle = None
        if not (reg is None or isinstance(reg, Regularization)):
            raise ValueError(f'Regularization must be None or instance of Regularization, got '
                             f'{type(reg).__name__}.')
        if not isinstance(t, Transform):
            raise TypeError(f't must be an instance of Transform. But got {type(t)}.')
        stored = t.inverse(u.math.asarray(value, dtype=dftype()))
        if fit:
            stored = _WatchedParamState(stored)
            stored._on_write = self._on_param_state_write
            self._cache_invalidation_hook_handle = _HookHandle(stored)
        self.val = stored

    # -- the cache ---------------------------------------------------------------------------

    def _compute(self):
        value = self.val.value if isinstance(self.val, State) else self.val
        value = self.t.forward(value)
        return self.precompute(value) if self.precompute is not None else value

    def cache(self):
        """Compute the transformed value and keep it; return it."""
        with self._cache_lock:
            value = self._compute()
            self._cached_value, self._cache_valid = value, True
            self._log_cache_event('manual_cache')
            return value

    def clear_cache(self) -> None:
        """Drop the kept value (the next ``value()`` recomputes)."""
        with self._cache_lock:
            if self._cache_valid:
                self._cache_valid, self._cached_value = False, None
                self._log_cache_event('invalidate', reason='manual_clear')

    @property
    def cache_stats(self) -> dict:
        """``{'valid': ..., 'has_cached_value': ...}``."""
        with self._cache_lock:
            return {'valid': self._cache_valid,
                    'has_cached_value': self._cached_value is not None}

    def _on_param_state_write(self, *args):
        with self._cache_lock:
            if self._cache_valid:
                self._cache_valid, self._cached_value = False, None
                self._log_cache_event('invalidate', reason='state_write')

    def _get_logger(self) -> logging.Logger:
        if self._cache_logger is None:
            self._cache_logger = logging.getLogger(
                f'brainstate.nn.Param.{self.name or id(self)}')
        return self._cache_logger

    def _log_cache_event(self, event: str, **kwargs):
        if not self._enable_cache_logging:
            return
        logger, who = self._get_logger(), self.name or id(self)
        if event == 'hit':
            logger.info(f"Cache HIT for Param '{who}'")
        elif event == 'miss':
            logger.info(f"Cache MISS for Param '{who}' - computing")
        elif event == 'invalidate':
            logger.info(f"Cache INVALIDATED for Param '{who}' (reason: "
                        f"{kwargs.get('reason', 'unknown')})")
        elif event == 'error':
            logger.error(f"Cache ERROR for Param '{who}': {kwargs.get('error')}", exc_info=True)

    # -- value -------------------------------------------------------------------------------

    def value(self):
        """The value in the constrained space (the kept one while the cache is valid)."""
        with self._cache_lock:
            if self._cache_valid:
                self._log_cache_event('hit')
                return self._cached_value
        return self._compute()

    def set_value(self, value):
        """Set the value (given in the constrained space)."""
        with self._cache_lock:
            self._cache_valid, self._cached_value = False, None
            self._log_cache_event('invalidate', reason='set_value')
        stored = self.t.inverse(value)
        if isinstance(self.val, State):
            self.val.value = stored
        else:
            self.val = stored

    def reg_loss(self):
        """The regulariser's loss of ``value()`` (0.0 when not trainable or without one)."""
        if not self.fit or self.reg is None:
            return 0.0
        return self.reg.loss(self.value())

    def reset_to_prior(self):
        """Set the value to the regulariser's typical value (no-op without one)."""
        if self.reg is not None:
            self.set_value(self.reg.reset_value())

    def clip(self, min_val=None, max_val=None):
        """Clip the value in place to ``[min_val, max_val]``."""
        self.set_value(u.math.clip(self.value(), a_min=min_val, a_max=max_val))

    def __pretty_repr_item__(self, name, value):
        if name in _HIDDEN:
            return None
        if name.startswith('_'):
            return None if value is None else (name[1:], value)
        return name, value

    @classmethod
    def init(cls, data, sizes=None, allow_none: bool = True, **param_kwargs):
        """A Param from ``data``: a Param (returned as is), an initializer (called with
        ``sizes``), an array or scalar (wrapped in a :class:`Const`); ``None`` stays ``None``
        when ``allow_none``. The value must broadcast to ``sizes`` when given."""
        if data is None:
            if allow_none:
                return None
            raise ValueError('Expect a parameter with type of float, ArrayType, Initializer, or '
                             'Callable function, but we got None. ')
        if sizes is not None:
            sizes = tuple(_to_size(sizes))
        if not isinstance(data, Param):
            if callable(data):
                if sizes is None:
                    raise AssertionError('When the parameter is a callable function, the size '
                                         'must be provided.')
                data = data(sizes, **param_kwargs)
            if not (u.math.isscalar(data)
                    or isinstance(data, (np.ndarray, jax.Array, u.Quantity))):
                raise TypeError(f'Unknown parameter type: {type(data)}')
            data = Const(data)
        if sizes is not None:
            _check_shape(data.value(), sizes)
        return data


class Const(Param):
    """A non-trainable Param (``fit=True`` is an error)."""

    __module__ = 'brainstate.nn'

    def __init__(self, value, **param_kwargs):
        if param_kwargs.pop('fit', False):
            raise ValueError('Const parameters must be non-trainable (fit=False).')
        super().__init__(value, fit=False, **param_kwargs)


def _check_shape(value, sizes):
    if not _are_broadcastable_shapes(u.math.shape(value), sizes):
        raise ValueError(f'The shape of the parameter {u.math.shape(value)} does not match with '
                         f'the given size {sizes}')


def _to_size(x):
    if isinstance(x, (tuple, list)):
        return tuple(x)
    if isinstance(x, (int, np.integer)):
        return (x,)
    if x is None:
        return None
    raise ValueError(f'Cannot make a size for {x}')


def _are_broadcastable_shapes(shape1, shape2) -> bool:
    for a, b in zip(shape1[::-1], shape2[::-1]):
        if a != b and 1 not in (a, b):
            return False
    return True


def _expand_params_to_match_sizes(params, sizes: Sequence[int]):
    for _ in range(len(sizes) - params.ndim):
        params = u.math.expand_dims(params, axis=0)
    return params
