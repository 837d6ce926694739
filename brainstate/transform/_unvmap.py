"""unvmap: reduce a value over every axis, the vmapped ones included, to one shared result.

``unvmap(x, 'any')`` inside ``vmap`` answers "is ``x`` true in any lane?" with one value for
all lanes (a plain ``jnp.any`` would answer per lane). Each reduction is a primitive whose
batching rule reduces the batch axis too and returns an unbatched result; outside ``vmap`` it
is the ordinary reduction. Used by :func:`jit_error_if` to raise once for a batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir

from .._errors import ArgumentValueError

__all__ = ['unvmap', 'unvmap_all', 'unvmap_any', 'unvmap_max']


def _reduction_primitive(name: str, reduce, out_dtype=None):
    p = Primitive(name)

    def impl(x):
        return reduce(x)

    def abstract(x):
        return jax.core.ShapedArray((), out_dtype or x.dtype)

    def batch(args, dims):
        (x,), _ = args, dims
        return p.bind(x), None

    p.def_impl(impl)
    p.def_abstract_eval(abstract)
    batching.primitive_batchers[p] = batch
    mlir.register_lowering(p, mlir.lower_fun(impl, multiple_results=False))
    return p


unvmap_all_p = _reduction_primitive('unvmap_all', jnp.all, jnp.bool_)
unvmap_any_p = _reduction_primitive('unvmap_any', jnp.any, jnp.bool_)
unvmap_max_p = _reduction_primitive('unvmap_max', jnp.max)

# 'none': the value itself, no longer mapped (every lane sees the whole batch).
no_vmap_p = Primitive('no_vmap')
no_vmap_p.def_impl(lambda x: x)
no_vmap_p.def_abstract_eval(lambda x: jax.core.ShapedArray(x.shape, x.dtype))
batching.primitive_batchers[no_vmap_p] = lambda args, dims: (no_vmap_p.bind(args[0]),
                                                             None)
mlir.register_lowering(no_vmap_p, mlir.lower_fun(lambda x: x, multiple_results=False))


def unvmap_all(x):
    """``jnp.all(x)`` over every axis, the vmapped ones included (one result for all lanes)."""
    return unvmap_all_p.bind(jnp.asarray(x))


def unvmap_any(x):
    """``jnp.any(x)`` over every axis, the vmapped ones included."""
    return unvmap_any_p.bind(jnp.asarray(x))


def unvmap_max(x):
    """``jnp.max(x)`` over every axis, the vmapped ones included."""
    return unvmap_max_p.bind(jnp.asarray(x))


def unvmap(x, op: str = 'any'):
    """Reduce ``x`` (one array) over all its axes and every enclosing ``vmap``'s batch axis.

    Args:
      x: an array (inside ``jax.vmap`` / ``brainstate.transform.vmap``: one lane's value).
      op: ``'any'``, ``'all'``, ``'max'``, or ``'none'`` (no reduction: the value of the whole
        batch, unmapped).

    Example::

        def step(v):
            stop = brainstate.transform.unvmap(v > 1., op='any')  # same in every lane
            ...
    """
    if op == 'all':
        return unvmap_all(x)
    if op == 'any':
        return unvmap_any(x)
    if op == 'max':
        return unvmap_max(x)
    if op == 'none':
        return no_vmap_p.bind(jnp.asarray(x))
    raise ArgumentValueError(f"unvmap: op must be 'all', 'any', 'max' or 'none', got {op!r}.")
