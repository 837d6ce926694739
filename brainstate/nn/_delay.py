"""Delays: a ring buffer of past values of a signal (a pytree), read ``n`` steps or ``t`` time
units ago, with interpolation between steps.

``Delay(target_info, time)`` keeps ``ceil(time / dt) + 1`` slots (``dt`` from
``brainstate.environ``); ``init_state(batch_size)`` creates the buffer (``history``, a
``DelayState``) and the write pointer; each ``update(value)`` writes one slot.
``retrieve_at_step(n, *indices)`` reads the value written ``n`` updates ago;
``retrieve_at_time(t)`` reads the value at time ``t`` (``environ``'s ``t`` is now), interpolated
by ``interpolation`` (``'linear'``, ``'nearest'``, ``'cubic'``, ``'hermite'``, ``'polynomial2'``,
``'polynomial3'`` or any function registered in :class:`InterpolationRegistry`).

Example::

    brainstate.environ.set(dt=0.1)
    delay = brainstate.nn.Delay(jnp.zeros(100), time=2.0)     # 2 ms at dt = 0.1: 21 slots
    brainstate.nn.init_all_states(delay)
    delay.update(v)               # once per step
    v_2ms_ago = delay.retrieve_at_step(20)
"""

from __future__ import annotations

import numbers
import threading
import warnings
from functools import partial
from typing import Callable, Dict

import brainunit as u
import jax
import jax.numpy as jnp
import numpy as np

from .. import _state, environ
from .._state import ShortTermState, State
from ..graph import Node
from ._collective_ops import call_order
from ._module import Module

__all__ = ['Delay', 'DelayAccess', 'StateWithDelay', 'InterpolationRegistry']

_DELAY_ROTATE = 'rotation'
_DELAY_CONCAT = 'concat'
_INTERP_LINEAR = 'linear_interp'
_INTERP_ROUND = 'round'
INTERP_ALIAS_MAP = {'linear_interp': 'linear', 'round': 'nearest'}

# The buffer's state class: the core's DelayState where it exists.
DelayState = getattr(_state, 'DelayState', ShortTermState)
# The tag that keeps a state out of batching when a model's states are created under vmap.
INIT_NO_BATCHING = 'init_no_batching'


class InterpolationRegistry:
    """Named interpolation functions ``f(history, indices, float_idx, max_length)`` for
    :meth:`Delay.retrieve_at_time`; register your own with :meth:`register`."""

    __module__ = 'brainstate.nn'
    _methods: Dict[str, Callable] = {}

    @classmethod
    def register(cls, name: str, method: Callable):
        """Make ``method`` available as ``interpolation=name``."""
        cls._methods[name] = method

    @classmethod
    def get(cls, name: str) -> Callable:
        """The function registered as ``name``."""
        if name not in cls._methods:
            raise ValueError(f'Unknown interpolation method: {name}. Available methods: '
                             f'{cls.list_methods()}')
        return cls._methods[name]

    @classmethod
    def list_methods(cls) -> list:
        """The registered names."""
        return list(cls._methods)


def _take(history, indices, slot):
    idx = (slot,) + tuple(indices)
    return jax.tree.map(lambda h: h[idx], history)


def _stencil(offsets, weights):
    """An interpolation reading the slots ``floor(float_idx) + offsets`` weighted by
    ``weights(t)``, ``t`` the fractional part."""

    def interpolate(history, indices, float_idx, max_length):
        base = jnp.floor(float_idx).astype(jnp.int32)
        t = float_idx - jnp.floor(float_idx)
        ws = weights(t)
        values = [_take(history, indices, (base + o) % max_length) for o in offsets]
        return jax.tree.map(lambda *vs: sum(w * v for w, v in zip(ws, vs)), *values)

    return interpolate


def _nearest_interpolation(history, indices, float_idx, max_length):
    return _take(history, indices, jnp.round(float_idx).astype(jnp.int32) % max_length)


