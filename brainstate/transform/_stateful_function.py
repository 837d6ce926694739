"""StatefulFunction: the published object API over the one pipeline.

A :class:`StatefulFunction` traces its function once per argument signature through
:func:`~._program.trace_program` (trace -> passes -> lower) and keeps, per signature, the lowered
jaxpr in the published layout: inputs ``(argument leaves, leaves of every state)``, outputs
``(result leaves, leaves of every state)`` (only the written states with
``return_only_write=True``). The equations are our lowered ones; only the inputs and outputs are
ordered the published way (a state the function only writes gets an unused input; one it only
reads is passed through to its output).

Calls (``sf(*args)``, :meth:`StatefulFunction.jaxpr_call_auto`) read the states, evaluate the
jaxpr and write the written states back through :mod:`._state_io`; outside any trace they run as
one compiled program through the eager runner (:mod:`._eager`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable, NamedTuple, Sequence

import jax
import numpy as np
from jax.extend import core as jex_core

from .. import _state
from .._errors import StateArgumentError
from .._state import State
from .._state_pack import pack_analyses, packed_slots
from ._arguments import ArgumentSpec, describe_argument_path
from ._program import StatefulProgram, trace_program
from ._state_io import write_back

__all__ = ['StatefulFunction', 'CacheKey', 'StateTrace', 'get_arg_cache_key', 'make_hashable',
           'ensure_str', 'IR_OPTIMIZATION_NAMES']


class CacheKey(NamedTuple):
    """The immutable key of one compiled signature: static values and the abstract values of
    the dynamic arguments."""
    static_args: tuple
    dyn_args: tuple
    static_kwargs: tuple
    dyn_kwargs: tuple


def ensure_str(x) -> str:
    """``x`` if it is a string; TypeError otherwise."""
    if not isinstance(x, str):
        raise TypeError(f'argument is not a string: {x!r}')
    return x


def make_hashable(obj):
    """A hashable form of ``obj``: lists/tuples become tuples, dicts sorted ``(key, value)``
    tuples, sets frozensets; another unhashable pytree ``(treedef, leaves)``. TypeError when a
    leaf is not hashable."""
    if isinstance(obj, (list, tuple)):
        return tuple(make_hashable(item) for item in obj)
    if isinstance(obj, dict):
        return tuple(sorted((k, make_hashable(v)) for k, v in obj.items()))
    if isinstance(obj, (set, frozenset)):
        return frozenset(make_hashable(item) for item in obj)
    try:
        hash(obj)
        return obj
    except TypeError:
        pass
    try:
        leaves, treedef = jax.tree.flatten(obj)
    except (TypeError, ValueError):
        raise TypeError(f'Cannot make a {type(obj).__name__} hashable for a cache key: '
                        f'{obj!r}. Static arguments must be hashable.') from None
    for leaf in leaves:
        try:
            hash(leaf)
        except TypeError:
            if leaf is obj:  # (an array: one leaf, itself)
                raise TypeError(
                    f'Static arguments must be hashable, but got a {type(obj).__name__} '
                    f'({obj!r}). Pass arrays as dynamic arguments, or convert the value to a '
                    f'hashable form (e.g. a tuple).') from None
            raise TypeError(
                f'Static arguments must be hashable, but a {type(obj).__name__} holds a '
                f'{type(leaf).__name__} leaf ({leaf!r}). Pass arrays as dynamic arguments, '
                f'or convert the value to a hashable form (e.g. a tuple).') from None
    return treedef, tuple(leaves)


def _abstract(x):
    if isinstance(x, jax.ShapeDtypeStruct):
        return jax.core.ShapedArray(x.shape, x.dtype, weak_type=bool(x.weak_type))
    if isinstance(x, jax.core.Tracer):
        return x.aval
    return jax.typeof(x)


def _refuse_state(x, where: str):
    if isinstance(x, State):
        raise StateArgumentError(
            f'Inputs/outputs of brainstate transforms cannot be an instance of State, but '
            f'{where} is State {x.label()}. Read it inside the function instead (the transform threads it '
            f'for you), or pass `state.value`.')


def _is_state(x) -> bool:
    return isinstance(x, State)


def _check_leaves(dyn_args, dyn_kwargs, fn_to_check, positions=None):
    """``fn_to_check(leaf, where)`` on every leaf; ``where`` names it as the user wrote the
    call ("positional argument 1['w']", "keyword argument 'scale'"); ``positions``: the
    position of each of ``dyn_args`` in the call (static ones left out)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path((tuple(dyn_args), dict(dyn_kwargs)),
                                                           is_leaf=_is_state)[0]:
        fn_to_check(leaf, describe_argument_path(path, positions))


