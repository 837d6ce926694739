"""Packed state storage: many small states of one dtype held in one device buffer.

Raw ``jax.jit`` pays about 1.4 us of host time per array argument or result, so a step over 200
small states spends most of its time passing arrays. :func:`pack_states` moves the storage of
such states into one flat buffer per dtype (a :class:`PackedBuffer`, itself a State). Each
member State keeps its identity, class (for ``isinstance``), path, avals and ``.value``:

* eagerly, ``member.value`` is its slice of the buffer, reshaped (one small dispatch, cached
  until the buffer changes); ``member.value = x`` updates that slice of the buffer;
* in a compiled step (``brainstate.transform.jit`` and every eager transform), the trace still
  reads and writes the members one by one; the ``pack-states`` pass
  (:mod:`brainstate.passes._pack_states`) then rewrites those reads and writes into one read of
  the buffer, slices, and one write of the buffer, so the compiled program takes and returns
  ONE array (donated, updated in place) however many states it touches.

How the storage is redirected. A member's class is swapped for a subclass of its own class
(same name) whose ``_value`` attribute is a property reading and writing its slot of the buffer,
so every path that reads or stores a state's value (transforms, state I/O, the graph API) sees
the packed value without knowing about packs. :meth:`StatePack.unpack` gives every member its
own array again and restores its class. Packing and unpacking change the states' layout
(``STRUCTURE_EPOCH``), so compiled functions notice and retrace.

What can be packed: states whose value is a pytree of concrete JAX arrays of numeric dtypes on
one device; each leaf goes into the buffer of its dtype. Others are left as they are and listed
in :attr:`StatePack.skipped`. A packed state keeps its tree, shapes and dtypes: writing another
one eagerly is an error that says to unpack.

Automatic packing (the end of this file): ``brainstate.transform.jit`` packs the states of a
step called often over many small states by itself (:data:`AUTO_PACK`, :func:`auto_pack`). Such
a pack is marked ``automatic``: a member given a value of another type leaves it
(:meth:`StatePack.release`) instead of raising, as an unpacked state would take the value.
"""

from __future__ import annotations

import contextlib
import functools
import os
import weakref
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _state
from ._compat import outside_any_jax_trace
from ._errors import StateValueError, TracerLeakError
from ._state import State

__all__ = ['pack_states', 'StatePack', 'PackedBuffer', 'packed_slots', 'AUTO_PACK']


class PackedBuffer(State):
    """The flat buffer holding the values of a :class:`StatePack`'s states of one dtype.

    It is an ordinary State: compiled steps read it once and write it once (donated)."""


class _RetiredBuffer(PackedBuffer):
    """A buffer whose pack was unpacked: compiled programs that used it notice (its class is
    part of their layout) and retrace."""


class _Slot(NamedTuple):
    group: '_Group'
    index: int
    offset: int
    size: int
    shape: tuple

    @property
    def buffer(self) -> PackedBuffer:
        return self.group.buffer


@functools.partial(jax.jit, static_argnames=('size', 'shape'))
def _take(buffer, offset, *, size, shape):
    return jax.lax.dynamic_slice(buffer, (offset,), (size,)).reshape(shape)


@jax.jit
def _put(buffer, value, offset):
    return jax.lax.dynamic_update_slice(buffer, value.reshape(-1), (offset,))


@jax.jit
def _concatenate(values):
    return jnp.concatenate([v.reshape(-1) for v in values])


def _concrete():
    """The storage's own operations compute concrete arrays, also when they run while a raw
    JAX transformation traces (a packed state read inside ``jax.jit``): a tracer must never
    reach the buffer or its cache."""
    return contextlib.nullcontext() if outside_any_jax_trace() else \
        jax.ensure_compile_time_eval()


