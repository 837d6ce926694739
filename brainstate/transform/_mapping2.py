"""``vmap2``, ``pmap2`` and ``StatefulMapping``: mapping by state selectors; and
``vmap2_new_states`` / ``pmap2_new_states``: a module's states created with a batch axis.

They are the published API over our one engine (:mod:`._mapping_core`, itself our ``vmap``:
one trace, the pass pipeline, the ``batching-analysis`` pass, one ``jax.vmap`` or ``jax.pmap``
over the pure program). See :class:`StatefulMapping` for the rules.
"""

from __future__ import annotations

import functools
import inspect
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union

import jax

from .._state import StateTraceStack, catch_new_states
from ..typing import Missing
from ._mapping_core import (INIT_NO_BATCHING, StateMappedFunction, _build_new_state_resolver,
                            _new_state_probe, _resolve_new_state_axis, normalize_state_axes,
                            state_map_transform)

__all__ = ['StatefulMapping', 'vmap2', 'pmap2', 'vmap2_new_states', 'pmap2_new_states']

F = TypeVar('F', bound=Callable)
AxisName = Hashable


def _ensure_tuple(x) -> Tuple:
    """``None`` -> ``()``, an int -> ``(int,)``, an iterable -> a tuple."""
    if x is None:
        return ()
    if isinstance(x, int):
        return (x,)
    return tuple(x)


class StatefulMapping:
    """A function mapped over an axis with ``jax.vmap`` (or another mapping primitive such as
    ``jax.pmap``), reading and writing States for you. Built by :func:`vmap2` and
    :func:`pmap2`; call it like the original function.

    Rules for states (decided when a call signature is first traced):

    * a state selected by ``state_in_axes`` is read per lane along its axis (its stored value
      holds one value per lane there) and written back on that axis;
    * any other state is read shared by all lanes; a value written into it that is the same in
      every lane is stored as it is, and a value that differs per lane is stored with the axis
      ``state_out_axes`` selects it for or, undeclared, by ``unexpected_out_state_mapping``:
      ``'auto'`` (default) and ``'ignore'`` store it with a new leading batch axis, ``'warn'``
      too with a warning, ``'raise'`` raises a :class:`~brainstate.BatchAxisError` naming the
      state. Under ``'auto'``, a state read and written per lane whose stored value already has
      the mapped size along axis 0 is a per-lane buffer: it is read per lane too (declare it
      in ``state_in_axes`` to say so explicitly);
    * random states (``brainstate.random``) give each lane its own key split from theirs; the
      key advances once per call;
    * a failed call changes no state.

    Args:
      fun: the function; it may read and write States it closes over.
      in_axes, out_axes: as for ``jax.vmap`` (keyword arguments are mapped over axis 0).
      state_in_axes, state_out_axes: ``{axis: selector}`` or a bare selector (axis 0); a
        selector is a State, States, or a filter (a State class, a tag string, a predicate
        ``f(path, state)``). Axis None in ``state_in_axes``: read shared explicitly; in
        ``state_out_axes``: the written value must be the same in every lane.
      unexpected_out_state_mapping: ``'auto'``, ``'raise'``, ``'warn'`` or ``'ignore'``.
      static_argnums, static_argnames: arguments closed over as Python values (not mapped).
      axis_env, return_only_write: accepted for compatibility; unused.
      axis_size: the mapped size (needed when nothing is mapped).
      axis_name: the axis name for collectives (``jax.lax.psum(x, axis_name)``).
      name: a name for messages.
      mapping_fn: the mapping primitive (``jax.vmap``, ``jax.pmap``, or one taking their
        ``in_axes``/``out_axes``/``axis_size``/``axis_name``); mapping_kwargs: more keyword
        arguments for it.

    Example::

        counter = brainstate.ShortTermState(jnp.zeros(3))

        def accumulate(x):
            counter.value = counter.value + x
            return counter.value

        f = brainstate.transform.StatefulMapping(
            accumulate, state_in_axes={0: OfType(brainstate.ShortTermState)})
        f(jnp.asarray([1., 2., 3.]))      # counter.value == [1., 2., 3.]
    """

    __module__ = 'brainstate.transform'

    def __init__(self, fun: Callable, in_axes: Union[int, Tuple[int, ...], None] = 0,
                 out_axes: Union[int, Tuple[int, ...], None] = 0, state_in_axes=None,
                 state_out_axes=None, unexpected_out_state_mapping: str = 'auto',
                 static_argnums: Union[int, Iterable[int]] = (),
                 static_argnames: Union[str, Iterable[str]] = (),
                 axis_env: Optional[Sequence[tuple[Hashable, int]]] = None,
                 return_only_write: bool = True, axis_size: Optional[int] = None,
                 axis_name: AxisName | None = None, name: Optional[str] = None,
                 mapping_fn: Callable = jax.vmap, mapping_kwargs: Dict = None):
        self.origin_fun = fun
        self.name = name
        self.in_axes = in_axes
        self.out_axes = out_axes
        self.state_in_axes = normalize_state_axes(state_in_axes)
        self.state_out_axes = normalize_state_axes(state_out_axes)
        self.axis_size = axis_size
        self.axis_name = axis_name
        self.mapping_fn = mapping_fn
        self.mapping_kwargs = {} if mapping_kwargs is None else mapping_kwargs
        self.unexpected_out_state_mapping = unexpected_out_state_mapping
        self.static_argnums = _ensure_tuple(static_argnums)
        self.static_argnames = _ensure_tuple(static_argnames)
        self.axis_env = axis_env
        self.return_only_write = return_only_write
        self._wrapped = state_map_transform(
            fun, in_axes=in_axes, out_axes=out_axes, state_in_axes=state_in_axes,
            state_out_axes=state_out_axes, axis_size=axis_size, axis_name=axis_name,
            mapping_fn=mapping_fn, mapping_kwargs=self.mapping_kwargs,
            unexpected_out_state_mapping=unexpected_out_state_mapping,
            static_argnums=self.static_argnums, static_argnames=self.static_argnames,
            name=name or 'StatefulMapping')
        functools.update_wrapper(self, fun, updated=())

    def __call__(self, *args, **kwargs):
        """Run the mapped function; states are read and written as described above."""
        return self._wrapped(*args, **kwargs)


