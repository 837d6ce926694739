"""map: apply a stateful function over the leading axis of arrays, sequentially or in batches."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import _state
from ._direct import direct_run_active
from ._eager import call_eagerly
from ._loops import for_loop
from ._region_tracing import as_leaves, fun_name
from ._vmap import vmap
from .._errors import ArgumentTypeError, ArgumentValueError, BatchAxisError

__all__ = ['map']


def _length(xs, where: str) -> int:
    lengths = set()
    for leaf in jax.tree.leaves(xs):
        if not jnp.ndim(leaf):
            raise ArgumentValueError(
                f'{where}: the arrays mapped over need a leading axis; got a 0-d (scalar) input.')
        lengths.add(jnp.shape(leaf)[0])
    if not lengths:
        raise ArgumentValueError(f'{where}: give at least one array to map over.')
    if len(lengths) > 1:
        raise ArgumentValueError(f'{where}: the inputs have different leading axis sizes '
                                 f'{sorted(lengths)}; they must all have the same length.')
    return lengths.pop()


def _map(f, xs: tuple, batch_size, name: str):
    try:
        return _map_blocks(f, xs, batch_size, name)
    except BatchAxisError as error:
        if batch_size is None:
            raise
        raise BatchAxisError(
            f'{error}\nmap(..., batch_size={batch_size}) runs {name} under vmap, a block of '
            f'elements at once, so a State it writes per element cannot be kept: drop '
            f'batch_size to map sequentially, or use brainstate.transform.vmap2.') from None


def _map_blocks(f, xs: tuple, batch_size, name: str):
    where = f'map over {name}'
    xs = tuple(jax.tree.unflatten(tree, leaves)
               for leaves, tree in (as_leaves(x, where) for x in xs))
    length = _length(xs, where)
    if batch_size is None or batch_size >= length:
        if batch_size is None:
            return for_loop(f, *xs)
        return vmap(f)(*xs)
    blocks, rest = divmod(length, batch_size)
    parts = []
    if blocks:
        head = jax.tree.map(
            lambda x: x[:blocks * batch_size].reshape((blocks, batch_size) + x.shape[1:]), xs)
        mapped = vmap(f)

        def block(*chunk):
            return mapped(*chunk)

        block.__name__ = name
        ys = for_loop(block, *head)
        parts.append(jax.tree.map(lambda y: y.reshape((blocks * batch_size,) + y.shape[2:]), ys))
    if rest:
        parts.append(vmap(f)(*jax.tree.map(lambda x: x[blocks * batch_size:], xs)))
    if len(parts) == 1:
        return parts[0]
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), *parts)


def map(f: Callable, *xs, batch_size: int | None = None):
    """Apply ``f`` to each element of ``xs`` along their leading axis and stack the results,
    like ``jax.lax.map``; ``f`` may read and write States.

    Semantics::

        def map(f, *xs):
            return stack([f(*x) for x in zip(*xs)])

    Args:
      f: called as ``f(*x_slices)``; returns a pytree of arrays.
      *xs: pytrees of arrays with the same leading length.
      batch_size: ``None`` runs the elements one after another (a :func:`for_loop`: the least
        memory, and state writes happen once per element, in order). An int runs blocks of
        ``batch_size`` elements at once with :func:`vmap`, one block after another, and the
        remainder (``length % batch_size`` elements) as one last smaller block: faster, more
        memory. Inside a block, as under ``vmap``, states are shared: a state may be written
        only a value that is the same for the whole block (else
        :class:`~brainstate.BatchAxisError`), and it is written once per block.

    Returns:
      The results of ``f``, stacked along a new leading axis.

    Example::

        losses = brainstate.transform.map(loss_of_example, xs, ys, batch_size=64)

    Called outside a transform, ``map`` compiles itself (with ``jit``) and runs at once.
    """
    if not callable(f):
        raise ArgumentTypeError(f'map: `f` must be callable, got {type(f).__name__}.')
    if batch_size is not None and (isinstance(batch_size, bool) or
                                   not isinstance(batch_size, (int, np.integer)) or
                                   batch_size < 1):
        raise ArgumentValueError(
            f'map: batch_size must be None or a positive int, got {batch_size!r}.')
    batch_size = None if batch_size is None else int(batch_size)
    name = fun_name(f)
    if not _state.TRACE_STACK or direct_run_active():
        return call_eagerly(('map', f, batch_size),
                            lambda *xs: _map(f, xs, batch_size, name), f'map({name})', *xs)
    return _map(f, xs, batch_size, name)
