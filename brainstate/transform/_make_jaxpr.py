"""make_jaxpr: the jaxpr a stateful function lowers to, and the states it threads.

The published layout: the jaxpr's inputs are the argument leaves followed by the leaves of every
state the function touches; its outputs are the result leaves followed by the new values of
those states (only of the written ones with ``return_only_write=True``). The equations are our
lowered program's (see :class:`~._stateful_function.StatefulFunction`).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

from ._stateful_function import (CacheKey, StatefulFunction, ensure_str as _ensure_str,
                                 get_arg_cache_key, make_hashable as _make_hashable)

__all__ = ['make_jaxpr', 'StatefulFunction']


def make_jaxpr(fun: Callable, static_argnums: int | Sequence[int] = (),
               static_argnames: str | Sequence[str] = (), axis_env=None,
               return_shape: bool = False, return_only_write: bool = False, *, passes=None):
    """Return a function that traces ``fun`` and gives ``(closed_jaxpr, states)``
    (``(closed_jaxpr, states, out_shapes)`` with ``return_shape=True``).

    ``states`` lists every state the function touches: first the states whose values it uses,
    then those it only writes, then those it reads without using the value (a read the passes
    removed: the state is still one of the jaxpr's inputs, as published). The jaxpr's inputs
    are the argument leaves followed by the leaves of every state in ``states``; its outputs
    are the result leaves followed by the new values of every state (a state only read is
    passed through), or of the written states only with ``return_only_write=True``.

    ``passes``: the pipeline the jaxpr is optimized with (None: the default; ``[]``: only what
    lowering needs), as for ``jit``.

    Example::

        jaxpr, states = brainstate.transform.make_jaxpr(step)(jnp.ones(3))
        outs = jax.core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, x, *[s.value for s in states])
    """
    stateful = StatefulFunction(fun, static_argnums=static_argnums,
                                static_argnames=static_argnames, axis_env=axis_env,
                                name='make_jaxpr', return_only_write=return_only_write,
                                passes=passes)
    # States stored in a pack (brainstate.pack_states) are read and written through their
    # buffer, as in the program jit compiles: the jaxpr takes the buffer and slices it, and
    # `states` lists the buffer (a PackedBuffer) in place of its members.
    stateful.packed = True

    @functools.wraps(fun)
    def make(*args, **kwargs):
        key = stateful._compile(args, kwargs)
        jaxpr, states = stateful.get_jaxpr_by_cache(key), stateful.get_states_by_cache(key)
        if return_shape:
            return jaxpr, states, stateful.get_out_shapes_by_cache(key)[0]
        return jaxpr, states

    name = getattr(fun, '__name__', None)
    if name is not None:
        make.__name__ = make.__qualname__ = f'make_jaxpr({name})'
    return make