_NO_KWARGS = jax.tree.structure({})


def _name_unhashable(static_argnums, args, static_kwargs, error):
    """Raise make_hashable's TypeError again, naming the static argument at fault."""
    named = [(f'positional argument {i}', a) for i, a in enumerate(args) if i in static_argnums]
    named += [(f'keyword argument {k!r}', v) for k, v in static_kwargs]
    for where, value in named:
        try:
            make_hashable(value)
        except TypeError as inner:
            raise TypeError(f'{inner} (At static {where}.)') from None


def _types(obj):
    if isinstance(obj, tuple):
        return tuple(_types(item) for item in obj)
    return type(obj)


class _StaticValues(tuple):
    """The static values of a cache key: equal to another key's when the values are equal and
    of the same types (as JAX keys static arguments: ``1``, ``1.0`` and ``True`` are equal in
    Python, but a trace may give each its own program, e.g. ``jnp.full(3, n)``). Equal to a
    plain tuple of equal values."""

    __slots__ = ()

    def __eq__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        if not tuple.__eq__(self, other):
            return False
        return not isinstance(other, _StaticValues) or _types(self) == _types(other)

    def __ne__(self, other):
        return not self == other

    __hash__ = tuple.__hash__


def get_arg_cache_key(static_argnums, static_argnames, args: tuple, kwargs: dict,
                      fn_to_check: Callable | None = _refuse_state) -> CacheKey:
    """The :class:`CacheKey` of a call: static values as given, dynamic ones by abstract value.

    ``fn_to_check(leaf, where)`` is run on every dynamic leaf first (by default it refuses
    States with a ValueError); ``None`` skips it.
    """
    static_args, dyn_args, positions = [], [], []
    for i, arg in enumerate(args):
        if i in static_argnums:
            static_args.append(arg)
        else:
            dyn_args.append(arg)
            positions.append(i)
    static_kwargs, dyn_kwargs = [], []
    for k, v in sorted(kwargs.items()):
        (static_kwargs if k in static_argnames else dyn_kwargs).append((k, v))
    arg_leaves, arg_tree = jax.tree.flatten(tuple(dyn_args))
    kw_leaves, kw_tree = jax.tree.flatten(dict(dyn_kwargs)) if dyn_kwargs else ([], _NO_KWARGS)
    if fn_to_check is _refuse_state:
        # The common case: the leaves' paths (costly to format) only for the error. (A State
        # is no pytree: it is one of the leaves.)
        if any(isinstance(leaf, State) for leaf in arg_leaves) or \
                any(isinstance(leaf, State) for leaf in kw_leaves):
            _check_leaves(dyn_args, dyn_kwargs, fn_to_check, positions)
    elif fn_to_check is not None:
        _check_leaves(dyn_args, dyn_kwargs, fn_to_check, positions)
    try:
        hashable_args = make_hashable(tuple(static_args))
        hashable_kwargs = make_hashable(static_kwargs)
    except TypeError as error:
        _name_unhashable(static_argnums, args, static_kwargs, error)
        raise
    return CacheKey(static_args=_StaticValues(hashable_args),
                    dyn_args=(arg_tree, tuple(_abstract(x) for x in arg_leaves)),
                    static_kwargs=_StaticValues(hashable_kwargs),
                    dyn_kwargs=(kw_tree, tuple(_abstract(x) for x in kw_leaves)))