class _Group:
    """The leaves stored in one buffer (``slots``, in buffer order; ``owners[i]``: the state
    whose leaf slot ``i`` holds), and a cache of their eager values for the buffer's current
    array (keyed by its identity: a compiled step that writes the buffer stores a new array)."""

    def __init__(self, buffer: PackedBuffer, pack: 'StatePack'):
        self.buffer = buffer
        self.pack = pack
        self.slots: list[_Slot] = []
        self.owners: list[State] = []
        self._cached_for = None
        self._cache: dict[int, jax.Array] = {}

    def _valid_cache(self, array) -> dict:
        if array is not self._cached_for:
            self._cache = {}
            self._cached_for = array
        return self._cache

    def read(self, slot: _Slot):
        # Under the lock: a compiled call in another thread may donate (delete) the buffer.
        with _state.STATE_LOCK:
            array = self.buffer._value
            cache = self._valid_cache(array)
            value = cache.get(slot.index)
            if value is None or value.is_deleted():  # (deleted: the user donated it)
                with _concrete():
                    value = cache[slot.index] = _take(array, slot.offset, size=slot.size,
                                                      shape=slot.shape)
            return value

    def write(self, slot: _Slot, value):
        with _state.STATE_LOCK, _concrete():
            array = self.buffer._value
            cache = self._valid_cache(array)
            new = _put(array, value, slot.offset)
            self.buffer._value = new
            self.buffer._exposed = False  # a fresh array nobody outside holds
            self._cached_for = new
            cache[slot.index] = value

    def split(self) -> list:
        """Every slot's value. (One small dispatch per slot not cached: a single jitted split
        into hundreds of outputs compiles for seconds and runs no faster.)"""
        return [self.read(slot) for slot in self.slots]


def packed_slots(state) -> tuple | None:
    """The slots of a packed state's leaves in their buffers (one per leaf, in order), or None
    for a state stored on its own."""
    return state.__dict__.get('_pack_slots')


# -- the storage redirection ----------------------------------------------------------------

def _get_value(self):
    slots = self.__dict__.get('_pack_slots')
    if slots is None:  # an instance of a packed class outside any pack: plain storage
        try:
            return self.__dict__['_value']
        except KeyError:
            raise AttributeError('_value') from None
    if len(slots) == 1 and self._treedef.num_nodes == 1:
        slot = slots[0]
        return slot.group.read(slot)
    return self._treedef.unflatten([slot.group.read(slot) for slot in slots])


def _write_leaves(slots, leaves):
    with _state.STATE_LOCK:
        for slot, leaf in zip(slots, leaves):
            slot.group.write(slot, leaf)


def _set_value(self, value):
    slots = self.__dict__.get('_pack_slots')
    if slots is None:
        self.__dict__['_value'] = value
        return
    leaves = _checked_leaves(self, slots, value)
    if leaves is None:  # released from its automatic pack
        self.__dict__['_value'] = value
        return
    _write_leaves(slots, leaves)


def _del_value(self):
    self.__dict__.pop('_value', None)


def _checked_leaves(state, slots, value) -> list:
    """The arrays of ``value``, of the packed state's tree, shapes and dtypes, or an error
    naming the state that says how to change its type (unpack first). Checked in full before
    anything is written. For a state packed automatically (by jit), a value of another type
    unpacks the state instead: then None (store the value as an unpacked state does)."""
    leaves, treedef = jax.tree.flatten(value)
    if treedef == state._treedef:
        out = []
        for leaf, aval in zip(leaves, state._avals):
            if isinstance(leaf, jax.core.Tracer):
                raise TracerLeakError(_state._tracer_leak_message(state))
            leaf = _state._as_array(leaf, state.label(), aval.dtype)
            if _state._leaf_aval(leaf) != aval:
                got = _state._leaf_aval(leaf).str_short()
                break
            out.append(leaf)
        else:
            return out
    else:
        got = f'a value with tree structure {treedef}'
    if slots[0].group.pack.automatic:
        # Packed automatically (by jit, not by the user): the state leaves the pack and takes
        # the value of its new type on its own, as an unpacked state would.
        slots[0].group.pack.release(state)
        return None
    buffers = ', '.join(dict.fromkeys(slot.buffer.label() for slot in slots))
    want = ', '.join(a.str_short() for a in state._avals)
    raise StateValueError(
        f'State {state.label()} is packed into buffer {buffers} (see brainstate.pack_states), '
        f'which fixes its type to {want}, but it was given {got}. Write a value of the same '
        f'shape and dtype, or unpack the states first (`pack.unpack()`) to change it.')


