"""Observing State operations: trace stacks, new-state catchers, value-tree checks and hooks.

``State.value`` has a fast path and an observed path. The observed path runs only while
something observes states (a hook is registered, a :class:`StateTraceStack` or
:func:`catch_new_states` is active in some thread, or :func:`check_state_value_tree` is on):
:func:`refresh` sets ``brainstate._state._observed`` accordingly, so an unobserved program pays
one global-variable test per eager read or write, and nothing per compiled call.

* :class:`StateTraceStack` records the states read and written inside ``with`` (as the published
  BrainState does: each state once, in first-access order, with whether it was written and its
  value before the first access).
* :func:`catch_new_states` collects the states created inside ``with``.
* :func:`check_state_value_tree` makes writing a value of another tree structure an error.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import jax

from . import _state
from ._state_hooks import GlobalHookRegistry

__all__ = ['StateTraceStack', 'NewStateCatcher', 'catch_new_states', 'check_state_value_tree',
           'check_state_jax_tracer', 'TRACE_CONTEXT']


class _ThreadContext(threading.local):
    def __init__(self):
        self.state_stack: List['StateTraceStack'] = []
        self.tree_check: List[bool] = [False]
        self.jax_tracer_check: List[bool] = [False]
        self.new_state_catcher: List['NewStateCatcher'] = []

    def get_trace_stack_level(self) -> int:
        return len(self.state_stack)


TRACE_CONTEXT = _ThreadContext()

_lock = threading.Lock()
_active_scopes = [0]  # trace stacks, catchers and tree checks entered, in all threads
_hooked_managers: 'weakref.WeakSet' = weakref.WeakSet()


def refresh(manager=None) -> None:
    """Recompute whether states are observed (after a hook or scope change)."""
    with _lock:
        if manager is not None:
            if manager._has_hooks:
                _hooked_managers.add(manager)
            else:
                _hooked_managers.discard(manager)
        registry = GlobalHookRegistry._instance
        _state._observed = bool(_active_scopes[0] or len(_hooked_managers)
                                or (registry is not None and registry._has_hooks))


@contextlib.contextmanager
def _scope():
    with _lock:
        _active_scopes[0] += 1
    refresh()
    try:
        yield
    finally:
        with _lock:
            _active_scopes[0] -= 1
        refresh()


# -- the observed path of State (called by brainstate/_state.py) --------------------------------

def _hook_managers(state, hook_type):
    registry = GlobalHookRegistry._instance
    managers = []
    if registry is not None and registry.has_hooks(hook_type):
        managers.append(registry)
    own = state.__dict__.get('_hook_mgr')
    if own is not None and own.has_hooks(hook_type):
        managers.append(own)
    return managers


def observed_read(state):
    for trace in TRACE_CONTEXT.state_stack[state.stack_level:]:
        trace.read_its_value(state)
    value = state._plain_read()
    managers = _hook_managers(state, 'read')
    if managers:
        ref = weakref.ref(state)
        for manager in managers:
            manager.execute_read_hooks(value, ref)
    return value


def observed_write(state, value):
    if isinstance(value, _state.State):
        raise ValueError('Cannot set value to a State, use `copy_from` method instead')
    check_tree(state, value)
    old_value = state._value
    managers = _hook_managers(state, 'write_before')
    if managers:
        ref = weakref.ref(state)
        for manager in managers:
            value = manager.execute_write_before_hooks(value, old_value, ref)
    for trace in TRACE_CONTEXT.state_stack[state.stack_level:]:
        trace.write_its_value(state)
    state._been_writen = True
    state._plain_write(value)
    managers = _hook_managers(state, 'write_after')
    if managers:
        ref = weakref.ref(state)
        for manager in managers:
            manager.execute_write_after_hooks(value, old_value, ref)


def observed_restore(state, value, old_value):
    for trace in TRACE_CONTEXT.state_stack[state.stack_level:]:
        trace.read_its_value(state)
    managers = _hook_managers(state, 'restore')
    if managers:
        ref = weakref.ref(state)
        for manager in managers:
            manager.execute_restore_hooks(value, old_value, ref)


def observed_init(state, value, metadata):
    stack_level = len(TRACE_CONTEXT.state_stack)
    if stack_level:
        state.__dict__['_level'] = stack_level
    for catcher in TRACE_CONTEXT.new_state_catcher:
        catcher.append(state)
    managers = _hook_managers(state, 'init')
    if managers:
        ref = weakref.ref(state)
        info = {'_name': state.name, 'tag': getattr(state, 'tag', None), **metadata}
        for manager in managers:
            manager.execute_init_hooks(value, ref, info)


def check_tree(state, value):
    """Under :func:`check_state_value_tree`, refuse a value of another tree structure."""
    if TRACE_CONTEXT.tree_check[-1]:
        treedef = jax.tree.structure(value)
        if treedef != state._treedef:
            raise ValueError(f'The given value {treedef} does not match with the origin tree '
                             f'structure {state._treedef} of State {state.label()}.')


# -- public scopes ------------------------------------------------------------------------------

@contextlib.contextmanager
def check_state_value_tree(val: bool = True):
    """Inside ``with``, writing a State a value whose tree structure differs from its current
    one raises ``ValueError`` (outside, the structure may change between calls)."""
    TRACE_CONTEXT.tree_check.append(val)
    try:
        with _scope():
            yield
    finally:
        TRACE_CONTEXT.tree_check.pop()


@contextlib.contextmanager
def check_state_jax_tracer(val: bool = True):
    """Accepted for compatibility: brainstate always checks that no JAX tracer leaks into a
    State outside a transform (see ``TracerLeakError``)."""
    TRACE_CONTEXT.jax_tracer_check.append(val)
    try:
        yield
    finally:
        TRACE_CONTEXT.jax_tracer_check.pop()


class StateTraceStack:
    """Records the states read and written inside ``with StateTraceStack() as trace:``.

    Each state appears once, in the order first accessed; ``been_writen[i]`` tells whether
    ``states[i]`` was written; ``original_state_values`` hold their values before the first
    access. States created inside the ``with`` block are not recorded (they are new, not read).

    Example::

        with brainstate.StateTraceStack() as trace:
            b.value = a.value + 1
        trace.get_read_states()    # (a,)
        trace.get_write_states()   # (b,)
    """

    def __init__(self, new_arg: Callable = None, name: Optional[str] = None,
                 check_read: Callable = None):
        self.name = name
        self.states: list = []
        self.been_writen: List[bool] = []
        self._state_id_index: dict = {}
        self._original_state_values: list = []
        self._originals_released = False
        self._jax_trace_new_arg = new_arg
        self._stack_level = None
        self.check_read = check_read
        self._scope = None

    def __str__(self):
        level = self.name if self._stack_level is None else self._stack_level
        return f'{type(self).__name__}({level or ""})'

    __repr__ = __str__

    @property
    def original_state_values(self) -> Tuple:
        """The value of each recorded state before its first access."""
        return tuple(self._original_state_values)

    def set_new_arg(self, new_arg: Callable) -> None:
        """Set the function that replaces a state's value when it is first recorded."""
        self._jax_trace_new_arg = new_arg

    def new_arg(self, state) -> None:
        if self._jax_trace_new_arg is not None:
            state._value = self._jax_trace_new_arg(state)

    def __enter__(self) -> 'StateTraceStack':
        TRACE_CONTEXT.state_stack.append(self)
        self._stack_level = ' / '.join(t.name for t in TRACE_CONTEXT.state_stack
                                       if t.name is not None)
        self._scope = _scope()
        self._scope.__enter__()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        stack = TRACE_CONTEXT.state_stack
        if not stack or stack[-1] is not self:
            raise RuntimeError(f'{type(self).__name__} is being exited out of order: it is not on '
                               f'top of the trace stack. Exit trace contexts in the reverse '
                               f'order of entering them.')
        stack.pop()
        scope, self._scope = self._scope, None
        scope.__exit__(None, None, None)

    def read_its_value(self, state) -> None:
        """Record a read of ``state``."""
        if self.check_read is not None:
            self.check_read(state)
        key = id(state)
        if key not in self._state_id_index:
            self._state_id_index[key] = len(self.states)
            self.states.append(state)
            self.been_writen.append(False)
            self._original_state_values.append(state._value)
            self.new_arg(state)

    def write_its_value(self, state) -> None:
        """Record a write of ``state``."""
        key = id(state)
        if key not in self._state_id_index:
            self.read_its_value(state)
        self.been_writen[self._state_id_index[key]] = True

    def get_state_values(self, separate: bool = False, replace: bool = False):
        """The current values of the recorded states; with ``separate``, ``(written, read)``
        (with ``replace``, both full length with ``None`` in the other's places)."""
        if not separate:
            return tuple(st.value for st in self.states)
        writes, reads = [], []
        for st, written in zip(self.states, self.been_writen):
            if written:
                writes.append(st.value)
                if replace:
                    reads.append(None)
            else:
                reads.append(st.value)
                if replace:
                    writes.append(None)
        return tuple(writes), tuple(reads)

    def recovery_original_values(self) -> None:
        """Put every recorded state back to its value before its first access."""
        if self._originals_released:
            raise RuntimeError('recovery_original_values() was called after '
                               'release_original_values(): the original values are gone.')
        for st, value in zip(self.states, self._original_state_values):
            st.restore_value(value)

    def release_original_values(self) -> None:
        """Keep only the shapes and dtypes of the original values."""
        self._original_state_values = [
            jax.tree.map(lambda x: jax.ShapeDtypeStruct(jax.numpy.shape(x),
                                                        jax.numpy.result_type(x)), value)
            for value in self._original_state_values]
        self._originals_released = True
        self._jax_trace_new_arg = None

    def merge(self, *traces) -> 'StateTraceStack':
        """Add the records of other traces to this one (returns self)."""
        for trace in traces:
            for st, written, original in zip(trace.states, trace.been_writen,
                                             trace._original_state_values):
                if id(st) not in self._state_id_index:
                    self._state_id_index[id(st)] = len(self.states)
                    self._original_state_values.append(original)
                    self.states.append(st)
                    self.been_writen.append(False)
                if written:
                    self.write_its_value(st)
        self._originals_released = self._originals_released or any(
            getattr(t, '_originals_released', False) for t in traces)
        return self

    def __add__(self, other: 'StateTraceStack') -> 'StateTraceStack':
        return StateTraceStack().merge(self, other)

    def _select(self, written: bool, replace: bool, values: bool):
        out = []
        for st, was_written in zip(self.states, self.been_writen):
            if was_written == written:
                out.append(st.value if values else st)
            elif replace:
                out.append(None)
        return tuple(out)

    def get_read_states(self, replace_writen: bool = False) -> Tuple:
        """The states only read (with ``replace_writen``, ``None`` for the written ones)."""
        return self._select(False, replace_writen, False)

    def get_read_state_values(self, replace_writen: bool = False) -> Tuple:
        return self._select(False, replace_writen, True)

    def get_write_states(self, replace_read: bool = False) -> Tuple:
        """The states written (with ``replace_read``, ``None`` for the only-read ones)."""
        return self._select(True, replace_read, False)

    def get_write_state_values(self, replace_read: bool = False) -> Tuple:
        return self._select(True, replace_read, True)

    def state_subset(self, state_type: type) -> list:
        """The recorded states that are instances of ``state_type``."""
        return [st for st in self.states if isinstance(st, state_type)]

    def assign_state_vals(self, state_vals: Sequence) -> None:
        """Give each recorded state a value: written states by assignment, read ones by
        ``restore_value``."""
        if len(state_vals) != len(self.states):
            raise ValueError(f'The length of the state values must be equal to the states. But '
                             f'got {len(state_vals)} and {len(self.states)}')
        for st, written, value in zip(self.states, self.been_writen, state_vals):
            if written:
                st.value = value
            else:
                st.restore_value(value)

    def assign_state_vals_v2(self, read_state_vals: Sequence, write_state_vals: Sequence):
        """As :meth:`assign_state_vals`, from separate full-length read and write sequences."""
        n = len(self.states)
        if len(read_state_vals) != n or len(write_state_vals) != n:
            raise ValueError('The length of the read and write state values must be equal to '
                             'the number of states.')
        for st, written, read, write in zip(self.states, self.been_writen, read_state_vals,
                                            write_state_vals):
            if written:
                st.value = write
            else:
                st.restore_value(read)


