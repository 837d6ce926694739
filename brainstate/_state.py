"""State: a mutable cell holding a pytree of arrays, and its role-naming subclasses.

Reading or writing ``State.value`` does one of two things:

* outside any brainstate trace it reads or replaces the stored value (a plain Python attribute);
* while a brainstate transform is tracing, it records a ``state_read`` / ``state_write`` operation
  in the trace (see :mod:`brainstate.ir`), so the compiled program threads the state explicitly.

The stored value is never changed while tracing, which is why a failed trace leaves every State
exactly as it was.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any

import jax
import numpy as np

from ._errors import StateValueError, TracerLeakError
from ._state_api import StateAPI

__all__ = [
    'State',
    'ParamState',
    'HiddenState',
    'ShortTermState',
    'LongTermState',
    'BatchState',
]

# The active brainstate traces, innermost last. Managed by brainstate.ir's tracer.
TRACE_STACK: list = []

# Bumped whenever any state's value changes shape, dtype or tree structure outside a trace, so a
# compiled call can tell in O(1) that the states it was traced with still have their avals.
STRUCTURE_EPOCH = [0]

class _LaneView(threading.local):
    lanes = None


# While vmap compiles a function, ``lanes(state) -> avals or None`` gives one lane's view of its
# batched states to everything that compiles it (the trace, the passes, lowering). Per thread;
# never a change of any State.
_LANE_VIEW = _LaneView()


@contextlib.contextmanager
def lane_view(lanes):
    """Compile under ``lanes`` (see ``State.avals``); restores the enclosing view after."""
    previous = _LANE_VIEW.lanes
    _LANE_VIEW.lanes = lanes
    try:
        yield
    finally:
        _LANE_VIEW.lanes = previous


# True while something observes state operations (hooks, StateTraceStack, catch_new_states):
# then reads and writes take the observed path of brainstate/_state_observe.py. Set by it.
_observed = False

_ids = itertools.count()
_Tracer = jax.core.Tracer
_ArrayImpl = type(jax.numpy.zeros(()))
_PY_SCALARS = (bool, int, float, complex)


def _leaf_aval(leaf) -> jax.core.ShapedArray:
    """The (strong-typed) aval of one leaf of a state value."""
    return jax.core.ShapedArray(np.shape(leaf), jax.numpy.result_type(leaf))


def _as_array(leaf, label: str):
    """Convert a leaf of a state value to a JAX array, or explain why it cannot be held."""
    if isinstance(leaf, (jax.Array, _Tracer)):
        return leaf
    if isinstance(leaf, (np.ndarray, np.generic) + _PY_SCALARS):
        return jax.numpy.asarray(leaf)
    raise StateValueError(
        f'State {label} was given a leaf of type {type(leaf).__name__}; a State holds a pytree '
        f'of arrays (JAX or NumPy arrays, or Python numbers). Keep other objects as plain '
        f'attributes of your Module instead.')


class State(StateAPI):
    """A mutable cell holding a pytree of arrays.

    Its class names its role, and transforms select states by class: ``ParamState`` (trainable
    parameters), ``HiddenState`` (dynamical variables), ``ShortTermState`` / ``LongTermState``
    (statistics, buffers), ``BatchState``. Subclass any of them to add your own roles.

    Args:
      value: any pytree of arrays (JAX or NumPy arrays, Python numbers, converted to JAX arrays).
      name: an optional name used in error messages and in the printed IR when the state does
        not belong to a Module.
      **metadata: free-form attributes; ``tag=`` is used by tag filters.

    Example::

        count = brainstate.ShortTermState(jnp.zeros(()))
        count.value = count.value + 1
    """

    def __init__(self, value: Any, name: str | None = None, **metadata):
        self._id = next(_ids)
        self.name = name
        self._owner = None  # (weakref to Module, key path), set when a Module registers us
        tag = metadata.pop('tag', None)
        self.tag = {tag} if isinstance(tag, str) else (None if tag is None else set(tag))
        self._metadata = metadata
        if type(value).__name__ == 'StateMetadata':
            metadata = {**dict(value.metadata), **metadata}
            value = value.raw_value
        if isinstance(value, State):
            value = value.value
        for key, item in metadata.items():
            setattr(self, key, item)
        label = self.label()
        leaves, treedef = jax.tree.flatten(value)
        if TRACE_STACK or any(isinstance(leaf, _Tracer) for leaf in leaves):
            # A state created while tracing: it lives in the trace that made it.
            for ctx in TRACE_STACK[-1:]:
                ctx.register_new_state(self)
        leaves = [_as_array(leaf, label) for leaf in leaves]
        self._treedef = treedef
        self._avals = tuple(_leaf_aval(leaf) for leaf in leaves)
        self._value = treedef.unflatten(leaves)
        # Whether code outside any trace may hold the current buffers (it read or set the
        # value eagerly): such buffers are never donated. See transform/_state_io.py.
        self._exposed = True
        if _observed:
            _observe().observed_init(self, value, metadata)

    # -- the value ---------------------------------------------------------------------------

    @property
    def value(self):
        """The current value; inside a brainstate trace, a traced read of the state."""
        if _observed:
            return _observe().observed_read(self)
        if TRACE_STACK:
            return TRACE_STACK[-1].read(self)
        self._exposed = True
        return self._value

    @value.setter
    def value(self, new_value):
        if _observed:
            _observe().observed_write(self, new_value)
        elif TRACE_STACK:
            TRACE_STACK[-1].write(self, new_value)
        else:
            self._set_outside_trace(new_value)

    def _plain_read(self):
        if TRACE_STACK:
            return TRACE_STACK[-1].read(self)
        self._exposed = True
        return self._value

    def _plain_write(self, new_value):
        if TRACE_STACK:
            TRACE_STACK[-1].write(self, new_value)
        else:
            self._set_outside_trace(new_value)

    def _set_outside_trace(self, new_value):
        leaves, treedef = jax.tree.flatten(new_value)
        for leaf in leaves:
            if isinstance(leaf, _Tracer):
                raise TracerLeakError(_tracer_leak_message(self))
        leaves = [_as_array(leaf, self.label()) for leaf in leaves]
        avals = tuple(_leaf_aval(leaf) for leaf in leaves)
        if treedef != self._treedef or avals != self._avals:
            # Allowed between calls; compiled calls notice through the epoch and retrace.
            self._treedef = treedef
            self._avals = avals
            STRUCTURE_EPOCH[0] += 1
        self._value = treedef.unflatten(leaves)
        self._exposed = True

    def restore_value(self, value):
        """Set the value without recording anything in an active trace (used by transforms)."""
        if isinstance(value, State):
            raise ValueError('Cannot set value to a State, use `copy_from` method instead')
        if jax.tree.structure(value) != self._treedef:
            raise ValueError(f'The given value {jax.tree.structure(value)} does not match with '
                             f'the origin tree structure {self._treedef} of State '
                             f'{self.label()}.')
        if _observed:
            old_value = self._value
            self._set_outside_trace(value)
            _observe().observed_restore(self, value, old_value)
            return
        self._set_outside_trace(value)

    @property
    def avals(self) -> tuple:
        """The abstract values (shape and dtype) of the leaves of the value, as the program
        being compiled sees them (inside ``vmap``'s compilation, one lane's view of a batched
        state; see :func:`lane_view`)."""
        lanes = _LANE_VIEW.lanes
        if lanes is not None:
            avals = lanes(self)
            if avals is not None:
                return avals
        return self._avals

    @property
    def treedef(self):
        """The pytree structure of the value."""
        return self._treedef

    def check_compatible(self, new_value, avals=None) -> list:
        """Flatten ``new_value`` and check it has this state's tree, shapes and dtypes
        (``avals``: the ones a trace sees, e.g. vmap's per-lane view; default the stored ones).

        Returns the leaves. Raises :class:`StateValueError` naming the state otherwise.
        """
        leaves, treedef = jax.tree.flatten(new_value)
        if treedef != self._treedef:
            raise StateValueError(
                f'State {self.label()} holds a value with tree structure {self._treedef}, but the '
                f'traced code wrote one with structure {treedef}. Write a value of the same '
                f'structure (e.g. update each entry of the dict), or create a new State.')
        for i, (leaf, aval) in enumerate(zip(leaves, self._avals if avals is None else avals)):
            if isinstance(leaf, _PY_SCALARS) and aval.shape == ():
                # `state.value = 0` means "zero of the state's dtype", as in NumPy assignment.
                leaves[i] = leaf = jax.numpy.asarray(leaf, dtype=aval.dtype)
            shape, dtype = np.shape(leaf), jax.numpy.result_type(leaf)
            if shape != aval.shape or dtype != aval.dtype:
                where = '' if len(leaves) == 1 else f' (leaf {i} of {len(leaves)})'
                raise StateValueError(
                    f'State {self.label()}{where} holds {aval.str_short()} but the traced code '
                    f'wrote {jax.core.ShapedArray(shape, dtype).str_short()}. A state keeps its '
                    f'shape and dtype inside a transform: cast or reshape the new value (e.g. '
                    f'`.astype({aval.dtype})`), or set a value of the new shape outside the '
                    f'transform before calling it.')
        return leaves

    # -- identity and display ----------------------------------------------------------------

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def label(self) -> str:
        """The name used in messages and the IR: the state's path in its module tree, else its
        name, else its class and a serial number."""
        path = self.path()
        if path is not None:
            return '.'.join(str(part) for part in path)
        if self.name is not None:
            return self.name
        return f'{type(self).__name__}#{self._id}'

    def path(self) -> tuple | None:
        """The path of this state from the root of the module tree that first registered it
        (``('Net', 'layers', 0, 'w')``), or ``None`` for a free-standing state."""
        if self._owner is None:
            return None
        module_ref, key = self._owner
        module = module_ref()
        if module is None:
            return None
        return module._module_path() + key

    def __repr__(self):
        shapes = jax.tree.unflatten(self._treedef, [_Bare(a.str_short(short_dtypes=True))
                                                    for a in self._avals])
        extra = ''.join(f', {k}={v!r}' for k, v in self._metadata.items())
        if self.tag:
            extra += f', tag={self.tag!r}'
        name = f', name={self.name!r}' if self.name is not None else ''
        return f'{type(self).__name__}({shapes}{name}{extra})'

    # -- pickling-free copying helpers used by tests and transforms ---------------------------

    def __copy__(self):
        raise TypeError(
            f'State {self.label()} cannot be copied: a State is an identity. Copy its value '
            f'(`state.value`) instead.')


def _observe():
    from . import _state_observe
    return _state_observe


class _Bare(str):
    """A string that reprs without quotes, for showing types inside a tree."""

    def __repr__(self):
        return str(self)


def _tracer_leak_message(state: State) -> str:
    return (
        f'A JAX tracer was assigned to State {state.label()} outside any brainstate transform. '
        f'This happens when stateful code runs under raw `jax.jit`, `jax.vmap`, `jax.grad` or '
        f'`jax.lax` loops, which do not know about States: the update would be lost and the '
        f'state would hold a tracer. Use `brainstate.transform.jit` (or `.vmap`, `.grad`, '
        f'`.for_loop`, ...) instead, which thread state updates through the compiled code.')


class ShortTermState(State):
    """A state that lives for one run or one trial, e.g. a step counter or last input."""


class LongTermState(State):
    """A state that persists across runs, e.g. running statistics or optimizer buffers."""


class ParamState(LongTermState):
    """A trainable parameter. ``model.states(brainstate.ParamState)`` selects what to train."""


class HiddenState(ShortTermState):
    """A dynamical variable of a model, e.g. a neuron's membrane potential: one array (a
    JAX or NumPy array, or a brainunit Quantity)."""

    def __init__(self, value, name: str | None = None, **metadata):
        _check_hidden_array(type(self), value)
        super().__init__(value, name=name, **metadata)

    @property
    def varshape(self) -> tuple:
        """The shape of the variable."""
        return tuple(self.value.shape)

    @property
    def num_state(self) -> int:
        """How many variables the state holds (1)."""
        return 1


def _check_hidden_array(cls, value):
    if isinstance(value, (np.ndarray, jax.Array)) or type(value).__name__ == 'Quantity':
        return
    raise TypeError(f'Currently, {cls.__name__} only supports numpy.ndarray, jax.Array or '
                    f'brainunit.Quantity. But we got {type(value)}.')


class BatchState(LongTermState):
    """A state holding batch statistics."""


class DelayState(ShortTermState):
    """The buffer of a delay line."""


class NonBatchState(ShortTermState):
    """A short-term state that is never batched."""


def maybe_state(val):
    """``val.value`` for a State, else ``val`` unchanged."""
    return val.value if isinstance(val, State) else val


def __getattr__(name):
    # Names the published library keeps in this module.
    if name in ('NewStateCatcher', 'TRACE_CONTEXT', 'StateTraceStack', 'catch_new_states',
                'check_state_value_tree', 'check_state_jax_tracer'):
        return getattr(_observe(), name)
    if name == 'StateMetadata':
        from ._state_api import StateMetadata
        return StateMetadata
    if name == 'TreefyState':
        from ._state_api import TreefyState
        return TreefyState
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