def _set_outside_trace(self, new_value):
    slots = self.__dict__.get('_pack_slots')
    if slots is None:
        return type(self)._packed_base._set_outside_trace(self, new_value)
    leaves = _checked_leaves(self, slots, new_value)
    if leaves is None:  # released from its automatic pack: now of the user's class
        return type(self)._set_outside_trace(self, new_value)
    _write_leaves(slots, leaves)


def _copy_from(self, other):
    slots = self.__dict__.get('_pack_slots')
    base = type(self)._packed_base
    if slots is None or other is self:
        return base.copy_from(self, other)
    leaves = _checked_leaves(self, slots, other.value)  # before anything changes
    if leaves is None:  # released from its automatic pack
        return base.copy_from(self, other)
    base.copy_from(self, other)  # the metadata (and other's storage, replaced below)
    self.__dict__.pop('_value', None)
    self.__dict__.pop('_pack_slots', None)
    self.__dict__['_pack_slots'] = slots
    _write_leaves(slots, leaves)


def _has_value(self) -> bool:
    return '_pack_slots' in self.__dict__ or '_value' in self.__dict__


def _always_exposed(self):
    # A packed state's eager value is a cached slice others may hold: a program that reads the
    # state directly (not through its buffer) must never donate it as it is.
    return True


def _ignore(self, value):
    pass


def _rebuild(cls, attributes):
    state = cls.__new__(cls)
    state.__dict__.update(attributes)
    return state


def _reduce_ex(self, protocol):
    # Pickled and deep-copied as the user's class, holding its value on its own.
    attributes = {k: v for k, v in self.__dict__.items() if k != '_pack_slots'}
    attributes['_value'] = self._value
    return _rebuild, (type(self)._packed_base, attributes)


_PACKED_CLASSES: dict[type, type] = {}


def _packed_class(cls: type) -> type:
    """The subclass of ``cls`` (same name) whose instances keep their value in a pack."""
    packed = _PACKED_CLASSES.get(cls)
    if packed is None:
        packed = type(cls.__name__, (cls,), {
            '__module__': cls.__module__,
            '__qualname__': cls.__qualname__,
            '__doc__': cls.__doc__,
            '_packed_base': cls,
            '_value': property(_get_value, _set_value, _del_value),
            '_exposed': property(_always_exposed, _ignore),
            '_set_outside_trace': _set_outside_trace,
            'copy_from': _copy_from,
            'has_value': _has_value,
            '__reduce_ex__': _reduce_ex,
        })
        _PACKED_CLASSES[cls] = packed
    return packed


def unpacked_type(cls: type) -> type:
    """The class a packed state had before packing (``cls`` itself for any other)."""
    return cls.__dict__.get('_packed_base', cls)


# -- the public handle ----------------------------------------------------------------------

#: How many packs are alive: while none is, compiled steps do not run the pack-states pass.
LIVE_PACKS = [0]


def _forget(live):
    if live[0]:
        live[0] = False
        LIVE_PACKS[0] -= 1


def pack_analyses() -> tuple:
    """The passes a compiled program runs after its pipeline for packed storage: the
    ``pack-states`` pass while any pack exists (jit, make_jaxpr and ``brainstate-ir`` ask
    here), none otherwise."""
    return ('pack-states',) if LIVE_PACKS[0] else ()


def _packable(state) -> str | None:
    """Why ``state`` cannot be packed, or None."""
    if isinstance(state, PackedBuffer):
        return 'it is a pack buffer'
    if packed_slots(state) is not None:
        return 'it is packed already'
    if not state.has_value() or '_value' not in state.__dict__:
        return 'it has no value'
    leaves = jax.tree.leaves(state.__dict__['_value'])
    if not leaves:
        return 'it holds no array'
    for leaf in leaves:
        if not isinstance(leaf, jax.Array) or isinstance(leaf, jax.core.Tracer):
            return 'its value is not made of concrete JAX arrays'
        dtype = leaf.dtype
        if not (jnp.issubdtype(dtype, np.number) or dtype == np.bool_):
            return f'its dtype {dtype} is not numeric'
        if not leaf.is_fully_addressable or len(leaf.sharding.device_set) != 1:
            return 'its value is sharded over several devices'
    return None


