"""shard_map: a stateful function mapped over the shards of a device mesh (SPMD).

The function is traced once through the one pipeline at the per-shard shapes (arguments split
by ``in_specs``; states split by ``state_in_specs``, replicated by default, seen at their
per-shard shapes through the pipeline's ``lanes`` input); the lowered pure program runs under
``jax.shard_map`` and the written states are stored back through :mod:`._state_io`.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
from jax.sharding import NamedSharding, PartitionSpec

from .. import _state
from .._errors import ArgumentValueError
from ._arguments import ArgumentSpec
from ._eager import run_eagerly
from ._program import trace_program
from ._state_io import write_back

__all__ = ['shard_map']

_REPLICATED = PartitionSpec()

#: JAX's shard_map, and the name of its replication-check flag (``check_vma``; ``None`` where
#: a JAX has none): module attributes, so tests can watch the call.
jax_shard_map = jax.shard_map
SHARD_MAP_CHECK_KW = 'check_vma'


def _local_shape(shape, spec, mesh) -> tuple:
    shape = list(shape)
    for dim, names in enumerate(tuple(spec or ())):
        if names is None or dim >= len(shape):
            continue
        names = names if isinstance(names, tuple) else (names,)
        parts = math.prod(mesh.shape[name] for name in names)
        if shape[dim] % parts:
            raise ArgumentValueError(
                f'shard_map: dimension {dim} of size {shape[dim]} cannot be split into '
                f'{parts} shards along {names} (spec {spec}).')
        shape[dim] //= parts
    return tuple(shape)


def _declared_spec(state, mesh):
    """The PartitionSpec of a state sharded over ``mesh`` (see State.sharding), else None."""
    shardings = state._shardings
    if not shardings or len(set(shardings)) != 1:
        return None
    sharding = shardings[0]
    if isinstance(sharding, NamedSharding) and sharding.mesh.shape_tuple == mesh.shape_tuple \
            and sharding.mesh.devices.tolist() == mesh.devices.tolist():
        return sharding.spec
    return None


def _state_spec(state, table, mesh=None):
    """A state's spec: from the table (a spec for all, or ``{state: spec}``); a state the
    table leaves out is split as its own sharding over this mesh says, else replicated."""
    if isinstance(table, PartitionSpec):
        return table
    if table is not None and state in table:
        return table[state]
    declared = None if mesh is None else _declared_spec(state, mesh)
    return _REPLICATED if declared is None else declared


def _augment_shard_state_error(error, states, state_specs, arg_specs):
    """A clearer error for the common mistake: a replicated state (full shape on every shard)
    combined with sharded arguments (per-shard slices) fails with a bare shape error. Returns
    the new exception (the same type when it can be built from one message, else a
    RuntimeError), or None when the error is not that case."""
    text = str(error)
    low = text.lower()
    if not ('incompatible shapes' in low or 'broadcast' in low or
            ('shape' in low and 'mismatch' in low)):
        return None
    replicated = [s for s, spec in zip(states, state_specs) if spec == _REPLICATED]
    if not replicated or all(spec == _REPLICATED for spec in arg_specs):
        return None
    names = ', '.join(f'State {s.label()}' for s in replicated)
    message = (f'{text}\n\nshard_map: {names} is replicated (each shard sees its whole value) '
               f'while the arguments are split into per-shard slices, and the function combines '
               f'them. A state that should be split too needs a spec: state_in_specs={{state: '
               f"P('x')}} (and state_out_specs for the writes), or give the state a sharding "
               f'over this mesh (brainstate.shard_states).')
    try:
        return type(error)(message)
    except Exception:
        return RuntimeError(message)


def _check_kept_sharding(state, out_spec, mesh, fun_name):
    """A state with a sharding keeps it: writing it through another spec is an error."""
    if state._shardings is None:
        return
    out = NamedSharding(mesh, out_spec)
    for sharding, aval in zip(state._shardings, state._avals):
        if sharding is not None and not sharding.is_equivalent_to(out, len(aval.shape)):
            from .._errors import StateValueError
            from .._state_sharding import spec_text
            raise StateValueError(
                f'shard_map of {fun_name} writes State {state.label()} as {spec_text(out)}, but '
                f'the state is sharded as {spec_text(sharding)}; a state does not change its '
                f'sharding silently. Give it state_out_specs={{state: {spec_text(sharding)}}} '
                f'(its own spec is the default), or set `state.sharding` before the call.')


def shard_map(fun: Callable, mesh, in_specs: Any, out_specs: Any, *, state_in_specs=None,
              state_out_specs=None, check_vma: bool = True) -> Callable:
    """Map ``fun`` over shards of its arguments across ``mesh``, like ``jax.shard_map``; ``fun``
    may read and write States.

    Args:
      fun: the per-shard function.
      mesh: a ``jax.sharding.Mesh``.
      in_specs: one ``PartitionSpec`` per positional argument (a tuple), or one for all.
      out_specs: the ``PartitionSpec``(s) of the result (a pytree prefix of it).
      state_in_specs: how states are split when read: a ``PartitionSpec`` for every state, or
        a dict ``{state: spec}``. A state left out is split as its own sharding says when
        that is a ``NamedSharding`` over this mesh (see ``State.sharding``), else replicated.
      state_out_specs: the same for the written states (default: ``state_in_specs``). A
        state with a sharding must be written back in it: another spec is a
        ``StateValueError`` naming the state.
      check_vma: accepted for compatibility. The per-shard program is our lowered jaxpr, whose
        equations carry no varying-axes annotations, so JAX's check runs with it off.

    Example::

        f = brainstate.transform.shard_map(step, mesh, in_specs=(P('x'),), out_specs=P('x'),
                                           state_in_specs={buf: P('x')})
    """
    out_table = state_in_specs if state_out_specs is None else state_out_specs

    def call(*args):
        specs = tuple(in_specs) if isinstance(in_specs, (tuple, list)) else \
            (in_specs,) * len(args)
        if len(specs) != len(args):
            raise ArgumentValueError(
                f'shard_map of {getattr(fun, "__name__", fun)}: {len(specs)} in_specs for '
                f'{len(args)} positional argument(s); give one PartitionSpec per argument.')
        spec = ArgumentSpec(fun)
        sig = spec.signature(args, {}, allow_tracers=True)
        leaf_specs = [s for a, s in zip(args, specs) for _ in jax.tree.leaves(a)]
        in_avals = [jax.ShapeDtypeStruct(_local_shape(jax.numpy.shape(x), s, mesh),
                                         jax.numpy.result_type(x))
                    for x, s in zip(sig.leaves, leaf_specs)]

        seen = []  # the states the trace reads, in order (for the error below)

        def local_avals(state, spec):
            if spec == _REPLICATED:
                return None
            return tuple(jax.core.ShapedArray(_local_shape(a.shape, spec, mesh), a.dtype)
                         for a in state._avals)

        written_first = []  # states written before any read: seen as their out spec says

        def lanes(state):  # a read: the state_in_specs view (a read after the first write
            if state in written_first:  # reads what was written)
                return local_avals(state, _state_spec(state, out_table, mesh))
            if state not in seen:
                seen.append(state)
            return local_avals(state, _state_spec(state, state_in_specs, mesh))

        def written(state):  # a write: a state only written takes its state_out_specs view
            if state in seen:
                return lanes(state)
            if state not in written_first:
                written_first.append(state)
            return local_avals(state, _state_spec(state, out_table, mesh))

        lanes.written = written

        # Collectives (psum over 'x') need the mesh's axis names bound while tracing.
        from jax._src import core as jax_core
        try:
            with jax_core.extend_axis_env_nd(tuple(mesh.shape.items())):
                program = trace_program(fun, spec, sig, in_avals=in_avals, lanes=lanes)
        except Exception as error:
            clearer = _augment_shard_state_error(
                error, seen, [_state_spec(s, state_in_specs, mesh) for s in seen], leaf_specs)
            if clearer is not None:
                raise clearer from error
            raise
        lowered = program.lowered
        closed = lowered.closed_jaxpr
        n = lowered.num_outputs
        read_specs = [_state_spec(s, state_in_specs, mesh) for s in lowered.read_states
                      for _ in range(s.treedef.num_leaves)]
        written_specs = []
        for state in lowered.written_states:
            out_spec = _state_spec(state, out_table, mesh)
            _check_kept_sharding(state, out_spec, mesh, spec.fun_name)
            written_specs += [out_spec] * state.treedef.num_leaves

        def body(state_leaves, arg_leaves):
            outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *state_leaves, *arg_leaves)
            return program.out_tree.unflatten(outs[:n]), list(outs[n:])

        state_leaves = [leaf for s in lowered.read_states for leaf in jax.tree.leaves(s.value)]
        place = lambda x, s: jax.device_put(x, NamedSharding(mesh, s))  # onto the mesh
        state_leaves = [place(x, s) for x, s in zip(state_leaves, read_specs)]
        arg_leaves = [place(x, s) for x, s in zip(sig.leaves, leaf_specs)]
        check = {SHARD_MAP_CHECK_KW: False} if SHARD_MAP_CHECK_KW else {}
        result, written = jax_shard_map(
            body, mesh=mesh, in_specs=(read_specs, leaf_specs),
            out_specs=(out_specs, written_specs), **check)(state_leaves, arg_leaves)
        values, offset = [], 0
        for state in lowered.written_states:
            count = state.treedef.num_leaves
            values.append(state.treedef.unflatten(written[offset:offset + count]))
            offset += count
        write_back(list(lowered.written_states), values,
                   f'shard_map of {spec.fun_name}', reshaped=set())
        return result

    @functools.wraps(fun)
    def mapped(*args):
        if _state.TRACE_STACK:
            return call(*args)
        return run_eagerly(call, args, {}, name=f'shard_map({getattr(fun, "__name__", "f")})',
                           inside_raw_jax=True)

    return mapped
