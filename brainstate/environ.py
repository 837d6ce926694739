"""The computing environment: global settings (``dt``, ``precision``, ``fit``, ...) and
temporary overrides.

Settings are a dictionary shared by all threads (:func:`set`, :func:`get`, :func:`pop`);
:func:`context` overrides some of them for a ``with`` block, in the calling thread only, and
contexts nest. Layers and user code read them: ``environ.get_dt()`` is the integration step,
``environ.dftype()`` the default float type for the current ``precision``.

Example::

    import brainstate
    brainstate.environ.set(dt=0.1, precision=32)
    with brainstate.environ.context(dt=0.01, fit=True):
        ...                                   # brainstate.environ.get_dt() == 0.01 here
    brainstate.environ.get_dt()               # 0.1 again

``precision`` (8, 16, 32, 64 or ``'bf16'``) chooses the default dtypes; setting it on the
global environment also switches JAX's 64-bit mode (``jax_enable_x64``) on for 64, off for the
others.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import itertools
import os
import re
import threading
import warnings
from collections import defaultdict
from typing import Any, Callable, Dict, Hashable, List, Optional, Union

import jax.numpy as jnp
import numpy as np
from jax import config, devices

__all__ = [
    'set', 'get', 'all', 'pop', 'reset', 'context',
    'set_platform', 'get_platform', 'set_host_device_count', 'get_host_device_count',
    'set_precision', 'get_precision', 'dftype', 'ditype', 'dutype', 'dctype', 'get_dt',
    'tolerance', 'register_default_behavior', 'unregister_default_behavior',
    'list_registered_behaviors',
    'DEFAULT_PRECISION', 'SUPPORTED_PLATFORMS', 'SUPPORTED_PRECISIONS',
    'I', 'T', 'DT', 'PRECISION', 'PLATFORM', 'HOST_DEVICE_COUNT', 'JIT_ERROR_CHECK', 'FIT',
    'EnvironmentState',
]

PrecisionType = Union[int, str]

# Names of the well-known settings.
I = 'i'  # index of the current step
T = 't'  # current time
DT = 'dt'  # integration time step
PRECISION = 'precision'
PLATFORM = 'platform'
HOST_DEVICE_COUNT = 'host_device_count'
JIT_ERROR_CHECK = 'jit_error_check'
FIT = 'fit'  # whether the model is being fitted (trained)

DEFAULT_PRECISION = 32
SUPPORTED_PLATFORMS = ('cpu', 'gpu', 'tpu')
SUPPORTED_PRECISIONS = (8, 16, 32, 64, 'bf16')

_MISSING = object()


class _ThreadContexts(threading.local):
    def __init__(self):
        self.stacks = defaultdict(list)
        # Stamp of this thread's last context change (0: none yet), and the recorders of the
        # traces running in this thread (see "What traces read" below).
        self.stamp = 0
        self.recorders = []


class EnvironmentState:
    """One environment: ``settings`` (shared by all threads), ``contexts`` (the calling
    thread's stack of :func:`context` overrides per key), ``functions`` (the behaviours
    registered per key) and ``locks`` (a re-entrant lock per key).

    Every function of this module takes ``env=`` to work on an isolated environment instead of
    the global one (handy in tests).
    """

    def __init__(self, settings: Optional[dict] = None, functions: Optional[dict] = None):
        self.settings: Dict[Hashable, Any] = dict(settings or {})
        self.settings.setdefault(PRECISION, DEFAULT_PRECISION)
        self.functions: Dict[Hashable, Callable] = dict(functions or {})
        self.locks = defaultdict(threading.RLock)
        self._contexts = _ThreadContexts()

    @property
    def contexts(self) -> defaultdict:
        """This thread's override stacks, ``{key: [outer, ..., innermost]}``."""
        return self._contexts.stacks

    def __repr__(self):
        return f'EnvironmentState(settings={self.settings!r})'


_ENV_STATE = EnvironmentState()

