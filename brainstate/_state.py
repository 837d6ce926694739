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
import os
import sys
import threading
from typing import Any

import jax
import numpy as np

from ._compat import include_frame as _include_frame
from ._compat import outside_any_jax_trace as _outside_any_jax_trace
from ._errors import StateValueError, TraceContextError, TracerLeakError
from . import _state_sharding as _sharding
from ._state_api import StateAPI

__all__ = [
    'State',
    'ParamState',
    'HiddenState',
    'ShortTermState',
    'LongTermState',
    'BatchState',
]

class _TraceStack(threading.local):
    """The active brainstate traces of the current thread, innermost last (managed by
    brainstate.ir's tracer). Per thread: one thread tracing never turns another thread's eager
    ``State.value`` into a traced read. List-like; hot paths read ``.stack`` directly."""

    def __init__(self):
        self.stack = []

    def __bool__(self):
        return bool(self.stack)

    def __len__(self):
        return len(self.stack)

    def __getitem__(self, index):
        return self.stack[index]

    def __iter__(self):
        return iter(self.stack)

    def append(self, ctx):
        global _TRACES_ACTIVE
        self.stack.append(ctx)
        with _COUNT_LOCK:
            _TRACES_ACTIVE += 1
            recheck_cached_calls()  # (cached calls see a trace through the epoch)

    def pop(self):
        global _TRACES_ACTIVE
        with _COUNT_LOCK:
            _TRACES_ACTIVE -= 1
        return self.stack.pop()


# How many traces are active in all threads together: while none is (the eager common case),
# ``State.value`` need not look up this thread's stack (a thread-local lookup costs ~30 ns).
_TRACES_ACTIVE = 0
_COUNT_LOCK = threading.Lock()


TRACE_STACK = _TraceStack()

#: Held while States are read, a compiled program dispatched and its results stored (compiled
#: calls), and around eager read-modify-write sequences that must not interleave between
#: threads (a random key's split). Reentrant.
STATE_LOCK = threading.RLock()


def eager_state_lock():
    """:data:`STATE_LOCK` outside any trace of this thread (an eager read-modify-write of
    States); nothing inside a trace, where reads and writes are traced operations."""
    return contextlib.nullcontext() if TRACE_STACK.stack else STATE_LOCK

# Bumped whenever any state's value changes shape, dtype or tree structure outside a trace, so a
# compiled call can tell in O(1) that the states it was traced with still have their avals.
STRUCTURE_EPOCH = [0]

# Bumped (with STRUCTURE_EPOCH) whenever a State held by a Module attribute is replaced by another
# object (``net.w = ParamState(...)``): a compiled call traced with the old State must retrace
# to find the States its function now touches.
STATE_SET_EPOCH = [0]

#: Bumped by every event after which a cached compiled call must look again before it runs:
#: everything that bumps STRUCTURE_EPOCH (:func:`structure_changed`), a brainstate trace
#: starting in any thread, JAX's NaN/Inf checks switched on (``brainstate._compat``), an entry
#: learning that its traces read a ``brainstate.environ`` setting. A jit entry that checked
#: everything (the general path) is *armed* with the value it read before checking; its
#: generated cached call runs while the value is unchanged (one comparison per call, see
#: ``transform/_jit.py``: ``_Entry.arm``).
CALL_EPOCH = [0]
_CALL_EPOCHS = itertools.count(1)


def recheck_cached_calls() -> None:
    """Bump :data:`CALL_EPOCH`: every cached call takes the general path once. To a value it
    never had (``next`` of a counter is atomic; ``+= 1`` from two threads could lose a bump, and
    a third could then store a value an entry was armed with)."""
    CALL_EPOCH[0] = next(_CALL_EPOCHS)


