"""Hooks on State operations: callbacks run when a state is read, written, restored or created.

Register them on one state (``state.register_hook('write_before', fn)``) or on every state
(``brainstate.register_state_hook('read', fn)``). A hook receives a context object describing
the operation (:class:`ReadHookContext`, :class:`MutableWriteHookContext`, ...). A
``write_before`` hook may replace the value being written (``ctx.transformed_value = ...``) or
cancel the write (``ctx.cancel = True``, which raises :class:`HookCancellationError` and leaves
the state unchanged).

Hooks cost nothing while none is registered: ``State.value`` only enters the observed path
(see ``brainstate/_state_observe.py``) while some hook, trace stack or catcher is active.

Hooks run on eager reads and writes. Inside a brainstate transform they run while the function
is traced (with traced values), not at every call of the compiled program.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Literal, Optional

from ._errors import BrainStateError

__all__ = [
    'Hook', 'HookHandle', 'HookError', 'HookExecutionError', 'HookRegistrationError',
    'HookCancellationError', 'HookWarning', 'HookConfig', 'HookManager', 'HookContext',
    'ReadHookContext', 'WriteHookContext', 'MutableWriteHookContext', 'RestoreHookContext',
    'InitHookContext', 'GlobalHookRegistry', 'register_state_hook', 'unregister_state_hook',
    'clear_state_hooks', 'has_state_hooks', 'list_state_hooks',
]

HOOK_TYPES = ('read', 'write_before', 'write_after', 'restore', 'init')
HookType = Literal['read', 'write_before', 'write_after', 'restore', 'init']


class HookError(BrainStateError):
    """Base class of the errors of the hook system."""


class HookRegistrationError(HookError):
    """A hook could not be registered (unknown hook type, callback not callable)."""


class HookExecutionError(HookError):
    """A hook raised an exception (the original is its ``__cause__``)."""


class HookCancellationError(HookError):
    """A ``write_before`` hook cancelled the write; the state keeps its value."""


class HookWarning(UserWarning):
    """A hook failed and the manager is configured to warn (``on_error='log'``)."""


# -- contexts -----------------------------------------------------------------------------------

@dataclass
class HookContext:
    """What a hook is told: the ``operation``, a weak reference to the state, when it happened
    and a free ``metadata`` dict."""
    operation: str
    state_ref: Any
    timestamp: float = field(default_factory=time.time)
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def state(self):
        """The state, or ``None`` if it has been garbage collected."""
        return self.state_ref() if self.state_ref is not None else None

    @property
    def state_name(self) -> Optional[str]:
        """The state's name (``None`` if unnamed or gone)."""
        state = self.state
        return None if state is None else getattr(state, 'name', None)


@dataclass
class ReadHookContext(HookContext):
    """Context of a ``read`` hook: ``value`` is the value read."""
    value: Any = None


@dataclass
class WriteHookContext(HookContext):
    """Context of a ``write_after`` hook: the new ``value`` and the ``old_value``."""
    value: Any = None
    old_value: Any = None


@dataclass
class MutableWriteHookContext(WriteHookContext):
    """Context of a ``write_before`` hook. Set ``transformed_value`` to write something else
    (the next hook sees it), or ``cancel = True`` (with a ``cancel_reason``) to refuse the write.
    """
    transformed_value: Optional[Any] = None
    cancel: bool = False
    cancel_reason: Optional[str] = None


@dataclass
class RestoreHookContext(WriteHookContext):
    """Context of a ``restore`` hook (``state.restore_value(...)``)."""


@dataclass
class InitHookContext(HookContext):
    """Context of an ``init`` hook: the initial ``value`` and ``init_metadata`` (name, tag...)."""
    value: Any = None
    init_metadata: Dict[str, Any] = field(default_factory=dict)


# -- hooks and handles --------------------------------------------------------------------------

_hook_ids = itertools.count()