# -- What traces read ------------------------------------------------------------------------
# A compiled program is valid for the settings its trace read (``dt``, ``fit``...): the
# transforms' caches record them (``_recording``) and check them before reusing a program
# (``brainstate.transform._environ_key``). The check is cheap when nothing changed: each change
# bumps a stamp, global settings (``set``, ``pop``...) the global one, a ``context`` the calling
# thread's, all drawn from one counter, so ``_view_stamp()`` is the same pair exactly while
# this thread's view of the settings cannot have changed.
_STAMPS = itertools.count(1)
_GLOBAL_STAMP = [0]


def _changed_globally() -> None:
    # (After the change, never before: a reader that saw the new stamp sees the new values.)
    _GLOBAL_STAMP[0] = next(_STAMPS)


def _view_stamp() -> tuple:
    """Equal to an earlier result only if no setting this thread sees changed in between."""
    return _GLOBAL_STAMP[0], _ENV_STATE._contexts.stamp


def _current(key):
    """The value of ``key`` in force in this thread (``_MISSING`` if unset), not recorded."""
    env = _ENV_STATE
    stack = env._contexts.stacks.get(key)
    if stack:
        return stack[-1]
    return env.settings.get(key, _MISSING)


class _Recorder:
    """The settings one trace reads, as they stand outside it: a ``context`` the traced function
    enters itself is part of the function, so a read under it records the value outside."""

    __slots__ = ('reads', 'depths', 'stamp')

    def __init__(self, env):
        self.reads: Dict[Hashable, Any] = {}
        self.depths = {key: len(stack) for key, stack in env._contexts.stacks.items()}
        self.stamp = _view_stamp()

    def record(self, env, key):
        if key in self.reads or key in (PLATFORM, HOST_DEVICE_COUNT):
            return
        depth = self.depths.get(key, 0)
        stack = env._contexts.stacks.get(key)
        if depth and stack and len(stack) >= depth:
            self.reads[key] = stack[depth - 1]
        else:
            self.reads[key] = env.settings.get(key, _MISSING)


def _record_read(env, key) -> None:
    if env is not _ENV_STATE:
        return
    for recorder in env._contexts.recorders:
        recorder.record(env, key)


@contextlib.contextmanager
def _recording():
    """Record the global environment's settings read in this thread while the block runs.

    Yields a :class:`_Recorder`: ``.reads`` maps each key read to its value outside the block
    (``_MISSING`` when unset), ``.stamp`` is the view stamp at the start."""
    env = _ENV_STATE
    recorder = _Recorder(env)
    recorders = env._contexts.recorders
    recorders.append(recorder)
    try:
        yield recorder
    finally:
        recorders.remove(recorder)


def _replay_reads(keys) -> None:
    """Count ``keys`` (read by a program reused without tracing) as read by the traces running
    in this thread."""
    env = _ENV_STATE
    if env._contexts.recorders:
        for key in keys:
            _record_read(env, key)


def _env(env):
    return _ENV_STATE if env is None else env


def _call_behavior(env, key, value, what='Callback'):
    function = env.functions.get(key)
    if function is None:
        return
    try:
        function(value)
    except Exception as e:  # a behaviour must never break setting a value
        warnings.warn(f"{what} for '{key}' raised an exception: {e}", RuntimeWarning)


def reset(*, env: Optional[EnvironmentState] = None) -> None:
    """Forget every setting, context and registered behaviour; ``precision`` goes back to
    :data:`DEFAULT_PRECISION` (and JAX's 64-bit mode off, for the global environment).
    Warns, since it cannot be undone."""
    global _ENV_STATE
    if env is None or env is _ENV_STATE:
        _ENV_STATE = EnvironmentState()
        _set_jax_precision(DEFAULT_PRECISION)
    else:
        env.settings.clear()
        env.contexts.clear()
        env.functions.clear()
        env.locks.clear()
        env.settings[PRECISION] = DEFAULT_PRECISION
    _changed_globally()
    warnings.warn('Environment has been reset to default settings. All custom configurations '
                  'have been cleared.', UserWarning)


