"""vmap and vmap_new_states: map a stateful function over a batch axis.

States are **shared** by all lanes unless declared batched:

* ``in_states``: the state's stored value already carries the batch axis; each lane reads and
  writes its own slice (e.g. the membrane potentials of 64 simulated trials);
* ``out_states``: the state is read shared and its written value comes out with the batch axis
  (its stored shape gains the axis).

How a call runs (see DESIGN.md, "transforms compose"):

1. trace the function on *per-lane* values: each argument without its ``in_axes`` dimension,
   each ``in_states`` state without its batch axis (the state's avals are swapped for the per-lane
   ones while tracing, and restored after);
2. run the pass pipeline, then the ``batching-analysis`` pass, which decides which read states
   are mapped, which written values differ per lane, and raises
   :class:`~brainstate.BatchAxisError` for a per-lane value written into a shared state;
3. lower to a pure jaxpr and apply ``jax.vmap`` to it with ``in_axes`` / ``out_axes`` derived from
   the analysis; read the states with ``state.value`` in the enclosing context (eagerly, inside
   ``jit``, a loop or ``grad``), and write the results back once, after success.

Random numbers: a :class:`~brainstate.random.RandomState` the function draws from (and that is
not declared batched) is split into one key per lane, so lanes draw different numbers, and the
state's key advances once per call, exactly as ``split_key(axis_size)`` does.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from typing import Any, Callable, Hashable, Sequence

import jax
import numpy as np
from jax.api_util import flatten_axes

from .. import _state
from .._errors import ArgumentTypeError, ArgumentValueError, BatchAxisError, StateArgumentError
from .._state import State
from ..passes import BatchingSpec
from ..util.filter import to_predicate
from ._arguments import ArgumentSpec, CallSignature, describe_argument_path
from ._direct import DirectContext, NotDirect, check_result
from ._eager import run_eagerly
from ._program import trace_program
from ._state_io import store_new_state, write_back
from ._transformed import TransformedFunction

from .._compat import extend_axis_env as _extend_axis_env

__all__ = ['vmap', 'vmap_new_states', 'VmappedFunction']

_Tracer = jax.core.Tracer
from jax._src.array import ArrayImpl as _ArrayImpl  # (a JAX array, as State's module uses)


def _random_state_class():
    from ..random import RandomState
    return RandomState


# -- in_states / out_states ----------------------------------------------------------------------

def _is_axis_mapping(obj) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0 and
            all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in obj))


class _Declaration:
    """``in_states`` or ``out_states`` resolved: explicit States with their axes, and filters
    (resolved against each state the function touches)."""

    def __init__(self, obj, what: str, where: str):
        self.what, self.where = what, where
        self.states: dict[State, int] = {}
        self.filters: list[tuple[Callable, int]] = []
        if obj is None:
            return
        if _is_axis_mapping(obj):
            for axis, item in obj.items():
                self._add(item, int(axis))
        else:
            self._add(obj, 0)

    def _cache_key(self):
        """What the declaration says, for the eager runner's function key (None when it
        declares nothing)."""
        if not self.states and not self.filters:
            return None
        return (self.what, self.states, self.filters)

    def _add(self, obj, axis: int):
        if isinstance(obj, State):
            previous = self.states.get(obj)
            if previous is not None and previous != axis:
                raise BatchAxisError(
                    f'{self.where}: State {obj.label()} is declared in {self.what} on axis '
                    f'{previous} and on axis {axis}; a state has one batch axis.')
            self.states[obj] = axis
        elif isinstance(obj, Mapping):  # e.g. model.states(...): a mapping of States
            for item in obj.values():
                self._add(item, axis)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                self._add(item, axis)
        else:
            try:
                predicate = to_predicate(obj)
            except TypeError:
                raise ArgumentTypeError(
                    f'{self.where}: {self.what} must be a State, an iterable or mapping of States '
                    f'(e.g. `net.states(brainstate.HiddenState)`), a filter (a State class, a tag '
                    f'string, a predicate `f(path, state)`), or `{{axis: states}}`; got '
                    f'{type(obj).__name__} {obj!r}.') from None
            self.filters.append((predicate, axis))

    def axis_of(self, state: State) -> int | None:
        """The declared axis of ``state``, or None. Filters never select random states (their
        key is split per lane instead); declare one explicitly to store a key per lane."""
        axis = self.states.get(state)
        if axis is not None or not self.filters:
            return axis
        if isinstance(state, _random_state_class()):
            return None
        path = state.path() or ()
        for predicate, axis in self.filters:
            if predicate(path, state):
                return axis
        return None


class _Lanes:
    """vmap's per-lane view of its batched states: ``lanes(state)`` gives the avals one lane
    sees (the stored avals without the batch axis), or None for a state read shared.

    An input of the compilation (``trace_program(lanes=)``, seen as ``State.avals`` by the
    trace, every trace nested in it and the passes), never a change of any State.
    Explicitly declared states are resolved up front; states selected by a filter when a trace
    first touches them, so the filter also applies inside loop bodies and nested transforms.
    An enclosing vmap's view comes first: a state batched by both loses both axes.
    """

    def __init__(self, declared: _Declaration, where: str, outer=None,
                 free_shared_writes: bool = False):
        self.declared = declared
        self.free_shared_writes = free_shared_writes
        self.where = where
        self.outer = outer
        self.axes: dict[State, int] = {}
        self.sizes: dict[State, int] = {}
        self._memo: dict[State, tuple | None] = {}

    def __call__(self, state: State):
        try:
            return self._memo[state]
        except KeyError:
            pass
        outer = self.outer(state) if self.outer is not None else None
        axis = self.declared.axis_of(state)
        avals = outer if axis is None else self._lane_avals(state, outer or state._avals, axis)
        self._memo[state] = avals
        return avals

    def may_reshape(self, state: State) -> bool:
        """Whether a write may give ``state`` other shapes (the trace asks): under vmap2, a
        state read shared whose stored value is not batched by an enclosing mapping."""
        return (self.free_shared_writes and self(state) is None and
                (self.outer is None or self.outer(state) is None))

    def _lane_avals(self, state: State, avals, axis: int) -> tuple:
        lane_avals, sizes = [], set()
        for aval in avals:
            ndim = len(aval.shape)
            if not -ndim <= axis < ndim:
                raise BatchAxisError(
                    f'{self.where}: State {state.label()} is declared batched on axis {axis} '
                    f'(in_states), but it holds {aval.str_short()}, which has no axis {axis}. '
                    f'Store one value per lane along that axis first (e.g. `state.value = '
                    f'jnp.zeros((batch,) + shape)`, or create the state with vmap_new_states), '
                    f'or declare it with out_states if it should gain the batch axis.')
            a = axis % ndim
            sizes.add(aval.shape[a])
            lane_avals.append(jax.core.ShapedArray(aval.shape[:a] + aval.shape[a + 1:],
                                                   aval.dtype, weak_type=aval.weak_type))
        if len(sizes) > 1:
            raise BatchAxisError(
                f'{self.where}: the leaves of State {state.label()} have different sizes '
                f'{sorted(sizes)} along its batch axis {axis}; every leaf needs the batch size.')
        self.axes[state] = axis
        if sizes:
            self.sizes[state] = sizes.pop()
        return tuple(lane_avals)


# -- arguments -----------------------------------------------------------------------------------

_describe = describe_argument_path


def _check_axis(axis, what: str):
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise ArgumentTypeError(f'{what} entries must be an int or None, got {axis!r}.')


def _flatten_arguments(args: tuple, kwargs: dict, in_axes, where: str):
    """``(leaves, treedef, leaf axes, per-lane avals, leaf paths, cache key)`` of one call."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple):
        if len(in_axes) != len(args):
            raise ArgumentValueError(
                f'{where}: in_axes={in_axes!r} has {len(in_axes)} entries but the call passes '
                f'{len(args)} positional argument(s). Give one entry per positional argument '
                f'(None for an argument shared by all lanes), or one int/None for all of them.')
        arg_axes = in_axes
    else:
        arg_axes = (in_axes,) * len(args)
    with_path, treedef = jax.tree_util.tree_flatten_with_path(
        (tuple(args), kwargs), is_leaf=lambda x: isinstance(x, State))
    try:
        leaf_axes = flatten_axes('vmap in_axes', treedef, (tuple(arg_axes), 0))
    except ValueError as error:
        raise ArgumentValueError(
            f'{where}: in_axes={in_axes!r} does not match the structure of the '
            f'arguments. {error}') from None
    leaves, axes, lane_avals, key = [], [], [], []
    for (path, leaf), axis in zip(with_path, leaf_axes):
        _check_axis(axis, f'{where}: in_axes')
        if isinstance(leaf, State):
            raise StateArgumentError(
                f'{where} received State {leaf.label()} as {_describe(path)}. States are not '
                f'values: read the state inside the function (declare it with in_states= if '
                f'it holds one value per lane), or pass `state.value`.')
        try:
            aval = jax.typeof(leaf)
        except TypeError:
            raise ArgumentTypeError(
                f'{where} received a {type(leaf).__name__} as {_describe(path)}, which is not '
                f'an array. Pass arrays (or pytrees of arrays); close over other Python values '
                f'instead of passing them.') from None
        shape = tuple(aval.shape)
        if axis is not None:
            if not -len(shape) <= axis < len(shape):
                raise ArgumentValueError(
                    f'{where}: in_axes maps {_describe(path)} along axis {axis}, but it has shape '
                    f'{shape}, which has no axis {axis}. Use None for an argument shared by all '
                    f'lanes, or an axis it has.')
            axis = int(axis) % len(shape)
            lane_shape = shape[:axis] + shape[axis + 1:]
        else:
            lane_shape = shape
        weak = getattr(aval, 'weak_type', False)
        leaves.append(leaf)
        axes.append(axis)
        lane_avals.append(jax.ShapeDtypeStruct(lane_shape, aval.dtype, weak_type=weak))
        key.append((shape, aval.dtype, weak, axis))
    paths = [p for p, _ in with_path]
    return leaves, treedef, axes, lane_avals, paths, (treedef, tuple(key))