def _collect(target) -> list:
    from collections.abc import Mapping
    if isinstance(target, State):
        return [target]
    from .graph import Node
    if isinstance(target, Node):  # a Module: all its states
        target = target.states()
    if isinstance(target, Mapping):
        target = list(target.values())
    if not isinstance(target, (list, tuple, set, frozenset)):
        raise TypeError(
            f'pack_states takes a Module, a State, a mapping of states or a sequence of them; '
            f'got {type(target).__name__}.')
    states, seen = [], set()
    for item in target:
        for state in _collect(item) if not isinstance(item, State) else [item]:
            if id(state) not in seen:
                seen.add(id(state))
                states.append(state)
    return states


class StatePack:
    """A handle on states packed by :func:`pack_states`.

    Attributes:
      states: the packed states.
      buffers: one :class:`PackedBuffer` per dtype.
      skipped: ``(state, reason)`` for each state that was asked for but left unpacked.
    """

    def __init__(self, name: str, automatic: bool = False):
        self.name = name
        self.automatic = automatic
        self.states: list[State] = []
        self.groups: list[_Group] = []
        self.skipped: list[tuple[State, str]] = []
        self.packed = False
        # Counted in LIVE_PACKS until unpacked, or until its states and buffers are garbage.
        self._live = [False]

    @property
    def buffers(self) -> list:
        return [g.buffer for g in self.groups]

    def _pack(self, states):
        by_dtype: dict = {}  # dtype -> [(state, leaf)]
        for state in states:
            reason = _packable(state)
            if reason is not None:
                self.skipped.append((state, reason))
                continue
            self.states.append(state)
            for position, leaf in enumerate(jax.tree.leaves(state.__dict__['_value'])):
                by_dtype.setdefault(leaf.dtype, []).append((state, position, leaf))
        with _state.STATE_LOCK:
            slots_of = {id(s): [None] * s._treedef.num_leaves for s in self.states}
            for dtype, entries in by_dtype.items():
                leaves = [leaf for _, _, leaf in entries]
                with _concrete():
                    joined = _concatenate(leaves)
                buffer = PackedBuffer(joined,
                                      name=f'{self.name}.{np.dtype(dtype).name}')
                buffer._exposed = False
                group = _Group(buffer, self)
                offset = 0
                for index, (state, position, leaf) in enumerate(entries):
                    shape = tuple(leaf.shape)
                    size = int(np.prod(shape, dtype=np.int64))
                    slot = _Slot(group, index, offset, size, shape)
                    group.slots.append(slot)
                    group.owners.append(state)
                    slots_of[id(state)][position] = slot
                    offset += size
                # Eager reads right after packing are free: the states' own arrays.
                group._cached_for = buffer._value
                group._cache = dict(enumerate(leaves))
                self.groups.append(group)
            for state in self.states:
                state.__dict__.pop('_value')
                state.__dict__['_pack_slots'] = tuple(slots_of[id(state)])
                state.__class__ = _packed_class(type(state))
            self.packed = True
            LIVE_PACKS[0] += 1
            self._live[0] = True
            weakref.finalize(self, _forget, self._live)
            _state.structure_changed()
        return self

    def release(self, state):
        """Take one state out of an automatic pack, about to be given a value of another
        type: it becomes a state of the user's class with no value (the caller stores one at
        once), is never packed automatically again, and compiled functions retrace. Its slot
        in the buffer is left unused."""
        with _state.STATE_LOCK:
            slots = state.__dict__.pop('_pack_slots')
            state.__class__ = unpacked_type(type(state))
            state.__dict__['_exposed'] = True
            self.states.remove(state)
            for slot in slots:
                slot.group.owners[slot.index] = None
            NEVER_AUTO_PACK.add(state)
            for group in self.groups:  # (make_jaxpr's cache compares it)
                buffer = group.buffer
                buffer.__dict__['_pack_version'] = buffer.__dict__.get('_pack_version', 0) + 1
            # Programs reading the buffer read this state through it: they retrace (the set of
            # states they touch changed, as when a Module's State attribute is replaced).
            _state.structure_changed(state_set=True)
            if not self.states:
                self.unpack()

    def unpack(self):
        """Give every packed state its own arrays again (one dispatch per buffer) and retire
        the buffers. Compiled functions retrace on their next call. Idempotent."""
        if not self.packed:
            return
        with _state.STATE_LOCK:
            values = {}
            for group in self.groups:
                for slot, owner in zip(group.slots, group.owners):
                    if owner is not None:  # (None: released, see `release`)
                        values[slot] = group.read(slot)
            for state in self.states:
                slots = state.__dict__.pop('_pack_slots', None)
                state.__class__ = unpacked_type(type(state))
                if slots is not None:
                    state.__dict__['_value'] = state._treedef.unflatten(
                        [values[slot] for slot in slots])
                state.__dict__['_exposed'] = True
            for group in self.groups:
                group.buffer.__class__ = _RetiredBuffer
                group.buffer.__dict__.pop('_value', None)
            self.packed = False
            _forget(self._live)
            _state.structure_changed()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unpack()

    def __repr__(self):
        sizes = ', '.join(f'{g.buffer.label()}: {len(g.slots)} arrays in '
                          f'{g.buffer._avals[0].str_short()}' for g in self.groups)
        state = '' if self.packed else ', unpacked'
        return f'StatePack({len(self.states)} states; {sizes}{state})'