@contextlib.contextmanager
def context(*, env: Optional[EnvironmentState] = None, **kwargs):
    """Override settings for the duration of a ``with`` block, in this thread only.

    Yields the settings in force inside the block (as :func:`all`). Contexts nest; on exit (also
    by an exception) the previous values come back and their registered behaviours run again.
    ``platform`` and ``host_device_count`` are process-wide and cannot be overridden here:
    use :func:`set`.

    Example::

        with brainstate.environ.context(dt=0.01, precision=64):
            brainstate.environ.dftype()   # float64
    """
    env = _env(env)
    for key in (PLATFORM, HOST_DEVICE_COUNT):
        if key in kwargs:
            raise ValueError(f"Cannot set '{key}' in context: it is a process-wide setting. "
                             f"Use set({key}=...) (or set_{key}()) instead.")
    original_precision = None
    if PRECISION in kwargs:
        _validate_precision(kwargs[PRECISION])
        original_precision = get(PRECISION, default=DEFAULT_PRECISION, env=env)
        if env is _ENV_STATE:
            _set_jax_precision(kwargs[PRECISION])
    pushed = []
    try:
        for key, value in kwargs.items():
            with env.locks[key]:
                env.contexts[key].append(value)
                pushed.append(key)
            env._contexts.stamp = next(_STAMPS)
            _call_behavior(env, key, value)
        yield _all_settings(env)
    finally:
        for key in reversed(pushed):
            with env.locks[key]:
                stack = env.contexts.get(key)
                if stack:
                    stack.pop()
                if not stack:
                    env.contexts.pop(key, None)
                env._contexts.stamp = next(_STAMPS)
                if key in env.functions:
                    previous = get(key, default=None, env=env)
                    if previous is not None:
                        _call_behavior(env, key, previous, 'Callback restoration')
        if original_precision is not None and env is _ENV_STATE:
            _set_jax_precision(original_precision)


def get(key: str, default: Any = _MISSING, desc: Optional[str] = None, *,
        env: Optional[EnvironmentState] = None) -> Any:
    """The value of setting ``key``: the innermost :func:`context` override of this thread,
    else the global setting, else ``default``.

    Raises:
      KeyError: the key is not set and no ``default`` is given (``desc`` describes it in the
        message).
    """
    env = _env(env)
    if key == PLATFORM:
        return get_platform()
    if key == HOST_DEVICE_COUNT:
        return get_host_device_count()
    if env._contexts.recorders:
        _record_read(env, key)
    with env.locks[key]:
        stack = env.contexts.get(key)
        if stack:
            return stack[-1]
    if key in env.settings:
        return env.settings[key]
    if default is _MISSING:
        message = f"Key '{key}' not found in environment."
        if desc:
            message += f' Description: {desc}'
        message += (f'\nSet it using:\n  - brainstate.environ.set({key}=value) for a global '
                    f'setting\n  - brainstate.environ.context({key}=value) for a temporary one')
        raise KeyError(message)
    return default


def all(*, env: Optional[EnvironmentState] = None) -> Dict[str, Any]:
    """Every setting in force in this thread (global settings updated by context overrides)."""
    env = _env(env)
    result = _all_settings(env)
    if env._contexts.recorders:
        for key in result:
            _record_read(env, key)
    return result


def _all_settings(env: EnvironmentState) -> Dict[str, Any]:
    result = dict(env.settings)
    for key, stack in list(env.contexts.items()):
        if stack:
            result[key] = stack[-1]
    return result


def pop(key: str, default: Any = _MISSING, *, env: Optional[EnvironmentState] = None) -> Any:
    """Remove the global setting ``key`` and return its value (``default`` if absent).

    Registered behaviours are not called. A key overridden by an active :func:`context`
    cannot be popped (``ValueError``): leave the context first.
    """
    env = _env(env)
    with env.locks[key]:
        stack = env.contexts.get(key)
        if stack:
            raise ValueError(f"Cannot pop key '{key}' while it is active in a context. The key "
                             f"is currently overridden in {len(stack)} context(s); pop it after "
                             f"leaving them.")
        if key in env.settings:
            value = env.settings.pop(key)
            _changed_globally()
            return value
    if default is _MISSING:
        raise KeyError(f"Key '{key}' not found in global environment settings.")
    return default