def _linear_interpolation(history, indices, float_idx, max_length):
    i0 = jnp.floor(float_idx).astype(jnp.int32) % max_length
    i1 = jnp.ceil(float_idx).astype(jnp.int32) % max_length
    t = float_idx - jnp.floor(float_idx)
    return jax.tree.map(lambda a, b: a * (1 - t) + b * t, _take(history, indices, i0),
                        _take(history, indices, i1))


def _hermite_interpolation(history, indices, float_idx, max_length):
    base = jnp.floor(float_idx).astype(jnp.int32)
    t = float_idx - jnp.floor(float_idx)
    vm1, v0, v1, v2 = (_take(history, indices, (base + o) % max_length) for o in (-1, 0, 1, 2))
    h00, h10 = 2 * t ** 3 - 3 * t ** 2 + 1, t ** 3 - 2 * t ** 2 + t
    h01, h11 = -2 * t ** 3 + 3 * t ** 2, t ** 3 - t ** 2
    return jax.tree.map(
        lambda a, b, c, d: h00 * b + h10 * 0.5 * (c - a) + h01 * c + h11 * 0.5 * (d - b),
        vm1, v0, v1, v2)


# Catmull-Rom cubic and Lagrange polynomials through the neighbouring slots.
_cubic_interpolation = _stencil((-1, 0, 1, 2), lambda t: (
    -0.5 * t ** 3 + t ** 2 - 0.5 * t, 1.5 * t ** 3 - 2.5 * t ** 2 + 1.0,
    -1.5 * t ** 3 + 2.0 * t ** 2 + 0.5 * t, 0.5 * t ** 3 - 0.5 * t ** 2))
_polynomial2_interpolation = _stencil((-1, 0, 1), lambda t: (
    0.5 * t * (t - 1), (1 - t) * (1 + t), 0.5 * t * (t + 1)))
_polynomial3_interpolation = _stencil((-1, 0, 1, 2), lambda t: (
    -t * (t - 1) * (t - 2) / 6, (t + 1) * (t - 1) * (t - 2) / 2,
    -t * (t + 1) * (t - 2) / 2, t * (t + 1) * (t - 1) / 6))

for _name, _fun in [('nearest', _nearest_interpolation), ('round', _nearest_interpolation),
                    ('linear', _linear_interpolation), ('linear_interp', _linear_interpolation),
                    ('cubic', _cubic_interpolation), ('hermite', _hermite_interpolation),
                    ('polynomial2', _polynomial2_interpolation),
                    ('polynomial3', _polynomial3_interpolation)]:
    InterpolationRegistry.register(_name, _fun)


def _get_delay(delay_time, dt):
    """``(time, steps)`` with ``steps = ceil(time / dt)`` (``(0, 0)`` for ``None``)."""
    if delay_time is None:
        return 0.0 * dt, 0
    steps = delay_time / dt
    if u.get_dim(steps) != u.DIMENSIONLESS:
        raise AssertionError(f'The time_and_idx should have time dimension. Got delay time unit '
                             f'{u.get_unit(delay_time)}, and dt unit {u.get_unit(dt)}.')
    return delay_time, jnp.ceil(steps).astype(environ.ditype())


def _jit_error_if(pred, fun, *args):
    from .. import transform
    check = getattr(transform, 'jit_error_if', None)
    if check is not None:
        check(pred, fun, *args)
    elif not isinstance(pred, jax.core.Tracer) and bool(jnp.any(pred)):
        fun(*args)    # without jit_error_if: the check runs where the values are concrete


class DelayAccess(Node):
    """A named read of a :class:`Delay` at a fixed delay (calling it returns the value)."""

    __module__ = 'brainstate.nn'

    def __init__(self, delay: 'Delay', *time, entry: str):
        super().__init__()
        if not isinstance(delay, Delay):
            raise AssertionError('The input delay should be an instance of Delay.')
        self.delay = delay
        self._delay_entry = entry
        self.delay_info = delay.register_entry(entry, *time)

    def __call__(self, *args, **kwargs):
        return self.delay.at(self._delay_entry)