def vmap2(fn: F | Missing = Missing(), *, in_axes: Optional[int | Sequence[Any]] = 0,
          out_axes: Any = 0, axis_name: Optional[AxisName] = None,
          axis_size: Optional[int] = None,
          spmd_axis_name: Optional[AxisName | Tuple[AxisName, ...]] = None,
          state_in_axes=None, state_out_axes=None,
          unexpected_out_state_mapping: str = 'auto') -> StatefulMapping | Callable:
    """Vectorize a function that reads and writes States, like ``jax.vmap``.

    Returns a :class:`StatefulMapping` (see it for how states are read and written), or a
    decorator when ``fn`` is omitted. ``spmd_axis_name`` is passed to ``jax.vmap``.

    Example: 8 trials, each with its own membrane potential, sharing the weights::

        net.V.value = jnp.zeros((8, n))
        run = brainstate.transform.vmap2(net.update, state_in_axes={0: net.V})
        run(inputs)                     # inputs: (8, n); net.V stays (8, n)
    """
    if isinstance(fn, Missing):
        return functools.partial(vmap2, in_axes=in_axes, out_axes=out_axes,
                                 axis_name=axis_name, axis_size=axis_size,
                                 spmd_axis_name=spmd_axis_name, state_in_axes=state_in_axes,
                                 state_out_axes=state_out_axes,
                                 unexpected_out_state_mapping=unexpected_out_state_mapping)
    mapping = jax.vmap if spmd_axis_name is None else \
        functools.partial(jax.vmap, spmd_axis_name=spmd_axis_name)
    return StatefulMapping(fn, in_axes=in_axes, out_axes=out_axes, state_in_axes=state_in_axes,
                           state_out_axes=state_out_axes, axis_name=axis_name,
                           axis_size=axis_size, mapping_fn=mapping, name='vmap2',
                           unexpected_out_state_mapping=unexpected_out_state_mapping)


def _argnums_given(x) -> bool:
    if isinstance(x, int):
        return True
    try:
        return len(tuple(x)) > 0
    except TypeError:
        return x is not None