def set(platform: Optional[str] = None, host_device_count: Optional[int] = None,
        precision: Optional[PrecisionType] = None, dt: Optional[float] = None, *,
        env: Optional[EnvironmentState] = None, **kwargs) -> None:
    """Set global settings, e.g. ``set(dt=0.1, precision=64, fit=True)``.

    ``platform`` and ``host_device_count`` configure JAX (see :func:`set_platform`,
    :func:`set_host_device_count`); ``precision`` is validated and switches JAX's 64-bit mode;
    ``dt`` must be a scalar. Registered behaviours run for every key set.
    """
    env = _env(env)
    if platform is not None:
        set_platform(platform)
    if host_device_count is not None:
        set_host_device_count(host_device_count)
    if precision is not None:
        _validate_precision(precision)
        if env is _ENV_STATE:
            _set_jax_precision(precision)
        kwargs[PRECISION] = precision
    if dt is not None:
        if np.ndim(dt) != 0 or isinstance(dt, (str, bytes)):
            raise TypeError(f"'{DT}' must be a scalar number, got {type(dt)}")
        kwargs[DT] = dt
    env.settings.update(kwargs)
    _changed_globally()
    for key, value in kwargs.items():
        _call_behavior(env, key, value)


def get_dt(*, env: Optional[EnvironmentState] = None) -> float:
    """The integration time step ``dt`` (``KeyError`` if it was never set)."""
    return get(DT, env=env)


def get_platform() -> str:
    """The platform JAX computes on by default: ``'cpu'``, ``'gpu'`` or ``'tpu'``."""
    return devices()[0].platform


def get_host_device_count() -> int:
    """The number of host (CPU) devices requested through ``XLA_FLAGS`` (1 if none)."""
    match = re.search(r'--xla_force_host_platform_device_count=(\d+)', os.getenv('XLA_FLAGS', ''))
    return int(match.group(1)) if match else 1


def set_platform(platform: str) -> None:
    """Make JAX compute on ``platform`` (``'cpu'``, ``'gpu'`` or ``'tpu'``)."""
    if platform not in SUPPORTED_PLATFORMS:
        raise ValueError(f"Platform must be one of {SUPPORTED_PLATFORMS}, got '{platform}'")
    config.update('jax_platform_name', platform)
    if PLATFORM in _ENV_STATE.functions:
        _ENV_STATE.functions[PLATFORM](platform)


