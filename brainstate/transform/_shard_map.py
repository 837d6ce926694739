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


def _state_spec(state, table):
    if table is None:
        return _REPLICATED
    if isinstance(table, PartitionSpec):
        return table
    return table.get(state, _REPLICATED)


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
        a dict ``{state: spec}`` (others replicated); default: every state replicated.
      state_out_specs: the same for the written states (default: ``state_in_specs``).
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

        def lanes(state):
            s = _state_spec(state, state_in_specs)
            if s == _REPLICATED:
                return None
            return tuple(jax.core.ShapedArray(_local_shape(a.shape, s, mesh), a.dtype)
                         for a in state._avals)

        # Collectives (psum over 'x') need the mesh's axis names bound while tracing.
        from jax._src import core as jax_core
        with jax_core.extend_axis_env_nd(tuple(mesh.shape.items())):
            program = trace_program(fun, spec, sig, in_avals=in_avals, lanes=lanes)
        lowered = program.lowered
        closed = lowered.closed_jaxpr
        n = lowered.num_outputs
        read_specs = [_state_spec(s, state_in_specs) for s in lowered.read_states
                      for _ in range(s.treedef.num_leaves)]
        written_specs = [_state_spec(s, out_table) for s in lowered.written_states
                         for _ in range(s.treedef.num_leaves)]

        def body(state_leaves, arg_leaves):
            outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *state_leaves, *arg_leaves)
            return program.out_tree.unflatten(outs[:n]), list(outs[n:])

        state_leaves = [leaf for s in lowered.read_states for leaf in jax.tree.leaves(s.value)]
        place = lambda x, s: jax.device_put(x, NamedSharding(mesh, s))  # onto the mesh
        state_leaves = [place(x, s) for x, s in zip(state_leaves, read_specs)]
        arg_leaves = [place(x, s) for x, s in zip(sig.leaves, leaf_specs)]
        result, written = jax.shard_map(
            body, mesh=mesh, in_specs=(read_specs, leaf_specs),
            out_specs=(out_specs, written_specs), check_vma=False)(
            state_leaves, arg_leaves)
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