# -- one traced program per call signature --------------------------------------------------------

class _Program:
    """The pure, batched form of one call signature, and how states flow in and out of it."""

    def __init__(self, owner: 'VmappedFunction', lowered, out_tree, new_states, spec,
                 result, size: int, arg_leaf_axes, out_leaf_axes):
        self.jaxpr = lowered.closed_jaxpr.jaxpr
        self.consts = list(lowered.closed_jaxpr.consts)
        self.num_outputs = lowered.num_outputs
        self.out_tree = out_tree
        self.size = size
        self.axis_name = owner.axis_name
        self.read_states = list(lowered.read_states)
        self.written_states = list(lowered.written_states)
        self.split_keys = [s for s in self.read_states if s in spec.split_keys]
        split = set(self.split_keys)
        self.read_is_key = [s in split for s in self.read_states]
        self.read_treedefs = [s.treedef for s in self.read_states]
        self.read_leaf_axes = [0 if s in split else result.read_axes.get(s)
                               for s in self.read_states for _ in range(s.treedef.num_leaves)]
        self.write_leaf_axes = [0 if s in split else result.write_axes.get(s)
                                for s in self.written_states for _ in range(s.treedef.num_leaves)]
        self.arg_leaf_axes = list(arg_leaf_axes)
        self.out_leaf_axes = out_leaf_axes
        self.mapping = owner.mapping
        self.new_states = set(new_states)
        # States whose stored value gains (or keeps) the batch axis by this program's writes
        # while read shared: their stored shape may change (vmap's out_states, vmap2's scatter).
        self.reshaped = {s for s in self.written_states
                         if result.write_axes.get(s) is not None and
                         result.read_axes.get(s) is None and s not in self.new_states}
        self.state_avals = tuple((s, s.treedef, s.avals) for s in
                                 dict.fromkeys(self.read_states + self.written_states)
                                 if s not in self.new_states)
        self.epoch = _state.STRUCTURE_EPOCH[0]
        self.state_set_epoch = _state.STATE_SET_EPOCH[0]
        # A program that closed over tracers of an enclosing trace is only valid inside it.
        self.cacheable = not any(isinstance(c, _Tracer) for c in self.consts)
        self.compiled = None

    def still_valid(self) -> bool:
        if self.state_set_epoch != _state.STATE_SET_EPOCH[0]:
            return False  # a Module's State attribute was replaced: it may be one of ours
        for state, treedef, avals in self.state_avals:
            if state._treedef != treedef or state._avals != avals:
                return False
        self.epoch = _state.STRUCTURE_EPOCH[0]
        return True

    def compute(self, consts, read_values: list, arg_leaves: list):
        """Split the random keys, run the program under ``jax.vmap``; returns
        ``(output leaves, written state leaves, new keys of the split random states)``."""
        state_leaves, new_keys = [], []
        for value, is_key, treedef in zip(read_values, self.read_is_key, self.read_treedefs):
            if is_key:
                keys = jax.random.split(value, self.size + 1)
                new_keys.append(keys[0])
                state_leaves.append(keys[1:])
            else:
                state_leaves.extend(treedef.flatten_up_to(value))
        jaxpr, n = self.jaxpr, self.num_outputs

        def lane(consts, state_leaves, arg_leaves, *unused):
            outs = jax.core.eval_jaxpr(jaxpr, consts, *state_leaves, *arg_leaves)
            return list(outs[:n]), list(outs[n:])

        in_axes = (None, list(self.read_leaf_axes), list(self.arg_leaf_axes))
        extra = ()
        if self.mapping is not jax.vmap and all(
                a is None for a in self.read_leaf_axes + self.arg_leaf_axes):
            # jax.pmap needs one mapped argument to know its devices: a lane index.
            in_axes, extra = in_axes + (0,), (jax.numpy.arange(self.size),)
        outs, written = self.mapping(
            lane, in_axes=in_axes,
            out_axes=(list(self.out_leaf_axes), list(self.write_leaf_axes)),
            axis_size=self.size, axis_name=self.axis_name)(consts, state_leaves, arg_leaves,
                                                           *extra)
        return outs, written, new_keys


