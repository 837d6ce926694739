"""checkpoint (remat): trade compute for memory in the backward pass, with States.

The wrapped function is traced into a body graph and stands in the enclosing program as one
``checkpoint`` region node; after the hoist-states pass the states it reads are operands and
the states it writes extra results, and lowering emits ``jax.checkpoint``: reverse-mode
differentiation recomputes the function's intermediates instead of storing them.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence


from .. import _state
from .._errors import ArgumentValueError
from ..ir import bind_region
from ._direct import direct_run_active
from ._eager import run_eagerly
from ._region_tracing import as_leaves, aval_of, check_no_states, fun_name, trace_region_body

__all__ = ['checkpoint', 'remat']


def checkpoint(fun: Callable | None = None, *, prevent_cse: bool = True, policy=None,
               static_argnums: int | Sequence[int] = ()) -> Callable:
    """Mark ``fun`` for rematerialization: its intermediates are recomputed in the backward pass
    rather than stored. ``fun`` may read and write States.

    Args:
      fun: the function; ``checkpoint`` also works as a decorator with keyword arguments only.
      prevent_cse: as ``jax.checkpoint``: stop XLA from merging the recomputation with the
        forward pass (only matters under differentiation; ``False`` is fine inside loops).
      policy: a ``jax.checkpoint_policies`` policy saying which intermediates may be saved.
      static_argnums: positional arguments that are Python values, not arrays.

    Returns:
      The wrapped function. Outside any transform it runs compiled, like ``jit`` (so a call that
      fails part-way leaves every State as it was); non-array arguments must then be listed in
      ``static_argnums``.

    Example::

        @brainstate.transform.checkpoint
        def block(x):
            for layer in layers:
                x = layer(x)
            return x
    """
    if fun is None:
        return functools.partial(checkpoint, prevent_cse=prevent_cse, policy=policy,
                                 static_argnums=static_argnums)
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    static_argnums = tuple(static_argnums)
    if any(isinstance(i, int) and i < 0 for i in static_argnums):
        raise ArgumentValueError(
            f'checkpoint of {fun_name(fun)}: negative static_argnums {static_argnums} are not '
            f'supported (as published); count positions from 0.')
    name = fun_name(fun)

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        if not _state.TRACE_STACK or direct_run_active():
            # Compiled like every eager transform, so a failure part-way keeps no write.
            return run_eagerly(wrapper, args, kwargs, static_argnums=static_argnums,
                               key=('checkpoint', fun, prevent_cse, policy))
        n = len(args)
        static = {i % n if n else i for i in static_argnums}
        dynamic = tuple(a for i, a in enumerate(args) if i not in static)
        where = f'checkpoint of {name}'
        leaves, tree = as_leaves((dynamic, kwargs), where)
        out_tree_box = []

        def flat(*flat_leaves):
            dyn, kw = tree.unflatten(flat_leaves)
            dyn = iter(dyn)
            full = [args[i] if i in static else next(dyn) for i in range(n)]
            out = fun(*full, **kw)
            check_no_states(out, 'returned', where)
            out_leaves, out_tree = as_leaves(out, where)
            out_tree_box.append(out_tree)
            return out_leaves

        graph, closure = trace_region_body(flat, [aval_of(x) for x in leaves], name,
                                           'checkpoint')
        outs = bind_region('checkpoint', [*closure, *leaves], [graph],
                           [v.aval for v in graph.outputs], prevent_cse=prevent_cse,
                           policy=policy)
        return out_tree_box[-1].unflatten(outs)

    return wrapper


remat = checkpoint