def pack_states(target, *, name: str = 'pack') -> StatePack:
    """Store many small states in one device buffer per dtype, so that compiled steps pass one
    array instead of one per state.

    Args:
      target: a Module (all its states), a mapping of states (``module.states(ParamState)``),
        a State, or an iterable of those.
      name: the buffers' name in the printed IR and in messages (``pack.float32``).

    Returns:
      A :class:`StatePack`; ``pack.unpack()`` (or leaving ``with pack_states(...)``) gives the
      states their own arrays again.

    Every state keeps its identity and ``.value``: reading it eagerly returns its slice of the
    buffer, assigning it updates the slice. Inside ``brainstate.transform.jit`` the pass
    ``pack-states`` turns the reads and writes of packed states into one read and one write of
    the buffer (see ``jitted.optimized_ir(...)``). A state holding a pytree (a layer's
    ``{'weight', 'bias'}``) has each leaf packed into the buffer of its dtype. States that
    cannot be packed (PRNG keys, values not on one device) are left as they are
    (``pack.skipped`` says why). A packed state keeps its shapes and dtypes; to change them,
    unpack first.

    Example::

        pack = brainstate.pack_states(net.states(brainstate.ParamState))
        train_step(x, y)          # one buffer in, one buffer out
        net.layer.w.value         # still the layer's weight
        pack.unpack()
    """
    if _state.TRACE_STACK:
        raise RuntimeError('pack_states must be called outside any brainstate transform.')
    return StatePack(name)._pack(_collect(target))


# -- automatic packing (brainstate.transform.jit) -------------------------------------------

def _env_flag(name: str, default: bool) -> bool:
    text = os.environ.get(name)
    if text is None:
        return default
    return text.strip().lower() not in ('0', 'false', 'no', 'off', '')


#: When ``brainstate.transform.jit`` packs states by itself. A compiled step (not the eager
#: runner's) that reads or writes at least ``min_states`` small states (each array at most
#: ``max_size`` elements) of one dtype on one device of ``platforms``, none sharded, packs them
#: into one buffer (:func:`auto_pack`) at its ``after_calls``-th cached call, and retraces
#: once to use the buffer. ``enabled``: the default (``BRAINSTATE_PACK_STATES=0`` in the
#: environment turns it off; ``=eager`` packs from 2 states at the first cached call, to test
#: the packing everywhere); ``brainstate.environ.set(pack_states=False)`` and ``jit(...,
#: pack_states=False)`` override it.
AUTO_PACK = {
    'enabled': _env_flag('BRAINSTATE_PACK_STATES', True),
    'min_states': 16,
    'max_size': 4096,
    'after_calls': 20,
    # Measured on CPU only so far: on GPU/TPU the chained slice updates may cost a kernel each.
    'platforms': ('cpu',),
}
if os.environ.get('BRAINSTATE_PACK_STATES', '').strip().lower() == 'eager':
    # For testing the packing everywhere: from 2 states, at the first cached call.
    AUTO_PACK.update(min_states=2, after_calls=1)