def set_host_device_count(n: int) -> None:
    """Ask XLA for ``n`` host (CPU) devices, by rewriting ``XLA_FLAGS``. Takes effect only if
    called before JAX initializes its backends."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f'Host device count must be a positive integer, got {n}')
    flags = re.sub(r'--xla_force_host_platform_device_count=\S+', '',
                   os.getenv('XLA_FLAGS', '')).split()
    os.environ['XLA_FLAGS'] = ' '.join([f'--xla_force_host_platform_device_count={n}'] + flags)
    if HOST_DEVICE_COUNT in _ENV_STATE.functions:
        _ENV_STATE.functions[HOST_DEVICE_COUNT](n)


def set_precision(precision: PrecisionType, *, env: Optional[EnvironmentState] = None) -> None:
    """Set the default numeric precision: 8, 16, 32, 64 or ``'bf16'``."""
    env = _env(env)
    _validate_precision(precision)
    if env is _ENV_STATE:
        _set_jax_precision(precision)
    env.settings[PRECISION] = precision
    _changed_globally()
    if PRECISION in env.functions:
        env.functions[PRECISION](precision)


def get_precision(*, env: Optional[EnvironmentState] = None) -> int:
    """The precision in bits (``'bf16'`` counts as 16)."""
    precision = get(PRECISION, default=DEFAULT_PRECISION, env=env)
    if precision == 'bf16':
        return 16
    if isinstance(precision, str):
        return int(precision)
    if isinstance(precision, int):
        return precision
    raise ValueError(f'Invalid precision type: {type(precision)}')


def _validate_precision(precision) -> None:
    if isinstance(precision, bool) or precision not in SUPPORTED_PRECISIONS:
        raise ValueError(f'Unsupported precision: {precision!r}. Use one of '
                         f'{SUPPORTED_PRECISIONS}.')


def _current_precision(env=None):
    return get(PRECISION, default=DEFAULT_PRECISION, env=env)


def _set_jax_precision(precision) -> None:
    config.update('jax_enable_x64', precision in (64, '64'))


@functools.lru_cache(maxsize=16)
def _get_uint(precision):
    table = {64: np.uint64, 32: np.uint32, 16: np.uint16, 'bf16': np.uint16, 8: np.uint8}
    return _lookup(table, precision)


@functools.lru_cache(maxsize=16)
def _get_int(precision):
    table = {64: np.int64, 32: np.int32, 16: np.int16, 'bf16': np.int16, 8: np.int8}
    return _lookup(table, precision)


@functools.lru_cache(maxsize=16)
def _get_float(precision):
    table = {64: np.float64, 32: np.float32, 16: np.float16, 'bf16': jnp.bfloat16,
             8: jnp.float8_e5m2}
    return _lookup(table, precision)


@functools.lru_cache(maxsize=16)
def _get_complex(precision):
    table = {64: np.complex128, 32: np.complex64, 16: np.complex64, 'bf16': np.complex64,
             8: np.complex64}
    return _lookup(table, precision)


def _lookup(table, precision):
    if isinstance(precision, str) and precision != 'bf16' and precision.isdigit():
        precision = int(precision)
    try:
        return table[precision]
    except (KeyError, TypeError):
        raise ValueError(f'Unsupported precision: {precision!r}') from None


def dftype(*, env: Optional[EnvironmentState] = None):
    """The default float dtype for the current precision (``float32`` at 32 bits)."""
    return _get_float(_current_precision(env))


def ditype(*, env: Optional[EnvironmentState] = None):
    """The default signed integer dtype for the current precision."""
    return _get_int(_current_precision(env))


def dutype(*, env: Optional[EnvironmentState] = None):
    """The default unsigned integer dtype for the current precision."""
    return _get_uint(_current_precision(env))


def dctype(*, env: Optional[EnvironmentState] = None):
    """The default complex dtype: ``complex128`` at 64 bits, ``complex64`` otherwise."""
    return _get_complex(_current_precision(env))


def tolerance(*, env: Optional[EnvironmentState] = None) -> np.ndarray:
    """A numerical tolerance for the current precision, as a NumPy scalar of that precision's
    float type: 1e-12 at 64 bits, 1e-5 at 32, 1e-2 below."""
    precision = get_precision(env=env)
    if precision == 64:
        return np.asarray(1e-12, dtype=np.float64)
    if precision == 32:
        return np.asarray(1e-5, dtype=np.float32)
    return np.asarray(1e-2, dtype=np.float16)


def register_default_behavior(key: str, behavior: Callable[[Any], None],
                              replace_if_exist: bool = False, *,
                              env: Optional[EnvironmentState] = None) -> None:
    """Call ``behavior(value)`` whenever ``key`` is set (by :func:`set` or on entering and
    leaving a :func:`context`). An exception raised by it becomes a ``RuntimeWarning``.

    Raises:
      TypeError: ``key`` is not a string or ``behavior`` not callable.
      ValueError: ``key`` has a behaviour already and ``replace_if_exist`` is false.
    """
    env = _env(env)
    if not isinstance(key, str):
        raise TypeError(f'Key must be a string, got {type(key).__name__}.')
    if not callable(behavior):
        raise TypeError(f'Behavior must be callable, got {type(behavior).__name__}.')
    with env.locks[key]:
        if key in env.functions and not replace_if_exist:
            raise ValueError(f"Behavior for key '{key}' is already registered. Pass "
                             f"replace_if_exist=True to replace it.")
        env.functions[key] = behavior


def unregister_default_behavior(key: str, *, env: Optional[EnvironmentState] = None) -> bool:
    """Remove the behaviour of ``key``; returns whether there was one."""
    env = _env(env)
    with env.locks[key]:
        return env.functions.pop(key, None) is not None


def list_registered_behaviors(*, env: Optional[EnvironmentState] = None) -> List[str]:
    """The keys that have a registered behaviour."""
    return builtins.list(_env(env).functions)