# -- the transform --------------------------------------------------------------------------------

class VmappedFunction(TransformedFunction):
    """The function :func:`vmap` returns. Call it like the original function.

    Methods:
      ir(*args, **kwargs): the state IR of one lane after the passes and the batching analysis
        (``print(f.ir(x))`` shows which values and states are batched).
      clear_cache(): forget every traced program.
    """

    kind = 'vmap'

    def __init__(self, fun: Callable, in_axes=0, out_axes=0, in_states=None, out_states=None,
                 axis_size: int | None = None, axis_name: Hashable | None = None,
                 passes=None, new_states_batched: bool = False, state_tag: str | None = None,
                 state_to_exclude=None, mapping: Callable = jax.vmap):
        if not callable(fun):
            raise ArgumentTypeError(f'{self.kind}: expected a function, got {type(fun).__name__}.')
        self.fun = fun
        self.fun_name = getattr(fun, '__name__', type(fun).__name__)
        self.where = f'{self.kind} of {self.fun_name}'
        if not isinstance(in_axes, (tuple, list)):
            _check_axis(in_axes, f'{self.where}: in_axes')
        self.in_axes = in_axes
        self.out_axes = out_axes
        if axis_size is not None and (isinstance(axis_size, bool) or
                                      not isinstance(axis_size, (int, np.integer)) or
                                      axis_size < 1):
            raise ArgumentValueError(f'{self.where}: axis_size must be a positive int, got '
                                     f'{axis_size!r}.')
        self.axis_size = None if axis_size is None else int(axis_size)
        self.axis_name = axis_name
        self.mapping = mapping
        self.passes = passes
        self.in_states = _Declaration(in_states, 'in_states', self.where)
        self.out_states = _Declaration(out_states, 'out_states', self.where)
        for state, axis in self.in_states.states.items():
            out_axis = self.out_states.states.get(state)
            if out_axis is not None and out_axis != axis:
                raise BatchAxisError(
                    f'{self.where}: State {state.label()} is declared on axis {axis} in '
                    f'in_states but on axis {out_axis} in out_states. A state read per lane is '
                    f'written back on the same axis: declare it once, in in_states.')
        self.free_shared_writes = False  # vmap2: shared states may be rewritten any shape
        self.new_states_batched = new_states_batched
        self.state_tag = state_tag
        self.state_to_exclude = None if state_to_exclude is None else \
            to_predicate(state_to_exclude)
        self._cache: dict[Any, list[_Program]] = {}
        self._spec = ArgumentSpec(fun)
        functools.update_wrapper(self, fun, updated=())

    # -- tracing ----------------------------------------------------------------------------------

    def _axis_sizes(self, leaves, axes, paths, lanes: _Lanes) -> dict[str, int]:
        sizes = {}
        for leaf, axis, path in zip(leaves, axes, paths):
            if axis is not None:
                sizes[_describe(path)] = jax.typeof(leaf).shape[axis]
        self._check_state_sizes(sizes, lanes)
        for state, size in lanes.sizes.items():
            sizes[f'State {state.label()} (in_states, axis {lanes.axes[state]})'] = size
        return sizes

    def _check_state_sizes(self, arg_sizes: dict[str, int], lanes: _Lanes):
        """When the mapped arguments (and ``axis_size``) agree on the batch size, a batched
        state whose axis has another size is the state's fault: a BatchAxisError naming it."""
        expected = set(arg_sizes.values())
        if self.axis_size is not None:
            expected.add(self.axis_size)
        if len(expected) != 1:
            return
        size = expected.pop()
        listed = '; '.join([f'{what}: {n}' for what, n in arg_sizes.items()] +
                           ([f'axis_size={self.axis_size}'] if self.axis_size is not None
                            else []))
        for state, state_size in lanes.sizes.items():
            if state_size != size:
                axis = lanes.axes[state]
                shapes = ', '.join(a.str_short() for a in state._avals)
                raise BatchAxisError(
                    f'{self.where}: the batch size is {size} ({listed}), but State '
                    f'{state.label()}, listed in in_states, holds {shapes}, whose axis {axis} '
                    f'(its batch axis) has size {state_size}, not {size}. Give the state one '
                    f'value per lane before the call (e.g. `state.value = jnp.broadcast_to(v, '
                    f'({size},) + v.shape)`, or create it with vmap_new_states), or leave it '
                    f'out of in_states to share one value across the batch.')

    def _axis_size(self, sizes: dict[str, int], required: bool) -> int | None:
        distinct = set(sizes.values())
        if self.axis_size is not None:
            distinct.add(self.axis_size)
        if self.axis_size is not None and sizes and self.axis_size not in sizes.values():
            listed = '; '.join(f'{what}: {size}' for what, size in sizes.items())
            raise ArgumentValueError(
                f'{self.where}: axis_size={self.axis_size} conflicts with the mapped size(s) '
                f'of the arguments and batched states ({listed}). Omit axis_size or make it '
                f'match them.')
        if len(distinct) > 1:
            listed = '; '.join(f'{what}: {size}' for what, size in sizes.items())
            given = f'; axis_size={self.axis_size}' if self.axis_size is not None else ''
            raise ArgumentValueError(
                f'{self.where}: the mapped arguments and batched states disagree on the batch '
                f'size ({listed}{given}). Every mapped axis must have the same size.')
        if distinct:
            return distinct.pop()
        if required:
            raise ArgumentValueError(
                f'{self.where}: cannot tell the batch size: no argument is mapped (in_axes) and '
                f'no state is declared batched (in_states). Pass axis_size=.')
        return None

    def _new_state_axis(self, state: State) -> int | None:
        """The axis a state created by the function is stored with (None: unbatched)."""
        if not self.new_states_batched:
            return None
        if isinstance(state, _state.NonBatchState) or state.tag == 'INIT_NO_BATCHING':
            return None  # one value shared by every lane
        if self.state_to_exclude is not None and \
                self.state_to_exclude(state.path() or (), state):
            return None
        return 0

    def _split_new_states(self, new_states) -> tuple[dict, set]:
        """``({new state: axis}, set of new states)`` for the batching spec."""
        batched = {}
        for state in new_states:
            axis = self._new_state_axis(state)
            if axis is not None:
                batched[state] = axis
        return batched, set(new_states)

    def _trace(self, args_info) -> tuple:
        """Trace one lane through the one pipeline, with ``batching-analysis`` run by its
        PassManager; per-lane shapes are inputs of the trace (arguments and ``lanes``)."""
        leaves, treedef, axes, lane_avals, paths, key = args_info
        lanes = _Lanes(self.in_states, self.where, _state._LANE_VIEW.lanes,
                       self.free_shared_writes)
        for state in self.in_states.states:
            lanes(state)  # explicit declarations are checked (and sized) before tracing
        known = self._axis_sizes(leaves, axes, paths, lanes)
        axis_env = contextlib.nullcontext()
        if self.axis_name is not None:
            size = self._axis_size(known, required=False)
            if size is None:
                raise ArgumentValueError(
                    f'{self.where}: with axis_name={self.axis_name!r}, the batch size must '
                    f'be known before tracing: map an argument, declare a state explicitly '
                    f'in in_states, or pass axis_size=.')
            if _extend_axis_env is not None:
                axis_env = _extend_axis_env([(self.axis_name, size)])
        spec_box = []

        def declare(graph, new_states):
            if self.new_states_batched and self.state_tag is not None:
                for state in new_states:
                    state.tag = self.state_tag
                    state._metadata['tag'] = self.state_tag
            # Resolved by the batching-analysis pass once the graph is canonical.
            graph.meta['batching_spec'] = lambda g: spec_box.append(
                self._batching_spec(g, axes, lanes, new_states, args_info)) or spec_box[-1]

        sig = CallSignature(key, leaves, treedef, (), ())
        with axis_env:
            program = trace_program(self.fun, self._spec, sig, passes=self.passes,
                                    in_avals=lane_avals, lanes=lanes,
                                    analyses=('batching-analysis',), before_passes=declare)
        size = self._axis_size(self._axis_sizes(leaves, axes, paths, lanes), required=True)
        graph = program.graph
        return graph, program.lowered, list(program.new_states), spec_box[-1], \
            graph.meta['batching'], size, program.environ_reads

    def _batching_spec(self, graph, axes, lanes: _Lanes, new_states,
                       args_info=None) -> BatchingSpec:
        RandomState = _random_state_class()
        new_batched, new_set = self._split_new_states(new_states)
        written = [n.state for n in graph.find_nodes('state_write', recursive=False)]
        write_axes = {}
        for state in written:
            axis = self.out_states.axis_of(state)
            if axis is None:
                axis = lanes.axes.get(state)
            if axis is None:
                axis = new_batched.get(state)
            if axis is not None:
                write_axes[state] = axis
        split = set()
        for node in graph.find_nodes('state_read', recursive=False):
            state = node.state
            if (isinstance(state, RandomState) and state not in lanes.axes and
                    state not in write_axes):
                split.add(state)
        return BatchingSpec(input_batched=[a is not None for a in axes],
                            read_axes=dict(lanes.axes), write_axes=write_axes,
                            split_keys=split, new_states=new_set, axis_name=self.axis_name,
                            where=self.where, fun_name=self.fun_name)

    def _out_leaf_axes(self, out_tree, result) -> list:
        try:
            axes = flatten_axes('vmap out_axes', out_tree, self.out_axes)
        except ValueError as error:
            raise ArgumentValueError(
                f'{self.where}: out_axes={self.out_axes!r} does not match the '
                f'structure of what {self.fun_name} returns. {error}') from None
        dummy = out_tree.unflatten(list(range(out_tree.num_leaves)))
        paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(dummy)[0]]
        for axis, batched, path in zip(axes, result.output_batched, paths):
            _check_axis(axis, f'{self.where}: out_axes')
            if axis is None and batched:
                at = jax.tree_util.keystr(path) or '(the whole result)'
                raise ArgumentValueError(
                    f'{self.where}: the result at {at} differs per lane, but out_axes gives None (one value for all '
                    f'lanes) for it. Give it an axis, or return a value that is the same for '
                    f'every lane.')
        return list(axes)

    def _program(self, args_info) -> _Program:
        key = args_info[-1]
        entries = self._cache.get(key)
        if entries:
            for entry in reversed(entries):
                if ((entry.epoch == _state.STRUCTURE_EPOCH[0] or entry.still_valid()) and
                        entry.environ_reads.hold()):
                    return entry
        graph, lowered, new_states, spec, result, size, environ_reads = self._trace(args_info)
        out_leaf_axes = self._out_leaf_axes(graph.out_tree, result)
        program = _Program(self, lowered, graph.out_tree, new_states, spec, result, size,
                           args_info[2], out_leaf_axes)
        program.graph = graph
        program.environ_reads = environ_reads  # (the brainstate.environ settings it read)
        if program.cacheable and not new_states:
            self._cache.setdefault(key, []).append(program)
        return program

    # -- a call ------------------------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        if not _state.TRACE_STACK:
            # Eagerly: one compiled program through the one eager runner and state I/O path.
            return run_eagerly(self._traced_call, args, kwargs, name=self.fun_name,
                               inside_raw_jax=True, key=self, passes=self.passes)
        return self._traced_call(*args, **kwargs)

    def run_directly(self, args: tuple, kwargs: dict):
        """A key's first eager call, run as raw JAX's eager ``jax.vmap`` runs it (the eager
        runner's rule, :mod:`._eager`): the function itself under ``jax.vmap``, reading states
        shared through a :class:`~._direct.DirectContext`; nothing is traced into the IR.
        Only for what needs no batching analysis: no ``in_states`` / ``out_states``, and a
        function that writes and creates no State (a write, a random draw included, raises
        :class:`~._direct.NotDirect` before anything is stored, and the call goes through the
        IR). One direct run per transform object, as for the grad family."""
        if (type(self) is not VmappedFunction or self.mapping is not jax.vmap or
                self.in_states.states or self.in_states.filters or self.out_states.states or
                self.out_states.filters or self._cache or
                self.__dict__.get('_ran_directly')):
            raise NotDirect()
        self._ran_directly = True
        fun, name, in_axes = self.fun, self.fun_name, self.in_axes
        if not kwargs and type(in_axes) is int and all(
                type(a) is _ArrayImpl and -a.ndim <= in_axes < a.ndim for a in args):
            # (Arrays mapped on one axis, the common case: nothing to check or flatten.)
            def lane(*lane_args):
                with DirectContext(writes=False):
                    out = fun(*lane_args)
                check_result(out, name)
                return out

            return jax.vmap(lane, in_axes=in_axes, out_axes=self.out_axes,
                            axis_size=self.axis_size, axis_name=self.axis_name)(*args)
        leaves, treedef, axes, _, _, _ = _flatten_arguments(args, kwargs, in_axes, self.where)

        def lane(*lane_leaves):
            lane_args, lane_kwargs = jax.tree.unflatten(treedef, lane_leaves)
            with DirectContext(writes=False):
                out = fun(*lane_args, **lane_kwargs)
            check_result(out, name)
            return out

        return jax.vmap(lane, in_axes=tuple(axes), out_axes=self.out_axes,
                        axis_size=self.axis_size, axis_name=self.axis_name)(*leaves)

    def _traced_call(self, *args, **kwargs):
        args_info = _flatten_arguments(args, kwargs, self.in_axes, self.where)
        program = self._program(args_info)
        # Read the states in the enclosing trace; write them back once, after success.
        read_values = [s.value for s in program.read_states]
        outs, written, new_keys = program.compute(program.consts, read_values, args_info[0])
        self._write_back(program, list(written), list(new_keys))
        return program.out_tree.unflatten(outs)

    def _write_back(self, program: _Program, written: list, new_keys: list):
        split = set(program.split_keys)
        states, values, offset = [], [], 0
        for state in program.written_states:
            count = state.treedef.num_leaves
            leaves = written[offset:offset + count]
            offset += count
            if state in split:
                continue
            if state in program.new_states:
                _store_new_state(state, leaves)
            else:
                states.append(state)
                values.append(state.treedef.unflatten(leaves))
        write_back(states + list(program.split_keys), values + new_keys, self.where,
                   program.reshaped)

    def ir(self, *args, **kwargs):
        """The state IR of one lane, after the passes and the batching analysis: each node's
        comment says whether its values are batched, each state operation whether the state is
        mapped (``batched axis=0``), shared, or a per-lane random key."""
        args_info = _flatten_arguments(args, kwargs, self.in_axes, self.where)
        return self._trace(args_info)[0]

    def clear_cache(self):
        """Forget every traced program."""
        self._cache.clear()