class StateTrace:
    """Which states a compiled signature touches, in the order of its jaxpr's state inputs, and
    whether each is written (``been_writen``, the published spelling)."""

    def __init__(self, states: Sequence[State], written: set):
        self.states = list(states)
        self.been_writen = [s in written for s in self.states]

    def get_read_states(self, replace_writen: bool = False) -> tuple:
        if replace_writen:
            return tuple(None if w else s for s, w in zip(self.states, self.been_writen))
        return tuple(s for s, w in zip(self.states, self.been_writen) if not w)

    def get_write_states(self, replace_read: bool = False) -> tuple:
        if replace_read:
            return tuple(s if w else None for s, w in zip(self.states, self.been_writen))
        return tuple(s for s, w in zip(self.states, self.been_writen) if w)

    def get_state_values(self) -> list:
        return [s.value for s in self.states]

    @property
    def _original_state_values(self) -> list:
        # (The published attribute; States hold concrete values outside any call.)
        return [s._value for s in self.states]

    def get_read_state_values(self, replace_writen: bool = False) -> list:
        return [None if s is None else s.value for s in self.get_read_states(replace_writen)]

    def get_write_state_values(self, replace_read: bool = False) -> list:
        return [None if s is None else s.value for s in self.get_write_states(replace_read)]

    def __repr__(self):
        return (f'StateTrace(states={[s.label() for s in self.states]}, '
                f'been_writen={self.been_writen})')


# The published optimization names, mapped onto our passes (algebraic simplification keeps
# the sign of zeros here: a compiled program's results do not change).
IR_OPTIMIZATION_NAMES = {
    'constant_fold': 'fold-constants', 'fold-constants': 'fold-constants',
    'dce': 'dce', 'dead_code_elimination': 'dce',
    'cse': 'cse', 'common_subexpression_elimination': 'cse',
    'copy_propagation': 'copy-propagation',
    'algebraic_simplification': 'algebraic-simplify',
}


def _passes_for(ir_optimizations):
    if ir_optimizations is None:
        return None
    names = []
    for name in ir_optimizations:
        if name not in IR_OPTIMIZATION_NAMES:
            raise ValueError(f'Unknown IR optimization {name!r}; choose from '
                             f'{sorted(IR_OPTIMIZATION_NAMES)}.')
        if IR_OPTIMIZATION_NAMES[name] and IR_OPTIMIZATION_NAMES[name] not in names:
            names.append(IR_OPTIMIZATION_NAMES[name])
    return names


def _debug_info(jaxpr, program, n_in: int, n_out: int):
    info = jaxpr.debug_info
    if info is None:
        return None
    return info._replace(arg_names=None, result_paths=None).with_unknown_names() \
        if hasattr(info, 'with_unknown_names') else None


def _read_through(state, states) -> bool:
    """Whether ``state`` is a packed state read through one of ``states`` (its pack's buffer:
    the pack-states pass replaced its reads; see brainstate/_state_pack.py)."""
    slots = packed_slots(state)
    return slots is not None and any(slot.buffer in states for slot in slots)