class Hook:
    """A registered callback. Hooks run by descending ``priority``, then registration order."""

    def __init__(self, callback: Callable[[HookContext], Any], priority: int = 0,
                 name: Optional[str] = None, enabled: bool = True):
        if not callable(callback):
            raise HookRegistrationError(f'Hook callback must be callable, got {type(callback)}')
        self.hook_id = next(_hook_ids)
        self.callback = callback
        self.priority = priority
        self.name = name or f'hook_{self.hook_id}'
        self.enabled = enabled
        self._error_count = 0

    def execute(self, context: HookContext):
        """Run the callback (nothing if disabled); its exception becomes a
        :class:`HookExecutionError`."""
        if not self.enabled:
            return None
        try:
            return self.callback(context)
        except Exception as e:
            raise HookExecutionError(f"Hook '{self.name}' execution failed") from e

    def __lt__(self, other: 'Hook') -> bool:
        if self.priority != other.priority:
            return self.priority > other.priority
        return self.hook_id < other.hook_id

    def __repr__(self):
        status = 'enabled' if self.enabled else 'disabled'
        return f"Hook(name='{self.name}', priority={self.priority}, {status})"


class HookHandle:
    """Returned by ``register_hook``: enable, disable or remove the hook."""

    def __init__(self, manager_ref, hook: Hook, hook_type: str):
        self._manager_ref = manager_ref
        self._hook = hook
        self._hook_type = hook_type
        self._removed = False

    def _manager(self):
        if self._removed:
            raise HookError('Cannot change a removed hook')
        manager = self._manager_ref()
        if manager is None:
            raise HookError('HookManager has been garbage collected')
        return manager

    def enable(self) -> None:
        """Run the hook again."""
        self._manager()
        self._hook.enabled = True
        self._manager()._invalidate_cache()

    def disable(self) -> None:
        """Stop running the hook (it stays registered)."""
        self._manager()
        self._hook.enabled = False
        self._manager()._invalidate_cache()

    def remove(self) -> bool:
        """Unregister the hook; ``False`` if it was removed already."""
        if self._removed:
            return False
        manager = self._manager_ref()
        if manager is None:
            return False
        self._removed = manager.unregister_hook(self)
        return self._removed

    def is_enabled(self) -> bool:
        return not self._removed and self._hook.enabled

    def is_removed(self) -> bool:
        return self._removed

    @property
    def name(self) -> str:
        return self._hook.name

    @property
    def priority(self) -> int:
        return self._hook.priority

    @property
    def hook_type(self) -> str:
        return self._hook_type

    def __repr__(self):
        if self._removed:
            return f"HookHandle(name='{self.name}', removed)"
        status = 'enabled' if self.is_enabled() else 'disabled'
        return f"HookHandle(name='{self.name}', priority={self.priority}, {status})"


@dataclass
class HookConfig:
    """How a :class:`HookManager` treats a failing hook: ``on_error`` is ``'raise'``
    (:class:`HookExecutionError`), ``'log'`` (``error_logger(msg, error, hook, context)`` or a
    :class:`HookWarning`) or ``'ignore'``; with ``disable_on_error`` a hook is disabled after
    ``max_errors_per_hook`` failures."""
    on_error: Literal['raise', 'log', 'ignore'] = 'log'
    error_logger: Optional[Callable] = None
    max_errors_per_hook: int = 10
    disable_on_error: bool = False