def pmap2(fn: Callable | Missing = Missing(), axis_name: Optional[AxisName] = None, *,
          in_axes: Any = 0, out_axes: Any = 0,
          static_broadcasted_argnums: int | Iterable[int] = (), devices=None,
          backend: Optional[str] = None, axis_size: Optional[int] = None,
          donate_argnums: int | Iterable[int] = (), global_arg_shapes=None,
          state_in_axes=None, state_out_axes=None,
          unexpected_out_state_mapping: str = 'auto') -> StatefulMapping | Callable:
    """Run a function that reads and writes States on several devices, like ``jax.pmap``.

    The state rules are :class:`StatefulMapping`'s. ``devices``, ``backend`` (and, where the
    installed JAX has it, ``global_arg_shapes``) are passed to ``jax.pmap``.
    ``static_broadcasted_argnums`` and ``donate_argnums`` are not supported (the function JAX
    maps is the pure program, not yours): a non-empty value raises ``NotImplementedError``.
    Returns a decorator when ``fn`` is omitted.
    """
    if isinstance(fn, Missing):
        return functools.partial(pmap2, axis_name=axis_name, in_axes=in_axes,
                                 out_axes=out_axes,
                                 static_broadcasted_argnums=static_broadcasted_argnums,
                                 devices=devices, backend=backend, axis_size=axis_size,
                                 donate_argnums=donate_argnums,
                                 global_arg_shapes=global_arg_shapes,
                                 state_in_axes=state_in_axes, state_out_axes=state_out_axes,
                                 unexpected_out_state_mapping=unexpected_out_state_mapping)
    if _argnums_given(static_broadcasted_argnums):
        raise NotImplementedError(
            'pmap2 does not support static_broadcasted_argnums: the function jax.pmap maps is '
            'the pure program brainstate builds, whose positional arguments are not yours. '
            'Close over the static values (functools.partial), or use jax.pmap directly.')
    if _argnums_given(donate_argnums):
        raise NotImplementedError(
            'pmap2 does not support donate_argnums: the function jax.pmap maps is the pure '
            'program brainstate builds, so the indices would donate the wrong buffers. Use '
            'jax.pmap directly if you need donation.')
    options = dict(devices=devices, backend=backend, global_arg_shapes=global_arg_shapes)
    accepted = set(inspect.signature(jax.pmap).parameters)
    options = {k: v for k, v in options.items() if k in accepted and v is not None}
    return StatefulMapping(fn, in_axes=in_axes, out_axes=out_axes, state_in_axes=state_in_axes,
                           state_out_axes=state_out_axes, axis_name=axis_name,
                           axis_size=axis_size,
                           mapping_fn=functools.partial(jax.pmap, **options),
                           unexpected_out_state_mapping=unexpected_out_state_mapping,
                           name='pmap2')


# -- helpers of the published batched ``map`` ---------------------------------------------------

def _batch_and_remainder(x, batch_size: int):
    """``(blocks, remainder)``: the leaves of ``x`` cut along axis 0 into
    ``(n_blocks, batch_size, ...)`` and the rest (None when nothing is left)."""
    leaves, tree = jax.tree.flatten(x)
    lengths = {leaf.shape[0] for leaf in leaves}
    if not lengths:
        raise ValueError('map requires at least one array input to determine the leading '
                         'length.')
    if len(lengths) > 1:
        raise ValueError(f'All inputs must have the same length. Got {sorted(lengths)}.')
    length = lengths.pop()
    blocks, rest = divmod(length, batch_size)
    cut = blocks * batch_size
    scan_tree = tree.unflatten([leaf[:cut].reshape(blocks, batch_size, *leaf.shape[1:])
                                for leaf in leaves])
    if not rest:
        return scan_tree, None
    return scan_tree, tree.unflatten([leaf[cut:] for leaf in leaves])


def _validate_leading_lengths(xs) -> int:
    """The leading length shared by every leaf of ``xs`` (a ValueError otherwise)."""
    leaves = jax.tree.leaves(xs)
    if not leaves:
        raise ValueError('map requires at least one array input.')
    for leaf in leaves:
        if getattr(leaf, 'ndim', 1) == 0:
            raise ValueError('map requires array inputs with a leading axis to map over; got '
                             'a 0-d (scalar) input.')
    length = leaves[0].shape[0]
    for leaf in leaves:
        if leaf.shape[0] != length:
            raise ValueError(f'All inputs to map must share the same leading length; got '
                             f'{length} and {leaf.shape[0]}.')
    return length