class _Compilation:
    """What one signature compiled to. The jaxpr in the published layout and the result shapes
    are made on first use: ``jit`` records every program it traces here, and most are never
    asked for them (their cost grows with the number of states)."""

    __slots__ = ('program', 'return_only_write', 'state_trace', 'state_avals', 'state_types',
                 '_layout', 'earlier')

    def __init__(self, program: StatefulProgram, return_only_write: bool):
        lowered = program.lowered
        states = list(program.states)
        # A state read whose value turned out unused is still one of the function's states
        # (an input of the jaxpr), as published.
        known = set(states)
        states += [s for s in program.traced_reads
                   if s not in known and not _read_through(s, known)]
        self.program = program
        self.return_only_write = return_only_write
        self.state_trace = StateTrace(states, set(lowered.written_states))
        self.state_avals = tuple((s.treedef, tuple((a.shape, a.dtype) for a in s.avals))
                                 for s in states)
        # (Packing or unpacking a state swaps its class: see brainstate/_state_pack.py.)
        self.state_types = tuple((type(s), s.__dict__.get('_pack_version')) for s in states)
        self._layout = None
        # The compilations of the same key it replaced, latest first (at most _EARLIER_KEPT):
        # traced under other brainstate.environ settings or another pass pipeline, which
        # another thread may still be using (see StatefulFunction._keep).
        self.earlier = ()

    @property
    def num_outputs(self) -> int:
        return self.program.lowered.num_outputs

    @property
    def out_states(self) -> list:
        """The states whose values the jaxpr returns after the results (the written ones with
        ``return_only_write``, else every state)."""
        return self._built()[1]

    @property
    def jaxpr(self):
        """The ClosedJaxpr: the user's arguments, then one input group per state (in
        ``state_trace.states`` order); the results, then one output group per ``out_states``."""
        return self._built()[0]

    @property
    def out_shapes(self):
        """``(result shapes, state shapes)`` as ShapeDtypeStructs: the latter a tuple with one
        entry per state of ``state_trace.states``, None for a state the jaxpr does not return
        (one only read, with ``return_only_write``)."""
        closed, out_states, shapes = self._built()
        if shapes is None:
            shapes = self._out_shapes()
            self._layout = (closed, out_states, shapes)
        return shapes

    @property
    def out_treedef(self):
        return jax.tree.structure(self.out_shapes)

    def _built(self):
        if self._layout is None:
            layout = self._build()
            if self._layout is None:  # (another thread may have built it meanwhile: keep one)
                self._layout = layout
        return self._layout

    def _build(self):
        program = self.program
        lowered = program.lowered
        closed = lowered.closed_jaxpr
        jaxpr = closed.jaxpr
        states = self.state_trace.states
        written = list(lowered.written_states)
        written_set = set(written)
        # (The tree structures as compiled: a state's may have changed since; see stale.)
        treedefs = {s: treedef for s, (treedef, _) in zip(states, self.state_avals)}
        n_read_leaves = sum(treedefs[s].num_leaves for s in lowered.read_states)
        read_vars = list(jaxpr.invars[:n_read_leaves])
        arg_vars = list(jaxpr.invars[n_read_leaves:])
        # One input group per state, in `states` order (only-written states get fresh ones).
        in_groups, offset = {}, 0
        for state in lowered.read_states:
            count = treedefs[state].num_leaves
            in_groups[state] = read_vars[offset:offset + count]
            offset += count
        for (treedef, avals), state in zip(self.state_avals, states):
            if state not in in_groups:
                in_groups[state] = [jex_core.Var(jax.core.ShapedArray(shape, dtype))
                                    for shape, dtype in avals]
        n = lowered.num_outputs
        out_groups, offset = {}, n
        for state in written:
            count = treedefs[state].num_leaves
            out_groups[state] = list(jaxpr.outvars[offset:offset + count])
            offset += count
        out_states = ([s for s in states if s in written_set] if self.return_only_write
                      else list(states))
        invars = arg_vars + [v for s in states for v in in_groups[s]]
        outvars = list(jaxpr.outvars[:n]) + [v for s in out_states
                                             for v in out_groups.get(s, in_groups[s])]
        closed_out = jex_core.ClosedJaxpr(
            jaxpr.replace(invars=invars, outvars=outvars,
                          debug_info=_debug_info(jaxpr, program, len(invars), len(outvars))),
            closed.consts)
        return closed_out, out_states, None

    def _out_shapes(self):
        closed, out_states, _ = self._built()
        n = self.num_outputs
        avals = closed.out_avals
        out = self.program.out_tree.unflatten(
            [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals[:n]])
        treedefs = {s: treedef for s, (treedef, _) in zip(self.state_trace.states,
                                                           self.state_avals)}
        by_state, offset = {}, n
        for state in out_states:
            count = treedefs[state].num_leaves
            by_state[state] = treedefs[state].unflatten(
                [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals[offset:offset + count]])
            offset += count
        # One entry per state, in `state_trace.states` order (None: a state the jaxpr does not
        # return, i.e. not written, with return_only_write), as published.
        return out, tuple(by_state.get(s) for s in self.state_trace.states)

    def stale(self) -> bool:
        if not self.program.environ_reads.hold():  # a brainstate.environ setting it read changed
            return True
        states = self.state_trace.states
        if any(type(s) is not t or s.__dict__.get('_pack_version') != v
               for s, (t, v) in zip(states, self.state_types)):
            return True  # packed or unpacked since (brainstate.pack_states)
        for state, (treedef, avals) in zip(states, self.state_avals):
            leaves, current = jax.tree.flatten(state._value)
            if current != treedef or len(leaves) != len(avals):
                return True
            for leaf, (shape, dtype) in zip(leaves, avals):
                if np.shape(leaf) != shape or jax.numpy.result_type(leaf) != dtype:
                    return True
        return False


#: How many replaced compilations of one key a StatefulFunction keeps (see ``_keep``).
_EARLIER_KEPT = 3