class NewStateCatcher:
    """The states created inside :func:`catch_new_states` (each once, in creation order)."""

    def __init__(self, state_tag: Optional[str] = None, state_to_exclude=None):
        from .util.filter import Nothing, to_predicate
        self.state_to_exclude = Nothing() if state_to_exclude is None else state_to_exclude
        self._exclude = to_predicate(self.state_to_exclude)
        self.state_tag = state_tag
        self.state_ids: set = set()
        self.states: list = []

    def append(self, state) -> None:
        if self._exclude((), state) or id(state) in self.state_ids:
            return
        self.state_ids.add(id(state))
        self.states.append(state)
        if self.state_tag is not None:
            state.add_tag(self.state_tag)

    def decrease_stack_level(self):
        for st in self.states:
            st.decrease_stack_level()

    @property
    def values(self) -> list:
        return self.get_state_values()

    def get_state_values(self) -> list:
        return [st.value for st in self.states]

    def get_states(self) -> list:
        return self.states

    def get_by_tag(self, tag: str) -> list:
        return [st for st in self.states if st.tag is not None and tag in st.tag]

    def remove(self, state) -> None:
        if id(state) in self.state_ids:
            self.state_ids.remove(id(state))
            self.states.remove(state)

    def clear(self) -> None:
        self.state_ids.clear()
        self.states.clear()

    def __iter__(self):
        return iter(self.states)

    def __len__(self):
        return len(self.states)

    def __getitem__(self, index):
        return self.states[index]

    def __contains__(self, state):
        return id(state) in self.state_ids

    def __repr__(self):
        return f'NewStateCatcher(state_tag={self.state_tag!r}, states={self.states!r})'


@contextlib.contextmanager
def catch_new_states(state_tag: Optional[str] = None,
                     state_to_exclude=None) -> Iterator[NewStateCatcher]:
    """Collect the States created inside ``with`` (tagging them with ``state_tag``)::

        with brainstate.catch_new_states('new') as catcher:
            model.init_state()
        catcher.get_states()
    """
    catcher = NewStateCatcher(state_tag=state_tag, state_to_exclude=state_to_exclude)
    TRACE_CONTEXT.new_state_catcher.append(catcher)
    try:
        with _scope():
            yield catcher
    finally:
        TRACE_CONTEXT.new_state_catcher.remove(catcher)