# -- new states with a batch axis -----------------------------------------------------------------

def _map_new_states(behavior: str, module, init_kwargs: Dict, state_tag: str = None,
                    axis_size: int = None, state_out_axes=None,
                    axis_name: AxisName | None = None, spmd_axis_name=None) -> Dict:
    """``module.init_all_states(**init_kwargs)`` under ``vmap`` or ``pmap`` (``behavior``): the
    states it creates get the batch axis (their axis from ``state_out_axes``; NonBatchState and
    the ``INIT_NO_BATCHING`` tag: none), random initializers draw per lane. Returns
    ``{axis: [states]}``.

    ``init_all_states`` runs twice: first eagerly, inside :func:`in_new_state_probe` (its state
    changes undone, the states it creates thrown away), then mapped.
    """
    if behavior not in ('vmap', 'pmap'):
        raise ValueError(f"Invalid behavior {behavior!r}; must be 'vmap' or 'pmap'.")
    if axis_size is None:
        if behavior == 'pmap':
            axis_size = jax.local_device_count()
        else:
            raise ValueError('vmap2_new_states requires an explicit axis_size (the number of '
                             'lanes to create states for).')
    ordered, axes_order = _build_new_state_resolver(state_out_axes)

    # The discovery pass, as published: some modules do one-shot work there.
    probe = StateTraceStack(name='new_states_probe')
    try:
        with _new_state_probe(), probe:
            module.init_all_states(**init_kwargs)
    finally:
        probe.recovery_original_values()

    def init_all_states():
        module.init_all_states(**init_kwargs)

    init_all_states.__name__ = f'{type(module).__name__}.init_all_states'
    if behavior == 'vmap':
        mapping = jax.vmap if spmd_axis_name is None else \
            functools.partial(jax.vmap, spmd_axis_name=spmd_axis_name)
    else:
        mapping = jax.pmap
    mapped = StateMappedFunction(init_all_states, in_axes=(), axis_size=axis_size,
                                 axis_name=axis_name, mapping_fn=mapping, state_tag=state_tag,
                                 new_state_axis=lambda s: _resolve_new_state_axis(s, ordered),
                                 name=f'{behavior}2_new_states')
    with catch_new_states(state_tag) as catcher:
        mapped()
    grouped: Dict[Any, list] = defaultdict(list)
    for state in catcher.get_states():
        grouped[_resolve_new_state_axis(state, ordered)].append(state)
    return {axis: grouped[axis] for axis in axes_order if axis in grouped}


def vmap2_new_states(module, init_kwargs: Dict, state_tag: str = None, axis_size: int = None,
                     state_out_axes=None, spmd_axis_name=None) -> Dict:
    """Create a module's states with a batch axis of ``axis_size`` lanes.

    Runs ``module.init_all_states(**init_kwargs)`` vectorized: every state it creates gets the
    batch axis (axis 0, or the axis ``state_out_axes`` selects it for; a
    :class:`~brainstate.NonBatchState` stays unbatched), random initializations differ per
    lane, and ``state_tag`` tags the new states. Returns ``{axis: [states]}``.

    ``init_all_states`` runs twice (see :func:`in_new_state_probe`): it must be idempotent.

    Example::

        vmap2_new_states(net, {}, axis_size=8)
        net.V.value.shape               # (8, n)
    """
    return _map_new_states('vmap', module, init_kwargs, state_tag=state_tag,
                           axis_size=axis_size, state_out_axes=state_out_axes,
                           spmd_axis_name=spmd_axis_name)


def pmap2_new_states(module, init_kwargs: Dict, state_tag: str = None, axis_size: int = None,
                     state_out_axes=None, axis_name: AxisName | None = None) -> Dict:
    """:func:`vmap2_new_states` with ``jax.pmap``: one lane per device (``axis_size`` defaults
    to ``jax.local_device_count()``)."""
    return _map_new_states('pmap', module, init_kwargs, state_tag=state_tag,
                           axis_size=axis_size, state_out_axes=state_out_axes,
                           axis_name=axis_name)