def structure_changed(state_set: bool = False) -> None:
    """Record that some state's value changed shape, dtype, tree structure, sharding or class
    (or, ``state_set=True``, that a Module's State attribute was replaced by another object):
    compiled calls recheck their states before they run again. The one way to bump the
    epochs."""
    if state_set:
        STATE_SET_EPOCH[0] += 1
    STRUCTURE_EPOCH[0] += 1
    recheck_cached_calls()


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
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_site() -> str:
    """``file:line (function)`` of the innermost caller outside brainstate and JAX."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and _include_frame(frame):
            return f'{filename}:{frame.f_lineno} (in {frame.f_code.co_name})'
        frame = frame.f_back
    return '<unknown>'


_Tracer = jax.core.Tracer
from jax._src.array import ArrayImpl as _ArrayImpl  # (not jnp.zeros(()): no backend at import)
_PY_SCALARS = (bool, int, float, complex)


def _leaf_aval(leaf) -> jax.core.ShapedArray:
    """The (strong-typed) aval of one leaf of a state value."""
    if isinstance(leaf, (jax.Array, _Tracer)):
        return leaf.aval.strip_weak_type()
    return jax.core.ShapedArray(np.shape(leaf), jax.numpy.result_type(leaf))


def _bad_leaf_message(label: str, leaf) -> str:
    return (f'State {label} was given a leaf of type {type(leaf).__name__}; a State holds a '
            f'pytree of arrays (JAX or NumPy arrays, or Python numbers). Keep other objects as '
            f'plain attributes of your Module instead.')


def python_scalar_as(leaf, dtype, label: str):
    """A Python number written to a state takes the state's dtype (as NumPy assignment does:
    ``state.value = 0`` is a zero of the state's dtype; ``1.5`` into an int state is 1). A
    complex number into a real state would lose its imaginary part: refused, naming the state.
    """
    if isinstance(leaf, complex) and not jax.numpy.issubdtype(dtype, jax.numpy.complexfloating):
        raise StateValueError(
            f'State {label} holds {np.dtype(dtype).name} values but was given the complex '
            f'number {leaf!r}; its imaginary part would be lost. Write a real number, or '
            f'create the state with a complex value.')
    return jax.numpy.asarray(leaf, dtype=dtype)


def _as_array(leaf, label: str, dtype=None):
    """Convert a leaf of a state value to a JAX array of a definite (not weak) dtype, or explain
    why it cannot be held. ``dtype``: the dtype a Python number takes (the state's)."""
    if isinstance(leaf, jax.Array):
        return jax.numpy.asarray(leaf, dtype=leaf.dtype) if leaf.aval.weak_type else leaf
    if isinstance(leaf, _Tracer):
        aval = leaf.aval
        if getattr(aval, 'weak_type', False):
            return jax.lax.convert_element_type(leaf, aval.dtype)
        return leaf
    if isinstance(leaf, _PY_SCALARS):
        return python_scalar_as(leaf, jax.numpy.result_type(leaf) if dtype is None else dtype,
                                label)
    if isinstance(leaf, (np.ndarray, np.generic)):
        return jax.numpy.asarray(leaf)
    raise StateValueError(_bad_leaf_message(label, leaf))


class State(StateAPI):
    """A mutable cell holding a pytree of arrays.

    Its class names its role, and transforms select states by class: ``ParamState`` (trainable
    parameters), ``HiddenState`` (dynamical variables), ``ShortTermState`` / ``LongTermState``
    (statistics, buffers), ``BatchState``. Subclass any of them to add your own roles.

    Args:
      value: any pytree of arrays (JAX or NumPy arrays, Python numbers, converted to JAX arrays).
      name: an optional name used in error messages and in the printed IR when the state does
        not belong to a Module.
      sharding: how the value is laid out over devices (a ``jax.sharding.Sharding``, or a
        pytree of them matching the value); the value is placed there and compiled steps keep
        it there. Default: the sharding the value already has over several devices, if any.
      **metadata: free-form attributes; ``tag=`` is used by tag filters.

    Types. A state holds a definite dtype, never a weak one: ``State(1.0)`` holds a float32.
    A Python number written to a state takes the state's dtype, eagerly and under a transform
    alike (``z.value = 0`` keeps a float32 state float32; ``1.5`` into an int32 state is 1).
    Writing an array of another shape or dtype outside any transform is the one way to change a
    state's type (compiled functions notice and retrace); inside a transform it is an error
    naming the state.

    Example::

        count = brainstate.ShortTermState(jnp.zeros(()))
        count.value = count.value + 1
    """

    _shardings = None  # one jax Sharding (or None) per leaf; see _state_sharding.py

    def __init__(self, value: Any, name: str | None = None, **metadata):
        # A plain dict from the start: CPython 3.11 keeps an instance's attributes in a "split"
        # dict once its ``__dict__`` is used (as state I/O and packing do), and its attribute
        # caches do not specialize those: every ``state._value`` load or store then costs ~4x
        # (40-70 ns), several per cached jit call.
        self.__dict__ = dict(self.__dict__)
        self._id = next(_ids)
        self.name = name
        self._owner = None  # (weakref to Module, key path), set when a Module registers us
        tag = metadata.pop('tag', None)
        sharding = metadata.pop('sharding', None)
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
        leaves = [_as_array(leaf, label) for leaf in leaves]
        if not any(isinstance(leaf, _Tracer) for leaf in leaves):
            # The state keeps the sharding it is given, or the one its value already has.
            self._shardings = (_sharding.leaf_shardings(label, treedef, sharding)
                               if sharding is not None else _sharding.adopted_shardings(leaves))
            if self._shardings is not None:
                leaves = _sharding.place_leaves(label, leaves, self._shardings)
        self._treedef = treedef
        self._avals = tuple(_leaf_aval(leaf) for leaf in leaves)
        # Whether code outside any trace may hold the current buffers (it read or set the
        # value eagerly): such buffers are never donated. See transform/_state_io.py.
        self._exposed = True
        stack = TRACE_STACK.stack
        if stack or any(isinstance(leaf, _Tracer) for leaf in leaves):
            # A state created while tracing: it lives in the trace that made it. Remember
            # where, for the error if it is read after that trace without a value.
            self._created_at = _user_site()
            if not stack:
                # Under a raw JAX transform: its value is a tracer of that trace, usable only
                # while it runs (see _missing_value).
                self._tracer_value = treedef.unflatten(leaves)
                return
            stack[-1].register_new_state(self)
        self._value = treedef.unflatten(leaves)
        if _observed:
            _observe().observed_init(self, value, metadata)

    def _missing_value(self):
        """The value of a state created inside a trace that has none outside it: its tracer,
        while the raw JAX transform that made it still runs; otherwise a TraceContextError
        saying where it was created."""
        tracer_value = self.__dict__.get('_tracer_value')
        if tracer_value is not None and not _outside_any_jax_trace():
            return tracer_value
        raise TraceContextError(self._no_value_message())

    def _no_value_message(self) -> str:
        if '_tracer_value' in self.__dict__:
            why = ('under a raw JAX transform (jax.jit, jax.vmap, ...): its value was a tracer '
                   'of that transform, which has finished')
        else:
            why = ('inside a brainstate transform whose trace did not complete (it raised, or '
                   'the function was traced again for new argument shapes and this trace was '
                   'discarded), so it never received a value')
        return (f'State {self.label()} was created at {self._created_at} {why}. Create the '
                f'state outside the transform (or inside a brainstate transform that '
                f'completes, which gives new states their values), or give it a value with '
                f'`state.value = ...` before reading it.')

    def has_value(self) -> bool:
        """False for a state created inside a trace that never gave it a value (reading it
        raises :class:`~brainstate.TraceContextError`)."""
        return '_value' in self.__dict__

    # -- the value ---------------------------------------------------------------------------

    @property
    def value(self):
        """The current value; inside a brainstate trace, a traced read of the state."""
        if _observed:
            return _observe().observed_read(self)
        if _TRACES_ACTIVE:
            stack = TRACE_STACK.stack
            if stack:
                return stack[-1].read(self)
        self._exposed = True
        try:
            return self._value
        except AttributeError:  # (free when not raised) a state created inside a trace
            return self._missing_value()

    @value.setter
    def value(self, new_value):
        if _observed:
            _observe().observed_write(self, new_value)
            return
        if _TRACES_ACTIVE:
            stack = TRACE_STACK.stack
            if stack:
                stack[-1].write(self, new_value)
                return
        self._set_outside_trace(new_value)

    def _plain_read(self):
        stack = TRACE_STACK.stack
        if stack:
            return stack[-1].read(self)
        self._exposed = True
        try:
            return self._value
        except AttributeError:
            return self._missing_value()

    def _plain_write(self, new_value):
        stack = TRACE_STACK.stack
        if stack:
            stack[-1].write(self, new_value)
        else:
            self._set_outside_trace(new_value)

    def _set_outside_trace(self, new_value):
        leaves, treedef = jax.tree.flatten(new_value)
        for leaf in leaves:
            if isinstance(leaf, _Tracer):
                if '_tracer_value' in self.__dict__ and '_value' not in self.__dict__:
                    # Created under the same raw JAX transform: it lives in that trace.
                    self.check_compatible(new_value)
                    self._tracer_value = new_value
                    return
                raise TracerLeakError(_tracer_leak_message(self))
        label = self.label()
        if treedef == self._treedef:
            # One rule with traced writes: a Python number takes the state's dtype.
            leaves = [_as_array(leaf, label, aval.dtype)
                      for leaf, aval in zip(leaves, self._avals)]
        else:
            leaves = [_as_array(leaf, label) for leaf in leaves]
        if treedef != self._treedef:
            self._shardings = None  # a new structure: the shardings its leaves bring
        if self._shardings is not None:
            leaves = _sharding.place_leaves(label, leaves, self._shardings)
        else:
            adopted = _sharding.adopted_shardings(leaves)
            if adopted is not None:
                self._shardings = adopted
                structure_changed()
        avals = tuple(_leaf_aval(leaf) for leaf in leaves)
        if treedef != self._treedef or avals != self._avals:
            # Allowed between calls; compiled calls notice through the epoch and retrace.
            self._treedef = treedef
            self._avals = avals
            structure_changed()
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
    def sharding(self):
        """How the value is laid out over devices: a ``jax.sharding.Sharding`` (a pytree of
        them, one per leaf, for a structured value), or None when JAX places it (one device).

        Compiled steps write the state back in this sharding. Setting it moves the value
        (``state.sharding = NamedSharding(mesh, PartitionSpec('x'))``); ``None`` forgets it (the
        value stays where it is until it is next written). See :func:`brainstate.shard_states`.
        """
        return _sharding.sharding_of(self._shardings, self._treedef)

    @sharding.setter
    def sharding(self, sharding):
        if _TRACES_ACTIVE and TRACE_STACK.stack:
            raise TraceContextError(
                f'State {self.label()}: its sharding cannot be set inside a transform; set it '
                f'before calling the compiled function.')
        label = self.label()
        shardings = _sharding.leaf_shardings(label, self._treedef, sharding)
        if shardings is not None and self.has_value():
            leaves = jax.tree.leaves(self._value)
            # Moving on purpose: no mismatch check, every leaf goes to its new sharding.
            try:
                self._value = self._treedef.unflatten(
                    [leaf if s is None else jax.device_put(leaf, s)
                     for leaf, s in zip(leaves, shardings)])
            except ValueError as error:
                raise StateValueError(
                    f'State {label} (shapes {[a.str_short() for a in self._avals]}) cannot be '
                    f'sharded as {_sharding.spec_text(sharding)}: {error}') from None
            self._exposed = True
        self._shardings = shardings
        structure_changed()  # compiled steps recheck what they return the state as

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
    def written_avals(self) -> tuple:
        """The avals a traced write of this state must have: :attr:`avals`, unless the view
        in force has a ``written(state)`` rule (shard_map: a state the function only writes
        takes the per-shard shape of its ``state_out_specs``)."""
        written = getattr(_LANE_VIEW.lanes, 'written', None)
        if written is not None:
            avals = written(self)
            if avals is not None:
                return avals
        return self.avals

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
            if isinstance(leaf, _Tracer):
                # (its aval directly: np.shape and result_type would ask it for them)
                have = leaf.aval
                if have.shape == aval.shape and have.dtype == aval.dtype:
                    continue
            elif isinstance(leaf, jax.Array):
                pass  # (a weakly typed value is stored strong: see _Entry._pure in jit)
            elif isinstance(leaf, _PY_SCALARS):
                # `state.value = 0` means "zero of the state's dtype", as in NumPy assignment.
                leaves[i] = leaf = python_scalar_as(leaf, aval.dtype, self.label())
            elif not isinstance(leaf, (np.ndarray, np.generic)):
                raise StateValueError(_bad_leaf_message(self.label(), leaf))
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


def set_abstract_value(state: State, shapes):
    """Give ``state`` an abstract value: a pytree of ``jax.ShapeDtypeStruct`` (what
    ``eval_shape`` leaves in the states of a Module it creates). Transforms trace such a state
    at those shapes; running it needs a real value first."""
    leaves, treedef = jax.tree.flatten(shapes)
    state._treedef = treedef
    state._avals = tuple(jax.core.ShapedArray(leaf.shape, leaf.dtype) for leaf in leaves)
    state._value = shapes


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