#: States never packed automatically again (one was released from its automatic pack when
#: given a value of another type: its shape is not fixed).
NEVER_AUTO_PACK: 'weakref.WeakSet[State]' = weakref.WeakSet()


def auto_pack_enabled(option: bool | None) -> bool:
    """Whether a jitted function packs states by itself: its own ``pack_states`` option, else
    the ``brainstate.environ`` setting ``pack_states``, else ``AUTO_PACK['enabled']``."""
    if option is not None:
        return bool(option)
    from . import environ
    setting = environ.get('pack_states', None)
    if setting is not None:
        return bool(setting)
    return AUTO_PACK['enabled']


def _auto_groups(states) -> dict:
    """``{(dtype, device): [state, ...]}`` of the states that automatic packing may take."""
    groups: dict = {}
    max_size = AUTO_PACK['max_size']
    platforms = AUTO_PACK['platforms']
    for state in dict.fromkeys(states):
        if state._shardings is not None or isinstance(state, PackedBuffer) or \
                '_pack_slots' in state.__dict__ or state in NEVER_AUTO_PACK:
            continue
        kind = _auto_kind(state.__dict__.get('_value'), max_size)
        if kind is not None and kind[1].platform in platforms:
            groups.setdefault(kind, []).append(state)
    return groups


def _auto_kind(value, max_size):
    """``(dtype, device)`` of a value automatic packing may take (every leaf a concrete JAX
    array of that numeric dtype on that one device, at most ``max_size`` elements), else None.
    (Cheap checks: it runs over every state of a new compiled step.)"""
    if value is None:
        return None
    kind = None
    for leaf in jax.tree.leaves(value):
        if not isinstance(leaf, jax.Array) or isinstance(leaf, jax.core.Tracer) or \
                leaf.size > max_size:
            return None
        sharding = leaf.sharding
        if not isinstance(sharding, jax.sharding.SingleDeviceSharding):
            return None
        dtype = leaf.dtype
        if dtype.kind not in 'biufc' and not jnp.issubdtype(dtype, np.number):
            return None
        this = (dtype, next(iter(sharding.device_set)))
        if kind is None:
            kind = this
        elif this != kind:
            return None
    return kind


def auto_pack_candidates(states, min_states: int | None = None) -> list:
    """The states of a compiled step that automatic packing would pack: those of each
    (dtype, device) shared by at least ``min_states`` (default ``AUTO_PACK['min_states']``)
    small, unsharded, unpacked states; [] when there are none."""
    least = AUTO_PACK['min_states'] if min_states is None else min_states
    chosen = []
    for group in _auto_groups(states).values():
        if len(group) >= least:
            chosen.extend(group)
    return chosen


_AUTO_NAMES = iter(range(1, 1 << 62))


def auto_pack(states, min_states: int | None = None) -> list:
    """Pack ``auto_pack_candidates(states)`` into an automatic pack (see :data:`AUTO_PACK`): it
    behaves as a :func:`pack_states` pack, except that a state given a value of another shape
    or dtype leaves it (instead of raising). Returns the packs made (one per dtype and device;
    [] when nothing qualifies)."""
    least = AUTO_PACK['min_states'] if min_states is None else min_states
    if _state.TRACE_STACK.stack or not outside_any_jax_trace():
        return []  # (inside a transform: the next call outside one packs)
    with _state.STATE_LOCK:
        packs = [StatePack(f'autopack{next(_AUTO_NAMES)}', automatic=True)._pack(group)
                 for group in _auto_groups(states).values() if len(group) >= least]
    return packs