class Delay(Module):
    """A ring buffer of the past values of a signal shaped like ``target_info``.

    Args:
      target_info: a pytree of arrays (or ``ShapeDtypeStruct``s) giving each leaf's shape.
      time: the longest delay needed (grown by :meth:`register_delay`); ``None``: 0.
      init: the buffer's initial content: an array, a number or ``f(shape, dtype=...)``.
      entries: ``{name: time or (time, *indices)}`` registered at once.
      interpolation: how :meth:`retrieve_at_time` reads between slots.
      take_aware_unit: remember the unit of the first value written and give it back.
      update_every: write one slot every ``update_every`` time units (a multiple of ``dt``).
    """

    __module__ = 'brainstate.nn'

    def __init__(self, target_info, time=None, init=None, entries: Dict | None = None,
                 interpolation=None, take_aware_unit: bool = False, update_every=None,
                 delay_method: str | None = _DELAY_ROTATE, interp_method: str = _INTERP_LINEAR):
        super().__init__()
        self.target_info = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                        target_info)
        if delay_method == _DELAY_CONCAT:
            warnings.warn("delay_method='concat' is deprecated. The unified ring buffer "
                          "implementation now uses rotation for all delays, providing better "
                          "performance.", DeprecationWarning, stacklevel=2)
        self.delay_method = _DELAY_ROTATE
        if interpolation is None:
            interpolation = INTERP_ALIAS_MAP.get(interp_method, interp_method)
        if isinstance(interpolation, str):
            if interpolation not in InterpolationRegistry.list_methods():
                raise ValueError(f'Unknown interpolation method: {interpolation}. Available '
                                 f'methods: {InterpolationRegistry.list_methods()}')
        elif not callable(interpolation):
            raise TypeError(f'interpolation must be str or callable, got {type(interpolation)}')
        self.interp_method = interpolation
        with jax.ensure_compile_time_eval():
            slot = environ.get_dt() if update_every is None else update_every
            self.max_time, steps = _get_delay(time, slot)
            self.max_length = steps + 1
        if init is not None and not isinstance(init, (numbers.Number, jax.Array, np.ndarray,
                                                      Callable)):
            raise TypeError(f'init should be Array, Callable, or None. But got {init}')
        self._init = init
        self.take_aware_unit = take_aware_unit
        self._unit = None
        with jax.ensure_compile_time_eval():
            if update_every is not None:
                if update_every < environ.get_dt():
                    raise ValueError(f'update_every must be >= dt ({environ.get_dt()}), got '
                                     f'{update_every}')
                self.update_every = update_every
                self.update_every_step = int(update_every / environ.get_dt())
            else:
                self.update_every = None
                self.update_every_step = 1
        self._registered_entries = {}
        for entry, spec in (entries or {}).items():
            self.register_entry(entry, *(spec if isinstance(spec, (tuple, list)) else (spec,)))
        self._update_lock = threading.RLock()
        self._retrieve_lock = threading.RLock()

    # -- the buffer --------------------------------------------------------------------------

    def _f_to_init(self, leaf, batch_size, length):
        shape = [length] + ([batch_size] if batch_size is not None else []) + list(leaf.shape)
        if isinstance(self._init, (jax.Array, np.ndarray, numbers.Number)):
            return jnp.broadcast_to(jnp.asarray(self._init, leaf.dtype), shape)
        if callable(self._init):
            return self._init(shape, dtype=leaf.dtype)
        return jnp.zeros(shape, leaf.dtype)

    def _initial_history(self, batch_size):
        fill = partial(self._f_to_init, length=self.max_length, batch_size=batch_size)
        return jax.tree.map(fill, self.target_info)

    @call_order(3)
    def init_state(self, batch_size: int | None = None, **kwargs):
        """Create the buffer (``max_length`` slots) and the write pointer."""
        self.write_ptr = ShortTermState(jnp.array(0, dtype=environ.ditype()),
                                        tag=INIT_NO_BATCHING)
        self.history = DelayState(self._initial_history(batch_size))

    def reset_state(self, batch_size: int | None = None, **kwargs):
        """Refill the buffer with its initial content and rewind the pointer."""
        self.write_ptr.value = jnp.array(0, dtype=environ.ditype())
        self.history.value = self._initial_history(batch_size)

    # -- delays ----------------------------------------------------------------------------

    def register_delay(self, *time_and_idx):
        """Make room for a delay of ``time_and_idx[0]`` (the rest are integer indices into a
        value); returns ``(steps, *indices)``, or ``None`` for a time of ``None``."""
        if len(time_and_idx) < 1:
            raise AssertionError('You should provide at least one delay time.')
        for index in time_and_idx[1:]:
            if not jnp.issubdtype(u.math.get_dtype(index), jnp.integer):
                raise AssertionError(f'The index should be integer. But got {index}.')
        if time_and_idx[0] is None:
            return None
        with jax.ensure_compile_time_eval():
            slot = environ.get_dt() if self.update_every is None else self.update_every
            time, steps = _get_delay(time_and_idx[0], slot)
            self.max_time = u.math.maximum(self.max_time, u.math.max(time))
            longest = jnp.max(steps)
            if self.max_length <= longest + 1:
                self.max_length = int(longest + 1)
            return (steps, *time_and_idx[1:])

    def register_entry(self, entry: str, *time_and_idx):
        """Register a named delay (read later with :meth:`at`)."""
        if entry in self._registered_entries:
            raise KeyError(f'Entry {entry} has been registered. The existing delay for the key '
                           f'{entry} is {self._registered_entries[entry]}. The new delay for the '
                           f'key {entry} is {time_and_idx}. You can use another key. ')
        info = self.register_delay(*time_and_idx)
        self._registered_entries[entry] = info
        return info

    def access(self, entry: str, *time_and_idx) -> DelayAccess:
        """A :class:`DelayAccess` registering ``entry``."""
        return DelayAccess(self, *time_and_idx, entry=entry)

    def at(self, entry: str):
        """The value of the named delay ``entry``."""
        if not isinstance(entry, str):
            raise AssertionError(f'entry should be a string for describing the entry of the '
                                 f'delay data. But we got {entry}.')
        if entry not in self._registered_entries:
            raise KeyError(f'Does not find delay entry "{entry}".')
        info = self._registered_entries[entry]
        return self.retrieve_at_step(*(info if info is not None else (0,)))

    def retrieve_at_step(self, delay_step, *indices):
        """The value written ``delay_step`` updates ago (0: the latest), indexed by
        ``indices``."""
        with self._retrieve_lock:
            return self._retrieve_at_step_impl(delay_step, *indices)

    def _retrieve_at_step_impl(self, delay_step, *indices):
        if getattr(self, 'history', None) is None:
            raise AssertionError('The delay history is not initialized: call init_state() (or '
                                 'brainstate.nn.init_all_states) first.')
        if delay_step is None:
            raise AssertionError('The delay step should be given.')
        if environ.get(environ.JIT_ERROR_CHECK, False):
            def too_long(n):
                raise ValueError(f'The request delay length should be less than the maximum '
                                 f'delay {self.max_length - 1}. But we got {n}')
            _jit_error_if(delay_step >= self.max_length, too_long, delay_step)
        latest = (self.write_ptr.value - 1) // self.update_every_step
        slot = jnp.asarray((latest - delay_step) % self.max_length, dtype=jnp.int32)
        slot = jax.lax.stop_gradient(slot)
        index = (slot,) + tuple(indices)
        if self._unit is None:
            return jax.tree.map(lambda h: h[index], self.history.value)
        return jax.tree.map(lambda h, unit: u.maybe_decimal(u.get_mantissa(h[index]) * unit),
                            self.history.value, self._unit, is_leaf=u.math.is_quantity)

    def retrieve_at_time(self, delay_time, *indices):
        """The value at time ``delay_time`` (``environ``'s ``t`` is the current time),
        interpolated between slots."""
        if getattr(self, 'history', None) is None:
            raise AssertionError('The delay history is not initialized.')
        if delay_time is None:
            raise AssertionError('The delay time should be given.')
        now = environ.get(environ.T, desc='The current time.')
        dt = environ.get_dt()
        if environ.get(environ.JIT_ERROR_CHECK, False):
            def out_of_range(t_now, t_delay):
                raise ValueError(f'The request delay time should be within '
                                 f'[{t_now - self.max_time - dt}, {t_now}], but we got {t_delay}')
            _jit_error_if(jnp.logical_or(delay_time > now, delay_time < now - self.max_time - dt),
                          out_of_range, now, delay_time)
        slot_dt = dt if self.update_every is None else self.update_every
        steps = (now - delay_time) / slot_dt
        method = self.interp_method
        if method in ('linear', _INTERP_LINEAR):
            a = self.retrieve_at_step(jnp.asarray(jnp.floor(steps), dtype=jnp.int32), *indices)
            b = self.retrieve_at_step(jnp.asarray(jnp.ceil(steps), dtype=jnp.int32), *indices)
            t = steps - jnp.floor(steps)
            return jax.tree.map(lambda x, y: x * (1 - t) + y * t, a, b)
        if method in ('nearest', _INTERP_ROUND):
            return self.retrieve_at_step(jnp.asarray(jnp.round(steps), dtype=jnp.int32),
                                         *indices)
        latest = (self.write_ptr.value - 1) // self.update_every_step
        fun = InterpolationRegistry.get(method) if isinstance(method, str) else method
        return fun(self.history.value, indices, latest - steps, self.max_length)

    # -- writing -------------------------------------------------------------------------------

    def _write_to_buffer(self, value) -> None:
        slot = jax.lax.stop_gradient(jnp.asarray(self.write_ptr.value // self.update_every_step,
                                                 dtype=environ.dutype()))
        self.history.value = jax.tree.map(lambda h, v: h.at[slot].set(v), self.history.value,
                                          value)

    def _advance_write_ptr(self) -> None:
        self.write_ptr.value = (self.write_ptr.value + 1) % (self.max_length
                                                             * self.update_every_step)

    def update(self, current) -> None:
        """Write ``current`` as the newest value (every ``update_every`` when set)."""
        with self._update_lock:
            if getattr(self, 'history', None) is None:
                raise AssertionError('The delay history is not initialized.')
            if self.take_aware_unit and self._unit is None:
                self._unit = jax.tree.map(u.get_unit, current, is_leaf=u.math.is_quantity)
            if self.update_every is None:
                self._write_to_buffer(current)
            else:
                from ..transform import cond
                cond(self.write_ptr.value % self.update_every_step == 0,
                     lambda: self._write_to_buffer(current), lambda: None)
            self._advance_write_ptr()


class StateWithDelay(Delay):
    """A Delay of a module's state ``target.<item>``: each ``update()`` records the state's
    current value (registered by :meth:`Dynamics.prefetch_delay`)."""

    __module__ = 'brainstate.nn'

    def __init__(self, target: Node, item: str, init=None, interpolation=_INTERP_ROUND,
                 **kwargs):
        super().__init__(None, init=init, interpolation=interpolation, **kwargs)
        self._target = target
        self._target_term = item

    @property
    def state(self) -> State:
        """The recorded state."""
        state = getattr(self._target, self._target_term)
        if not isinstance(state, State):
            raise TypeError(f'The term "{self._target_term}" in the module "{self._target}" is '
                            f'not a State.')
        return state

    @call_order(3)
    def init_state(self, *args, **kwargs):
        self.target_info = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                        self.state.value)
        super().init_state(*args, **kwargs)

    def update(self, *args) -> None:
        return super().update(self.state.value)