class _BoundedCache:
    """An LRU dict with hit/miss counters (the published ``get_cache_stats`` figures)."""

    def __init__(self, maxsize: int = 128):
        self.maxsize = maxsize
        self.data: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        entry = self.data.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
            self.data.move_to_end(key)
        return entry

    def set(self, key, value):
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.maxsize:
            self.data.popitem(last=False)

    def __contains__(self, key):
        return key in self.data

    def __len__(self):
        return len(self.data)

    def keys(self):
        return list(self.data.keys())

    def stats(self) -> dict:
        total = self.hits + self.misses
        return {'size': len(self.data), 'maxsize': self.maxsize, 'hits': self.hits,
                'misses': self.misses, 'hit_rate': self.hits / total if total else 0.0}


def _index_tuple(x) -> tuple:
    if x is None:
        return ()
    if isinstance(x, (int, np.integer)):
        return (int(x),)
    return tuple(int(i) for i in x)


def _str_tuple(x) -> tuple:
    if x is None:
        return ()
    if isinstance(x, str):
        return (x,)
    return tuple(ensure_str(s) for s in x)


class StatefulFunction:
    """A stateful function compiled per argument signature into a jaxpr, with the states it
    reads and writes.

    Args:
      fun: the function; it may read and write ``State.value``.
      static_argnums / static_argnames: arguments that are Python values (they key the cache).
      axis_env: accepted for compatibility (named axes come from the enclosing transform).
      name: a name for messages.
      return_only_write: the jaxpr returns only the written states (else every state).
      ir_optimizations: names of optimizations to run (``'dce'``, ``'cse'``,
        ``'constant_fold'``, ...), mapped onto our passes; ``None``: the default pipeline.

    Example::

        sf = brainstate.transform.StatefulFunction(step).make_jaxpr(x)
        key = sf.get_arg_cache_key(x)
        sf.get_jaxpr_by_cache(key), sf.get_states_by_cache(key)
        out = sf(x)     # runs it, updating the states
    """

    def __init__(self, fun: Callable, static_argnums: int | Iterable[int] = (),
                 static_argnames: str | Iterable[str] = (), axis_env=None,
                 name: str | None = None, return_only_write: bool = True,
                 ir_optimizations: str | Sequence[str] | None = None, *, passes=None):
        self.fun = fun
        self.static_argnums = _index_tuple(static_argnums)
        self.static_argnames = _str_tuple(static_argnames)
        self.axis_env = axis_env
        self.name = name
        self.return_only_write = return_only_write
        if isinstance(ir_optimizations, str):
            ir_optimizations = (ir_optimizations,)
        self.ir_optimizations = ir_optimizations
        self.passes = passes if passes is not None else _passes_for(ir_optimizations)
        self._compilation_cache = _BoundedCache(128)
        self._cache_lock = threading.RLock()
        self._spec = None
        self._statics = None
        # Read and write packed states through their buffer, as jit does (make_jaxpr sets it:
        # the jaxpr shown is the one jit compiles; see brainstate.pack_states).
        self.packed = False

    def __repr__(self):
        name = getattr(self.fun, '__name__', type(self.fun).__name__)
        return f'StatefulFunction({name}, static_argnums={self.static_argnums}, ' \
               f'static_argnames={self.static_argnames})'

    # -- keys and compilation ------------------------------------------------------------------

    def _key_statics(self) -> tuple:
        """``(static_argnums, static_argnames)`` as the trace splits the arguments (the
        argument spec: a static argument named in ``static_argnames`` may come by position,
        negative positions count from the end), so the cache key keys exactly the values the
        trace baked in. (A ``static_argnums`` argument given by keyword is refused by the
        compile, as published: its name is not added.)"""
        statics = self._statics
        if statics is None:
            statics = (self.static_argnums, self.static_argnames)
            if statics != ((), ()):
                try:
                    spec = self._argument_spec(0)
                    statics = (spec.static_argnums, self.static_argnames)
                except ValueError:
                    pass  # (a bad static_argnums: the compile reports it)
            self._statics = statics
        return statics

    def get_arg_cache_key(self, *args, compile_if_miss: bool = False, **kwargs) -> CacheKey:
        """The :class:`CacheKey` of a call; with ``compile_if_miss`` also compile it."""
        key = get_arg_cache_key(*self._key_statics(), args, kwargs)
        if compile_if_miss:
            entry = self._compilation_cache.data.get(key)
            if entry is None or entry.stale():
                self.make_jaxpr(*args, **kwargs)
        return key

    def _argument_spec(self, nargs: int) -> ArgumentSpec:
        if self._spec is None:
            self._spec = ArgumentSpec(self.fun, self.static_argnums, self.static_argnames)
        return self._spec

    def make_jaxpr(self, *args, **kwargs) -> 'StatefulFunction':
        """Compile the function for these arguments (if not cached and current); returns self."""
        self._compile(args, kwargs)
        return self

    def _compile(self, args: tuple, kwargs: dict) -> CacheKey:
        """What :meth:`make_jaxpr` does; returns the call's cache key."""
        key = self.get_arg_cache_key(*args, **kwargs)
        if self.static_argnums and max(self.static_argnums) >= len(args):
            raise ValueError(
                f'static_argnums contains index {max(self.static_argnums)}, but only '
                f'{len(args)} positional argument(s) were given.')
        with self._cache_lock:
            entry = self._compilation_cache.get(key)
            if entry is not None and not entry.stale():
                self._read_in_enclosing_trace(key)
                return key
            current = None if entry is None else next(
                (c for c in entry.earlier if not c.stale()), None)
            if current is not None:  # traced before under what is in force here
                self._keep(key, current)
                self._read_in_enclosing_trace(key)
                return key
            if entry is not None:
                for state in entry.state_trace.states:  # resync avals after `_value` edits
                    if state.has_value():  # (not a retired pack buffer)
                        state.restore_value(state._value)
            # A stale entry stays readable (by other threads) until the new one replaces it;
            # if tracing fails, it goes.
            try:
                spec = self._argument_spec(len(args))
                sig = spec.signature(args, kwargs, allow_tracers=True)
                program = trace_program(self.fun, spec, sig, passes=self.passes,
                                        analyses=pack_analyses() if self.packed else ())
            except TypeError as error:
                self._compilation_cache.data.pop(key, None)
                if 'State' in str(error) and 'returned' in str(error):
                    raise ValueError(str(error)) from error
                raise
            except BaseException:
                self._compilation_cache.data.pop(key, None)
                raise
            self._keep(key, _Compilation(program, self.return_only_write))
        self._read_in_enclosing_trace(key)
        return key

    def _keep(self, key, compilation: _Compilation) -> None:
        """Make ``compilation`` the one of ``key``; the one it replaces and that one's earlier
        ones stay as its ``earlier`` (two threads under two pipelines or environ contexts then
        reuse theirs in turn instead of retracing at every call)."""
        old = self._compilation_cache.data.get(key)
        if old is not None and old is not compilation:
            chain = (old,) + old.earlier
            compilation.earlier = tuple(c for c in chain if c is not compilation)[:_EARLIER_KEPT]
            old.earlier = ()  # (its list moved: no chain of compilations, no cycle)
        self._compilation_cache.set(key, compilation)

    def _read_in_enclosing_trace(self, key) -> None:
        """Inside another brainstate trace (``make_jaxpr`` of a function that itself calls
        ``make_jaxpr``), the states this function touches are read by the enclosing trace
        too, as published: they are among the enclosing function's states."""
        if not _state.TRACE_STACK.stack:
            return
        entry = self._compilation_cache.data.get(key)
        if entry is not None:
            for state in entry.state_trace.states:
                state.value  # noqa: B018 - a read recorded by the enclosing trace

    def _get(self, key) -> _Compilation:
        entry = self._compilation_cache.data.get(key)
        if entry is None:
            available = list(self._compilation_cache.data)
            raise ValueError(
                f'{self!r} is not compiled for these arguments.\n  Requested key: {key}\n  '
                f'Available keys ({len(available)}): {available}\nCall make_jaxpr() with '
                f'these arguments first (or use the *_by_call getters, which compile on a '
                f'miss).')
        if entry.earlier and not entry.program.environ_reads.hold():
            # Compiled under other environ settings or another pipeline than this thread's
            # (another thread's latest): the one of this thread's, where kept.
            entry = next((c for c in entry.earlier if c.program.environ_reads.hold()), entry)
        return entry

    _get_compilation = _get

    def record(self, args, kwargs, program: StatefulProgram):
        """Keep a program another transform traced for these arguments (``jit`` shares its
        traces this way)."""
        key = get_arg_cache_key(*self._key_statics(), args, kwargs, fn_to_check=None)
        with self._cache_lock:
            self._keep(key, _Compilation(program, self.return_only_write))

    def _compilation_is_stale(self, compilation: _Compilation) -> bool:
        """Whether a tracked state's tree, shape or dtype changed since ``compilation``."""
        return compilation.stale()

    def _validate_state_shapes(self, cache_key) -> None:
        """ValueError when a tracked state no longer has the tree, shapes and dtypes it was
        compiled with."""
        entry = self._get(cache_key)
        for i, (state, (treedef, avals)) in enumerate(zip(entry.state_trace.states,
                                                          entry.state_avals)):
            leaves, current = jax.tree.flatten(state._value)
            now = tuple((np.shape(x), jax.numpy.result_type(x)) for x in leaves)
            if current != treedef or now != avals:
                raise ValueError(
                    f'State shape/dtype mismatch for state {i} ({state.label()}): compiled '
                    f'with {avals} ({treedef}), but it now holds {now} ({current}). Call '
                    f'clear_cache() and recompile, or keep state shapes fixed.')

    def __pretty_repr_item__(self, k, v):
        return None if k.startswith('_') else (k, v)

    def _by_call(self, args, kwargs, compile_if_miss: bool) -> _Compilation:
        key = self.get_arg_cache_key(*args, compile_if_miss=compile_if_miss, **kwargs)
        return self._get(key)

    # -- getters -------------------------------------------------------------------------------

    def get_jaxpr_by_cache(self, cache_key: Hashable):
        """The ClosedJaxpr compiled for ``cache_key``."""
        return self._get(cache_key).jaxpr

    def get_jaxpr(self, *args, compile_if_miss: bool = True, **kwargs):
        """The ClosedJaxpr for these arguments."""
        return self._by_call(args, kwargs, compile_if_miss).jaxpr

    def get_out_shapes_by_cache(self, cache_key: Hashable):
        """``(result shapes, state shapes)`` as ShapeDtypeStructs; the state shapes have one
        entry per state of :meth:`get_states_by_cache` (None for a state only read, with
        ``return_only_write``)."""
        return self._get(cache_key).out_shapes

    def get_out_shapes(self, *args, compile_if_miss: bool = True, **kwargs):
        return self._by_call(args, kwargs, compile_if_miss).out_shapes

    def get_out_treedef_by_cache(self, cache_key: Hashable):
        """The tree structure of ``(result, state values)``."""
        return self._get(cache_key).out_treedef

    def get_out_treedef(self, *args, compile_if_miss: bool = True, **kwargs):
        return self._by_call(args, kwargs, compile_if_miss).out_treedef

    def get_state_trace_by_cache(self, cache_key: Hashable) -> StateTrace:
        """The :class:`StateTrace` (states and which are written)."""
        return self._get(cache_key).state_trace

    def get_state_trace(self, *args, compile_if_miss: bool = True, **kwargs) -> StateTrace:
        return self._by_call(args, kwargs, compile_if_miss).state_trace

    def get_states_by_cache(self, cache_key: Hashable) -> tuple:
        """Every state the function touches, in the order of the jaxpr's state inputs."""
        return tuple(self._get(cache_key).state_trace.states)

    def get_states(self, *args, compile_if_miss: bool = True, **kwargs) -> tuple:
        return tuple(self._by_call(args, kwargs, compile_if_miss).state_trace.states)

    def get_read_states_by_cache(self, cache_key: Hashable) -> tuple:
        """The states the function reads but does not write."""
        return self._get(cache_key).state_trace.get_read_states()

    def get_read_states(self, *args, compile_if_miss: bool = True, **kwargs) -> tuple:
        return self._by_call(args, kwargs, compile_if_miss).state_trace.get_read_states()

    def get_write_states_by_cache(self, cache_key: Hashable) -> tuple:
        """The states the function writes."""
        return self._get(cache_key).state_trace.get_write_states()

    def get_write_states(self, *args, compile_if_miss: bool = True, **kwargs) -> tuple:
        return self._by_call(args, kwargs, compile_if_miss).state_trace.get_write_states()

    def get_program(self, *args, compile_if_miss: bool = True, **kwargs) -> StatefulProgram:
        """Our :class:`~._program.StatefulProgram` (IR graph, pass records, timings)."""
        return self._by_call(args, kwargs, compile_if_miss).program

    # -- cache management ----------------------------------------------------------------------

    def get_cache_stats(self) -> dict:
        """``{'compilation_cache': {size, maxsize, hits, misses, hit_rate}}``."""
        return {'compilation_cache': self._compilation_cache.stats()}

    def clear_cache(self) -> None:
        """Forget every compiled signature."""
        with self._cache_lock:
            self._compilation_cache.data.clear()

    def validate_states(self, cache_key: Hashable) -> bool:
        """True when every state of the signature still holds a value (ValueError otherwise)."""
        entry = self._get(cache_key)
        bad = [i for i, s in enumerate(entry.state_trace.states) if not hasattr(s, 'value')]
        if bad:
            raise ValueError(f'Found {len(bad)} invalid states at indices {bad}; states must '
                             f'have a value.')
        return True

    def validate_all_states(self) -> dict:
        """:meth:`validate_states` for every cached signature (a message for the failures)."""
        results = {}
        for key in list(self._compilation_cache.data):
            try:
                results[key] = self.validate_states(key)
            except ValueError as error:
                results[key] = str(error)
        return results

    # -- calling -------------------------------------------------------------------------------

    def _dynamic_leaves(self, args, kwargs, state_vals) -> list:
        sig = self._argument_spec(len(args)).signature(args, kwargs, allow_tracers=True)
        return list(sig.leaves) + jax.tree.leaves(list(state_vals))

    def jaxpr_call(self, state_vals, *args, **kwargs):
        """Evaluate the compiled jaxpr on ``state_vals`` (one value per state of
        :meth:`get_states`) and the arguments; returns ``(new_state_vals, out)``, the new values
        of every state (read-only ones unchanged). No State is touched."""
        key = self.get_arg_cache_key(*args, compile_if_miss=True, **kwargs)
        entry = self._get(key)
        states = entry.state_trace.states
        if len(state_vals) != len(states):
            raise ValueError(f'State length mismatch: expected {len(states)} states, got '
                             f'{len(state_vals)}.')
        missing = [i for i, v in enumerate(state_vals) if v is None]
        if missing:
            raise ValueError(f'state_vals contains None at index(es) {missing}; give every '
                             f'tracked state its value.')
        closed = entry.jaxpr
        leaves = self._dynamic_leaves(args, kwargs, state_vals)
        outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *leaves)
        n = entry.num_outputs
        out = entry.program.out_tree.unflatten(outs[:n])
        by_state, offset = {}, n
        for state in entry.out_states:
            count = state.treedef.num_leaves
            by_state[state] = state.treedef.unflatten(outs[offset:offset + count])
            offset += count
        new_vals = [by_state.get(s, v) for s, v in zip(states, state_vals)]
        return new_vals, out

    def debug_call(self, state_vals, *args, **kwargs):
        """Run the Python function itself (no jaxpr) from ``state_vals``; returns
        ``(new_state_vals, out)`` and leaves the states at their new values."""
        key = self.get_arg_cache_key(*args, compile_if_miss=True, **kwargs)
        states = self._get(key).state_trace.states
        if len(state_vals) != len(states):
            raise ValueError(f'State length mismatch: expected {len(states)} states, got '
                             f'{len(state_vals)}.')
        for state, value in zip(states, state_vals):
            state.restore_value(value)
        out = self.fun(*args, **kwargs)
        return [s.value for s in states], out

    def jaxpr_call_auto(self, *args, **kwargs):
        """Run the compiled function, reading the states and writing the written ones back."""
        if jax.config.jax_disable_jit and not _state.TRACE_STACK:
            return self.fun(*args, **kwargs)
        if not _state.TRACE_STACK:
            from ._eager import run_eagerly
            return run_eagerly(self._traced_call, args, kwargs,
                               name=getattr(self.fun, '__name__', 'stateful_function'),
                               static_argnums=self._key_statics()[0],
                               static_argnames=self._key_statics()[1])
        return self._traced_call(*args, **kwargs)

    def _traced_call(self, *args, **kwargs):
        key = self.get_arg_cache_key(*args, compile_if_miss=True, **kwargs)
        entry = self._get(key)
        states = entry.state_trace.states
        new_vals, out = self.jaxpr_call([s.value for s in states], *args, **kwargs)
        written = entry.state_trace.get_write_states()
        write_back(written, [v for s, v in zip(states, new_vals) if s in set(written)],
                   f'{self!r}')
        return out

    def __call__(self, *args, **kwargs):
        """Call the function with automatic state management (:meth:`jaxpr_call_auto`)."""
        return self.jaxpr_call_auto(*args, **kwargs)