def _store_new_state(state: State, leaves: list):
    """Give a state created inside the mapped function its (possibly batched) value (see
    :func:`._state_io.store_new_state`)."""
    store_new_state(state, state.treedef.unflatten(leaves))


# -- the public functions -----------------------------------------------------------------------

def vmap(fn: Callable | None = None, in_axes: int | None | Sequence = 0, out_axes: Any = 0,
         in_states=None, out_states=None, axis_size: int | None = None,
         axis_name: Hashable | None = None, *, passes=None):
    """Vectorize a function that reads and writes States over a batch axis.

    Like ``jax.vmap``, the function is written for one example (one *lane*) and runs for a batch
    of them at once. States are **shared** by all lanes unless declared batched.

    Args:
      fn: the function. ``vmap`` also works as a decorator, bare or with keyword arguments
        (``@vmap(in_states=net.states(brainstate.HiddenState))``).
      in_axes: as for ``jax.vmap``: an int or None for every positional argument, or one entry
        per positional argument (a pytree prefix of it). None: shared by all lanes. Keyword
        arguments are mapped over axis 0.
      out_axes: where the batch axis goes in the result (a pytree prefix of it); None for a
        result that is the same for every lane.
      in_states: states whose stored value has the batch axis: each lane reads and writes its
        own slice, and the written values are stored with the axis. A State; an iterable or
        mapping of States (``net.states(brainstate.HiddenState)``); a filter (a State class,
        a tag string, a predicate ``f(path, state)``) selecting among the states the function
        touches; or ``{axis: states}`` for an axis other than 0.
      out_states: states read shared whose written value comes out with the batch axis (their
        stored shape gains it); same forms. Every ``in_states`` state is also written back
        on its axis.
      axis_size: the batch size, needed when nothing is mapped (e.g. only random draws differ
        per lane); otherwise checked against the mapped sizes.
      axis_name: a name for the batch axis, for collectives (``jax.lax.psum(x, name)``).
      passes: the optimization pipeline (``None``: the default); ``batching-analysis`` runs
        after it.

    Returns:
      A :class:`VmappedFunction`.

    Example: 64 trials of a network simulation, each with its own membrane potentials and its
    own input noise, sharing the weights::

        net.V.value = jnp.zeros((64, n))                   # one row per trial
        @brainstate.transform.jit
        def simulate(currents):
            def trial():
                def step(i):
                    noise = brainstate.random.normal(size=n)     # different in each trial
                    return net.update(currents[i] + noise)
                return brainstate.transform.for_loop(step, jnp.arange(len(currents)))
            return brainstate.transform.vmap(trial, in_states=net.V, axis_size=64)()

    Random numbers: a ``brainstate.random.RandomState`` the function draws from (such as the
    global ``brainstate.random.DEFAULT``) gives each lane its own key, split from the state's
    key, which advances once per call; ``brainstate.random.seed(n)`` reproduces the run.

    Errors: a per-lane value written into a shared state raises
    :class:`~brainstate.BatchAxisError` naming the state (declare it in ``in_states`` or
    ``out_states``); so does an ``in_states`` state without the batch axis. Batch sizes that
    disagree, ``in_axes`` that do not fit the arguments, and a batched result with
    ``out_axes=None`` raise ``ValueError``. A failed call changes no state.
    """
    options = dict(in_axes=in_axes, out_axes=out_axes, in_states=in_states,
                   out_states=out_states, axis_size=axis_size, axis_name=axis_name,
                   passes=passes)
    if fn is None:
        return lambda f: VmappedFunction(f, **options)
    return VmappedFunction(fn, **options)