class HookManager:
    """The hooks of one state (``state.hooks``) or of all states (:class:`GlobalHookRegistry`)."""

    def __init__(self, config: Optional[HookConfig] = None):
        self._lock = threading.RLock()
        self._hooks: Dict[str, List[Hook]] = {kind: [] for kind in HOOK_TYPES}
        self._sorted: Optional[Dict[str, List[Hook]]] = None
        self._has_hooks = False
        self.config = config or HookConfig()

    # registration ---------------------------------------------------------------------------
    def register_hook(self, hook_type: HookType, callback: Callable, priority: int = 0,
                      name: Optional[str] = None, enabled: bool = True) -> HookHandle:
        """Register ``callback(context)`` for ``hook_type``; returns its :class:`HookHandle`."""
        if hook_type not in HOOK_TYPES:
            raise HookRegistrationError(f'Invalid hook type: {hook_type!r}; use one of '
                                        f'{HOOK_TYPES}.')
        with self._lock:
            hook = Hook(callback, priority, name, enabled)
            self._hooks[hook_type].append(hook)
            self._changed()
            return HookHandle(weakref.ref(self), hook, hook_type)

    def unregister_hook(self, handle: HookHandle) -> bool:
        """Remove the hook of ``handle``; ``False`` if it is not registered here."""
        with self._lock:
            try:
                self._hooks[handle._hook_type].remove(handle._hook)
            except (ValueError, KeyError):
                return False
            self._changed()
            return True

    def get_hooks(self, hook_type: Optional[str] = None) -> List[Hook]:
        """The hooks of ``hook_type`` in registration order (all but ``init`` hooks if None)."""
        with self._lock:
            if hook_type is None:
                return [h for kind in HOOK_TYPES[:-1] for h in self._hooks[kind]]
            return list(self._list(hook_type))

    def clear_hooks(self, hook_type: Optional[str] = None) -> None:
        """Remove the hooks of ``hook_type`` (of every type if None)."""
        with self._lock:
            for kind in (HOOK_TYPES if hook_type is None else (hook_type,)):
                self._list(kind).clear()
            self._changed()

    def has_hooks(self, hook_type: Optional[str] = None) -> bool:
        """Whether any hook is registered (any enabled hook of ``hook_type``)."""
        if hook_type is not None and hook_type not in HOOK_TYPES:
            raise ValueError(f'Invalid hook type: {hook_type!r}')
        if not self._has_hooks:
            return False
        if hook_type is None:
            return True
        return any(h.enabled for h in self._hooks[hook_type])

    def _get_hook_list(self, hook_type):
        return self._list(hook_type)

    def _list(self, hook_type):
        try:
            return self._hooks[hook_type]
        except KeyError:
            raise ValueError(f'Invalid hook type: {hook_type!r}') from None

    def _changed(self):
        self._has_hooks = any(self._hooks.values())
        self._sorted = None
        _notify_change(self)

    def _invalidate_cache(self):
        self._sorted = None

    def _active(self, hook_type) -> List[Hook]:
        table = self._sorted
        if table is None:
            with self._lock:
                table = {kind: sorted(h for h in hooks if h.enabled)
                         for kind, hooks in self._hooks.items()}
                self._sorted = table
        return table[hook_type]

    # execution ------------------------------------------------------------------------------
    def _run(self, hooks, context):
        for hook in hooks:
            if hook.enabled:
                try:
                    hook.execute(context)
                except Exception as e:
                    self._handle_hook_error(hook, e, context)

    def execute_read_hooks(self, value, state_ref) -> None:
        hooks = self._active('read')
        if hooks:
            self._run(hooks, ReadHookContext('read', state_ref, value=value))

    def execute_write_before_hooks(self, new_value, old_value, state_ref):
        """Run the ``write_before`` hooks in order, each seeing the previous one's output;
        returns the value to write. Raises :class:`HookCancellationError` on cancellation."""
        transformed = new_value
        for hook in self._active('write_before'):
            if not hook.enabled:
                continue
            context = MutableWriteHookContext('write_before', state_ref, value=new_value,
                                              old_value=old_value, transformed_value=transformed)
            try:
                hook.execute(context)
            except Exception as e:
                self._handle_hook_error(hook, e, context)
                continue
            if context.cancel:
                raise HookCancellationError(
                    f'{hook.name}: {context.cancel_reason or "Hook cancelled the operation"}')
            if context.transformed_value is not None:
                transformed = context.transformed_value
        return transformed

    def execute_write_after_hooks(self, new_value, old_value, state_ref) -> None:
        hooks = self._active('write_after')
        if hooks:
            self._run(hooks, WriteHookContext('write_after', state_ref, value=new_value,
                                              old_value=old_value))

    def execute_restore_hooks(self, new_value, old_value, state_ref) -> None:
        hooks = self._active('restore')
        if hooks:
            self._run(hooks, RestoreHookContext('restore', state_ref, value=new_value,
                                                old_value=old_value))

    def execute_init_hooks(self, value, state_ref, init_metadata=None) -> None:
        hooks = self._active('init')
        if hooks:
            self._run(hooks, InitHookContext('init', state_ref, value=value,
                                             init_metadata=dict(init_metadata or {})))

    def _handle_hook_error(self, hook: Hook, error: Exception, context) -> None:
        hook._error_count += 1
        if self.config.disable_on_error and hook._error_count >= self.config.max_errors_per_hook:
            hook.enabled = False
            self._invalidate_cache()
            message = (f"Hook '{hook.name}' disabled after {hook._error_count} errors. Last "
                       f"error: {error}")
        else:
            message = f"Hook '{hook.name}' error #{hook._error_count}: {error}"
        if self.config.on_error == 'raise':
            raise HookExecutionError(message) from error
        if self.config.on_error == 'log':
            if self.config.error_logger is not None:
                self.config.error_logger(message, error, hook, context)
            else:
                warnings.warn(message, HookWarning, stacklevel=4)

    def __repr__(self):
        counts = {k: len(v) for k, v in self._hooks.items() if v}
        return f'HookManager({counts})'


