"""The state-mapping engine behind ``vmap2`` / ``pmap2`` / ``StatefulMapping``.

``vmap2`` states its batching per *state selector*, not per state: ``state_in_axes`` and
``state_out_axes`` map an axis (or None) to a filter, a State or States, and states the function
writes per lane without being declared follow a policy (``unexpected_out_state_mapping``). It is
our ``vmap`` (one trace per call signature, the pass pipeline, the ``batching-analysis`` pass,
one ``jax.vmap``/``jax.pmap`` over the pure program) with three differences, all decided on the
IR at trace time:

* the states read per lane are those ``state_in_axes`` selects (random states excepted: their
  key is always split per lane);
* a per-lane value written into a state read shared is stored with the axis ``state_out_axes``
  gives it, or, undeclared, by the policy: ``'auto'`` / ``'ignore'`` store it with a new leading
  batch axis, ``'warn'`` too with a warning, ``'raise'`` raises a
  :class:`~brainstate.BatchAxisError` naming the state (the ``batching-analysis`` pass asks
  :meth:`StateMappedFunction._on_batched_write`);
* under ``'auto'``, an undeclared state read and written per lane whose stored value already
  has the batch size along axis 0 is read per lane too (a per-lane buffer); the program is
  traced again with it read per lane. This is decided from the stored shapes, which key the
  compiled program, so a repeated call behaves as the first one.

The module also keeps the published helper functions (``normalize_state_axes``,
``split_rng_keys``, ...) and the ``in_new_state_probe`` flag of the ``*_new_states`` transforms.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import jax
import numpy as np
from jax.api_util import flatten_axes

from .._errors import ArgumentValueError, BatchAxisError
from .._state import State
from ..util import filter as filter_module
from ._vmap import VmappedFunction

try:  # the batching tracer of the installed JAX (read-only use: ``leaf_batch_dim``)
    from jax._src.interpreters.batching import BatchTracer
except ImportError:  # pragma: no cover
    BatchTracer = type('BatchTracer', (), {})

__all__ = [
    'in_new_state_probe', 'normalize_state_axes', 'make_identity_predicate',
    'coerce_axis_value_to_predicate', 'split_rng_keys', 'unwind_new_state_levels',
    'leaf_batch_dim', 'state_map_transform', 'StateMappedFunction', 'INIT_NO_BATCHING',
]

AxisName = Hashable
POLICIES = ('auto', 'raise', 'warn', 'ignore')

#: Tag of states created by a ``*_new_states`` transform that stay unbatched (one value).
INIT_NO_BATCHING = 'INIT_NO_BATCHING'


def _random_state_class():
    from ..random import RandomState
    return RandomState


# -- the new-state discovery probe flag ----------------------------------------------------------

_PROBE = threading.local()


def _new_state_probe_depth() -> int:
    return getattr(_PROBE, 'depth', 0)


class _new_state_probe:
    """Marks the discovery pass of ``vmap2_new_states`` / ``pmap2_new_states`` (nestable, per
    thread): :func:`in_new_state_probe` is True inside it."""
    __slots__ = ()

    def __enter__(self):
        _PROBE.depth = _new_state_probe_depth() + 1
        return self

    def __exit__(self, *exc):
        _PROBE.depth = _new_state_probe_depth() - 1
        return False


def in_new_state_probe() -> bool:
    """Whether the caller runs inside the discovery pass of a ``*_new_states`` transform.

    ``vmap2_new_states`` / ``pmap2_new_states`` run the module's ``init_all_states`` twice:
    once eagerly to discover the random states it draws from (its state changes are undone and
    the states it creates are thrown away), then under the mapping, creating the real, batched
    states. Code doing a one-shot side effect bound to the created State objects (caching a
    compiled graph over them, say) should skip it while this returns True.

    Example::

        def init_state(self):
            self.w = brainstate.ParamState(brainstate.random.randn(3))
            if not brainstate.transform.in_new_state_probe():
                self._graph = build_graph(self.w)   # binds the real, batched state
    """
    return _new_state_probe_depth() > 0


# -- state selectors -----------------------------------------------------------------------------

def make_identity_predicate(states) -> Callable[[Tuple, State], bool]:
    """A ``predicate(path, state)`` true exactly for the given State(s) (by identity)."""
    if isinstance(states, State):
        states = [states]
    ids = frozenset(id(s) for s in states)
    return lambda path, state: id(state) in ids


def coerce_axis_value_to_predicate(value) -> Callable[[Tuple, State], bool]:
    """One value of ``state_in_axes`` / ``state_out_axes`` as a predicate: a State, a non-empty
    list/tuple/set of States, a mapping of States (``net.states(...)``), or any filter (a State
    class, a tag string, ``...``, a predicate ``f(path, state)``)."""
    if isinstance(value, State):
        return make_identity_predicate(value)
    if isinstance(value, (list, tuple, set, frozenset)) and value and \
            all(isinstance(v, State) for v in value):
        return make_identity_predicate(value)
    if isinstance(value, dict) and value and all(isinstance(v, State) for v in value.values()):
        return make_identity_predicate(list(value.values()))
    return filter_module.to_predicate(value)


def normalize_state_axes(spec) -> Dict[Any, Callable[[Tuple, State], bool]]:
    """``state_in_axes`` / ``state_out_axes`` as ``{axis (int or None): predicate}``: None gives
    ``{}``; a dict maps each axis to its selector; a bare selector means ``{0: selector}``."""
    if spec is None:
        return {}
    if isinstance(spec, dict) and all(k is None or (isinstance(k, (int, np.integer)) and
                                                    not isinstance(k, bool)) for k in spec):
        return {axis: coerce_axis_value_to_predicate(v) for axis, v in spec.items()}
    return {0: coerce_axis_value_to_predicate(spec)}


def _match(selectors: dict, state: State) -> tuple[bool, Any]:
    """``(matched, axis)`` of the first selector that selects ``state``."""
    for axis, predicate in selectors.items():
        if predicate((), state):
            return True, axis
    return False, None


class _SelectedStates:
    """``state_in_axes`` as our vmap's ``in_states`` declaration: ``axis_of(state)`` gives the
    axis a state is read per lane on, or None (read shared). Random states are never selected
    (their key is split per lane); ``promoted`` holds the undeclared per-lane buffers the
    ``'auto'`` policy found for the current trace."""

    def __init__(self, selectors: dict):
        self.selectors = selectors
        self.states: dict = {}  # no up-front declarations: everything is resolved when touched
        self.filters = list(selectors.items())
        self._local = threading.local()  # two threads may trace one function at once

    @property
    def promoted(self) -> dict:
        return getattr(self._local, 'promoted', None) or {}

    @promoted.setter
    def promoted(self, value: dict):
        self._local.promoted = value

    def axis_of(self, state: State):
        axis = self.promoted.get(state)
        if axis is not None:
            return axis
        if isinstance(state, _random_state_class()):
            return None
        return _match(self.selectors, state)[1]


# -- the engine ----------------------------------------------------------------------------------

_AUTO_SCATTER_WARNED: 'weakref.WeakSet' = weakref.WeakSet()


def _label(state: State) -> str:
    return state.label() if hasattr(state, 'label') else repr(state)


class StateMappedFunction(VmappedFunction):
    """A function mapped by the state-selector rules of ``vmap2`` / ``pmap2`` (see the module
    docstring). Built by :func:`state_map_transform`; call it like the original function."""

    kind = 'vmap2'

    def __init__(self, fun: Callable, *, in_axes=0, out_axes=0, state_in_axes=None,
                 state_out_axes=None, axis_size: Optional[int] = None,
                 axis_name: AxisName | None = None, mapping_fn: Callable = jax.vmap,
                 mapping_kwargs: Optional[dict] = None, unexpected_out_state_mapping='auto',
                 name: Optional[str] = None, new_state_axis: Optional[Callable] = None,
                 state_tag: Optional[str] = None, passes=None):
        if isinstance(in_axes, list):
            in_axes = tuple(in_axes)
        mapping_kwargs = dict(mapping_kwargs or {})
        mapping = mapping_fn if not mapping_kwargs else \
            (lambda f, **kw: mapping_fn(f, **kw, **mapping_kwargs))
        super().__init__(fun, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size,
                         axis_name=axis_name, passes=passes, mapping=mapping,
                         new_states_batched=new_state_axis is not None, state_tag=state_tag)
        if name:
            self.where = f'{name} of {self.fun_name}'
        self.in_states = _SelectedStates(normalize_state_axes(state_in_axes))
        self.out_selectors = normalize_state_axes(state_out_axes)
        self.policy = unexpected_out_state_mapping
        self.free_shared_writes = True
        self.new_state_axis = new_state_axis
        self._requests = threading.local()

    def _new_state_axis(self, state):
        if self.new_state_axis is None:
            return None
        return self.new_state_axis(state)

    def _check_policy(self):
        if self.policy not in POLICIES:
            raise ArgumentValueError(
                f'{self.where}: invalid value for unexpected_out_state_mapping: '
                f'{self.policy!r}. Must be one of {", ".join(map(repr, POLICIES))}.')

    def __call__(self, *args, **kwargs):
        self._check_policy()
        return super().__call__(*args, **kwargs)

    # -- tracing: the per-lane buffers of the 'auto' policy ------------------------------------

    def _trace(self, args_info):
        promoted = self.in_states.promoted = {}
        try:
            for _ in range(4):
                self._requests.found = {}
                traced = super()._trace(args_info)
                found = self._requests.found
                if not found:
                    return traced
                promoted.update(found)  # read them per lane too: trace again
            return traced
        finally:
            self.in_states.promoted = {}

    def _batching_spec(self, graph, axes, lanes, new_states, args_info=None):
        spec = super()._batching_spec(graph, axes, lanes, new_states, args_info)
        for state, axis in lanes.axes.items():
            matched, out_axis = _match(self.out_selectors, state)
            if matched and out_axis is not None and out_axis != axis:
                raise BatchAxisError(
                    f'{self.where}: State {_label(state)} is read per lane on axis {axis} '
                    f'(state_in_axes) but state_out_axes stores it on axis {out_axis}. A state '
                    f'read per lane is written back on the same axis: give it one axis.')
        read = {n.state for n in graph.find_nodes('state_read', recursive=False)}
        leaves, _, _, _, paths, _ = args_info
        decided: dict = {}

        def batch_size():
            sizes = self._axis_sizes(leaves, axes, paths, lanes)
            return self._axis_size(sizes, required=False)

        def on_batched_write(node):
            state = node.state
            if state not in decided:
                outer = lanes.outer(state) if lanes.outer is not None else None
                decided[state] = self._on_batched_write(state, state in read, batch_size,
                                                        outer or state._avals)
            return decided[state]

        spec.on_batched_write = on_batched_write
        return spec

    def _on_batched_write(self, state: State, was_read: bool, batch_size, avals) -> int:
        """The axis to store a per-lane value written into ``state``, read shared (``avals``:
        its stored value's, as this program sees them)."""
        label = _label(state)
        matched, axis = _match(self.out_selectors, state)
        if matched:
            if axis is None:
                raise BatchAxisError(
                    f'{self.where}: State {label} is declared in state_out_axes with axis None '
                    f'(one value for all lanes), but the function writes it a value that '
                    f'differs per lane. Give it an axis in state_out_axes, or write a value '
                    f'that is the same in every lane. No state was changed.')
            return axis
        if self.policy == 'raise':
            raise BatchAxisError(
                f'{self.where}: State {label} was written with a value that differs per lane '
                f'(batched on axis 0) but is not covered by state_out_axes. Declare it in '
                f'state_out_axes (or state_in_axes, if its stored value already has one value '
                f'per lane), or set unexpected_out_state_mapping to \'auto\', \'warn\' or '
                f'\'ignore\'. No state was changed.')
        if self.policy == 'warn':
            warnings.warn(
                f'{self.where}: State {label} was written with a value that differs per lane '
                f'but is not covered by state_out_axes; it is stored with a new leading batch '
                f'axis.', UserWarning, stacklevel=2)
        elif self.policy == 'auto' and was_read:
            size = batch_size()
            shapes = [a.shape for a in avals]
            current = shapes[0][0] if shapes and len(shapes[0]) else None
            if size is not None and current == size and \
                    all(len(s) and s[0] == size for s in shapes):
                # Already one value per lane: a per-lane buffer. Read it per lane too.
                self._requests.found[state] = 0
            elif state not in _AUTO_SCATTER_WARNED:
                _AUTO_SCATTER_WARNED.add(state)
                warnings.warn(
                    f'{self.where}: State {label} is read and written per lane but not declared '
                    f'in state_in_axes/state_out_axes, and its leading size ({current}) is not '
                    f'the mapped size ({size}); it is stored with a new leading batch axis. If '
                    f'it is a per-lane buffer, give it the mapped size first or declare it in '
                    f'state_in_axes to make the intent explicit.', UserWarning, stacklevel=2)
        return 0


def state_map_transform(f: Callable, *, in_axes=0, out_axes=0, state_in_axes=None,
                        state_out_axes=None, axis_size: Optional[int] = None,
                        axis_name: AxisName | None = None, mapping_fn: Callable = jax.vmap,
                        mapping_kwargs: Optional[Dict] = None,
                        unexpected_out_state_mapping: str = 'auto', static_argnums=(),
                        static_argnames=(), name: Optional[str] = None,
                        **unused) -> Callable:
    """A state-aware mapped version of ``f`` (the engine of ``vmap2``, ``pmap2`` and
    ``StatefulMapping``; see :class:`~brainstate.transform.StatefulMapping` for the arguments).

    ``static_argnums`` / ``static_argnames``: positional / keyword arguments that are Python
    values closed over (neither traced nor mapped); each distinct value has its own program.
    """
    options = dict(in_axes=in_axes, out_axes=out_axes, state_in_axes=state_in_axes,
                   state_out_axes=state_out_axes, axis_size=axis_size, axis_name=axis_name,
                   mapping_fn=mapping_fn, mapping_kwargs=mapping_kwargs,
                   unexpected_out_state_mapping=unexpected_out_state_mapping, name=name)
    static_argnums = _as_tuple(static_argnums)
    static_argnames = _as_tuple(static_argnames)
    if not static_argnums and not static_argnames:
        return StateMappedFunction(f, **options)
    return _WithStaticArguments(f, static_argnums, static_argnames, options)


def _as_tuple(x) -> tuple:
    if x is None:
        return ()
    if isinstance(x, (int, str)):
        return (x,)
    return tuple(x)


class _WithStaticArguments:
    """Closes static arguments over ``f``: one :class:`StateMappedFunction` per distinct set
    of static values (they must be hashable, as for ``jax.jit``)."""

    def __init__(self, f, static_argnums, static_argnames, options):
        self.f, self.static_argnums, self.static_argnames = f, static_argnums, static_argnames
        self.options = options
        self._mapped: dict = {}

    def __call__(self, *args, **kwargs):
        n = len(args)
        nums = set()
        for i in self.static_argnums:
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise ArgumentValueError(
                    f'static_argnums={self.static_argnums} refers to positional argument {i}, '
                    f'but the function was called with {n} positional argument(s).')
            nums.add(j)
        static_args = tuple((i, args[i]) for i in sorted(nums))
        static_kwargs = tuple(sorted((k, v) for k, v in kwargs.items()
                                     if k in self.static_argnames))
        key = (n, static_args, static_kwargs)
        mapped = self._mapped.get(key)
        if mapped is None:
            f, fixed, fixed_kw = self.f, dict(static_args), dict(static_kwargs)

            def closed(*dyn, **dyn_kwargs):
                it = iter(dyn)
                full = [fixed[i] if i in fixed else next(it) for i in range(n)]
                return f(*full, **dyn_kwargs, **fixed_kw)

            closed.__name__ = getattr(f, '__name__', 'f')
            options = dict(self.options)
            in_axes = options['in_axes']
            if isinstance(in_axes, (tuple, list)) and len(in_axes) == n:
                options['in_axes'] = tuple(a for i, a in enumerate(in_axes) if i not in fixed)
            mapped = self._mapped[key] = StateMappedFunction(closed, **options)
        dyn = tuple(a for i, a in enumerate(args) if i not in nums)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        return mapped(*dyn, **dyn_kwargs)


# -- published helper functions ------------------------------------------------------------------

def split_rng_keys(rng_states, batch_size: int):
    """``(keys, backups)``: for each random state, ``batch_size`` keys split from it (one per
    lane), and one more key each to store back after the mapped call."""
    keys = tuple(rng.split_key(batch_size) for rng in rng_states)
    backups = tuple(rng.split_key() for rng in rng_states)
    return keys, backups


def unwind_new_state_levels(states, base_level: int) -> None:
    """Lower each state's ``stack_level`` to ``base_level`` (never raises it)."""
    for state in states:
        for _ in range(max(state.stack_level - base_level, 0)):
            state.decrease_stack_level()


def leaf_batch_dim(value) -> Optional[int]:
    """The batch dimension shared by the leaves of a value under a raw ``jax.vmap`` (None: not
    batched); leaves that disagree are a :class:`~brainstate.BatchAxisError`."""
    dims = {leaf.batch_dim if isinstance(leaf, BatchTracer) else None
            for leaf in jax.tree.leaves(value)}
    if not dims:
        return None
    if len(dims) != 1:
        raise BatchAxisError(f'The leaves of a state value have different batch dimensions '
                             f'{dims}; all leaves must share one batch dimension.')
    return dims.pop()


def _flatten_in_out_states(in_states=None):
    """``({axis: [states]}, {state: axis})`` of ``{axis: {name: state}}`` or of any pytree of
    States (all on axis 0)."""
    if in_states is None:
        return {}, {}
    if isinstance(in_states, dict) and \
            all(isinstance(k, int) for k in in_states) and \
            all(isinstance(v, dict) for v in in_states.values()):
        axis_to_states = {axis: list(group.values()) for axis, group in in_states.items()}
        state_to_axis = {s: axis for axis, group in in_states.items() for s in group.values()}
        return axis_to_states, state_to_axis
    states = jax.tree.leaves(in_states)
    return {0: list(states)}, {s: 0 for s in states}


def _format_state_axes(in_states, out_states):
    """The in/out declarations flattened; an in-state is also an out-state on its axis (two
    different axes are a BatchAxisError naming the state)."""
    axis_to_in, in_to_axis = _flatten_in_out_states(in_states)
    axis_to_out, out_to_axis = _flatten_in_out_states(out_states)
    for state, axis in in_to_axis.items():
        if state in out_to_axis:
            if out_to_axis[state] != axis:
                raise BatchAxisError(
                    f'State {_label(state)} is mapped to axis {axis} in the in-states but to '
                    f'axis {out_to_axis[state]} in the out-states; give it one axis.')
        else:
            out_to_axis[state] = axis
            axis_to_out.setdefault(axis, []).append(state)
    return axis_to_in, in_to_axis, axis_to_out, out_to_axis


def _remove_axis(x, axis: int):
    """Index 0 along ``axis`` of an array (one lane's slice)."""
    if not isinstance(axis, int):
        raise TypeError(f'Expected the mapped axis to be an integer, got {type(axis)}.')
    ndim = getattr(x, 'ndim', None)
    if ndim is None:
        raise ValueError(f'Cannot map axis {axis} over a {type(x).__name__}: it has no array '
                         f'dimensions. Mapped values must be arrays; use a None axis to share '
                         f'a scalar.')
    a = axis + ndim if axis < 0 else axis
    if not 0 <= a < ndim:
        raise ValueError(f'Mapped axis {axis} is out of bounds for an array of shape '
                         f'{x.shape}.')
    return x[(slice(None),) * a + (0,)]


def _remove_axis_tree(value, axis: int):
    return jax.tree.map(lambda x: _remove_axis(x, axis), value)


def _strip_args(args: tuple, in_axes) -> tuple:
    """One lane's slice of positional arguments mapped by ``in_axes`` (a pytree prefix)."""
    if in_axes is None:
        return args
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    leaves, tree = jax.tree.flatten(tuple(args))
    leaf_axes = flatten_axes('vmap in_axes', tree, axes)
    return tuple(jax.tree.unflatten(tree, [x if a is None else _remove_axis(x, a)
                                           for x, a in zip(leaves, leaf_axes)]))


def _get_batch_size(args: tuple, in_axes, in_states, axis_size: Optional[int] = None,
                    kwargs: Optional[dict] = None) -> int:
    """The mapped size from the mapped arguments, keyword arguments (axis 0) and batched
    states (``{axis: [states]}``); ``axis_size`` when nothing is mapped."""
    sizes = []
    if in_axes is not None and len(args):
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        leaves, tree = jax.tree.flatten(tuple(args))
        for leaf, axis in zip(leaves, flatten_axes('vmap in_axes', tree, axes)):
            if axis is not None:
                sizes.append(leaf.shape[axis])
    for value in (kwargs or {}).values():
        sizes.extend(leaf.shape[0] for leaf in jax.tree.leaves(value))
    for axis, states in (in_states or {}).items():
        if axis is None:
            continue
        for state in states:
            leaves = jax.tree.leaves(state.value)
            if leaves:
                sizes.append(leaves[0].shape[axis])
    if not sizes:
        if axis_size is None:
            raise ValueError('Cannot determine the mapped axis size: no argument or keyword '
                             'argument is mapped and no batched state was found. Pass '
                             'axis_size.')
        return axis_size
    if axis_size is not None and axis_size not in sizes:
        raise ValueError(f'axis_size={axis_size} conflicts with the mapped size(s) '
                         f'{sorted(set(sizes))} of the arguments and states.')
    if len(set(sizes)) > 1:
        raise ValueError(f'Inconsistent batch sizes found: {sorted(set(sizes))}.')
    return sizes[0]


def _compile_stateful_function(stateful_fn, in_axes, args):
    """Trace ``stateful_fn(state_vals, args)`` on one lane's slice (``in_axes`` and ``args``
    are ``(state axes, argument axes)`` and ``(state values, arguments)``); returns its cache
    key for that signature."""
    state_axes, arg_axes = in_axes
    state_vals, args = args
    if isinstance(arg_axes, tuple) and len(arg_axes) != len(args):
        raise ValueError(f'vmap in_axes must be an int, None, or one entry per positional '
                         f'argument; got {len(arg_axes)} entries for {len(args)} arguments.')
    state_vals = [_remove_axis_tree(v, a) for v, a in zip(state_vals, state_axes)]
    if isinstance(arg_axes, int):
        args = _remove_axis_tree(args, arg_axes)
    elif isinstance(arg_axes, tuple):
        args = tuple(arg if a is None else _remove_axis_tree(arg, a)
                     for arg, a in zip(args, arg_axes))
    stateful_fn.make_jaxpr(state_vals, args)
    return stateful_fn.get_arg_cache_key(state_vals, args)


def _build_new_state_resolver(state_out_axes):
    """``(ordered, axes_order)``: ``[(axis, predicate)]`` in priority order for new states
    (None first: NonBatchState, the INIT_NO_BATCHING tag and the user's None selector; then the
    user's other axes; axis 0 last, everything by default), and the distinct axes in order."""
    from .._state import NonBatchState
    if state_out_axes is None:
        state_out_axes = {}
    if not isinstance(state_out_axes, dict):
        state_out_axes = {0: state_out_axes}
    user = {axis: filter_module.to_predicate(v) for axis, v in state_out_axes.items()}
    unbatched = [filter_module.to_predicate(NonBatchState),
                 filter_module.to_predicate(INIT_NO_BATCHING)]
    if None in user:
        unbatched.insert(0, user[None])
    ordered = [(None, lambda p, s, preds=tuple(unbatched): any(q(p, s) for q in preds))]
    ordered += [(axis, pred) for axis, pred in user.items() if axis is not None and axis != 0]
    ordered.append((0, user.get(0, filter_module.to_predicate(...))))
    return ordered, list(dict.fromkeys(axis for axis, _ in ordered))


def _resolve_new_state_axis(state, ordered):
    """The axis of a new state by a resolver of :func:`_build_new_state_resolver`."""
    for axis, predicate in ordered:
        if predicate((), state):
            return axis
    return 0