def vmap_new_states(fn: Callable | None = None, in_axes: int | None | Sequence = 0,
                    out_axes: Any = 0, state_tag: str | None = None, *,
                    axis_size: int | None = None, axis_name: Hashable | None = None,
                    state_to_exclude=None, in_states=None, out_states=None, passes=None):
    """Like :func:`vmap`, and every State *created* inside ``fn`` gets the batch axis.

    Use it to create per-lane states: the hidden states of a network for each of 64 trials,
    or an ensemble of independently initialized parameters. Each new state's value comes out
    with the batch axis first (``(axis_size,) + per-lane shape``), random initializations
    differ per lane, and the states can then be declared ``in_states`` of a :func:`vmap`.

    Args:
      fn, in_axes, out_axes, axis_size, axis_name, in_states, out_states, passes: as for
        :func:`vmap`.
      state_tag: a tag given to every new state (``state.tag``), so a tag filter selects them
        later: ``vmap(step, in_states='trial')``.
      state_to_exclude: a filter of new states to keep unbatched (their value must then be the
        same in every lane).

    Example::

        class Net(brainstate.Module):
            def init_state(self):
                self.V = brainstate.HiddenState(brainstate.random.uniform(size=n))

        brainstate.transform.vmap_new_states(net.init_state, state_tag='trial',
                                             axis_size=64)()
        net.V.value.shape                                     # (64, n), random per trial
        brainstate.transform.vmap(net.update, in_states='trial')(inputs)
    """
    for what, given in (('in_states', in_states), ('out_states', out_states)):
        if given is not None:
            raise ArgumentValueError(
                f'vmap_new_states does not take {what}: it batches the states the function '
                f'creates. Map existing states with brainstate.transform.vmap (in_states=, '
                f'out_states=) or vmap2 (state_in_axes=, state_out_axes=).')
    options = dict(in_axes=in_axes, out_axes=out_axes, in_states=in_states,
                   out_states=out_states, axis_size=axis_size, axis_name=axis_name,
                   passes=passes, new_states_batched=True, state_tag=state_tag,
                   state_to_exclude=state_to_exclude)

    if fn is None:
        return lambda f: _VmapNewStates(f, **options)
    return _VmapNewStates(fn, **options)


class _VmapNewStates(VmappedFunction):
    kind = 'vmap_new_states'