class GlobalHookRegistry(HookManager):
    """The hooks that run for every State (a process-wide singleton)."""
    _instance: Optional['GlobalHookRegistry'] = None

    def __new__(cls, config: Optional[HookConfig] = None):
        if cls._instance is None:
            instance = super().__new__(cls)
            HookManager.__init__(instance, config)
            cls._instance = instance
        return cls._instance

    def __init__(self, config: Optional[HookConfig] = None):
        pass  # initialized once, in __new__

    @classmethod
    def instance(cls) -> 'GlobalHookRegistry':
        """The registry."""
        return cls()

    @classmethod
    def reset(cls) -> None:
        """Forget the registry (and every global hook)."""
        cls._instance = None
        _notify_change(None)


def register_state_hook(hook_type: HookType, callback: Callable, priority: int = 0,
                        name: Optional[str] = None, enabled: bool = True) -> HookHandle:
    """Run ``callback(context)`` on every State's ``hook_type`` operation.

    Example::

        handle = brainstate.register_state_hook('write_after', lambda ctx: print(ctx.state_name))
        ...
        handle.remove()
    """
    return GlobalHookRegistry.instance().register_hook(hook_type, callback, priority, name,
                                                       enabled)


def unregister_state_hook(handle: HookHandle) -> bool:
    """Remove a global hook."""
    return GlobalHookRegistry.instance().unregister_hook(handle)


def clear_state_hooks(hook_type: Optional[str] = None) -> None:
    """Remove the global hooks of ``hook_type`` (all if None)."""
    GlobalHookRegistry.instance().clear_hooks(hook_type)


def has_state_hooks(hook_type: Optional[str] = None) -> bool:
    """Whether global hooks (of ``hook_type``) are registered."""
    return GlobalHookRegistry.instance().has_hooks(hook_type)


def list_state_hooks(hook_type: Optional[str] = None) -> List[Hook]:
    """The global hooks (of ``hook_type``)."""
    return GlobalHookRegistry.instance().get_hooks(hook_type)


@contextlib.contextmanager
def state_hook(hook_type: HookType, callback: Callable, priority: int = 0):
    """A global hook for the duration of a ``with`` block."""
    handle = register_state_hook(hook_type, callback, priority)
    try:
        yield handle
    finally:
        handle.remove()


def _notify_change(manager):
    from . import _state_observe
    _state_observe.refresh(manager)
