"""make_jaxpr: the pure jaxpr a stateful function lowers to, and the states it threads."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

from ._arguments import ArgumentSpec
from ._program import trace_program

__all__ = ['make_jaxpr']


def make_jaxpr(fun: Callable, static_argnums: int | Sequence[int] = (),
               static_argnames: str | Sequence[str] = (), return_only_write: bool = False,
               *, passes=None):
    """Return a function that traces ``fun`` and gives ``(closed_jaxpr, states)``.

    ``states`` lists every state the function touches: first the states it reads, then those it
    only writes. The jaxpr's inputs are the leaves of the states read (in that order) followed by
    the argument leaves; its outputs are the result leaves followed by the leaves of the states
    written, in the order they appear in ``states``. With ``return_only_write=True`` only the
    written states are returned.

    ``passes``: the pipeline the jaxpr is optimized with (None: the default; ``[]``: only what
    lowering needs), as for ``jit``.

    Example::

        jaxpr, states = brainstate.transform.make_jaxpr(step)(jnp.ones(3))
    """
    spec = ArgumentSpec(fun, static_argnums, static_argnames)

    @functools.wraps(fun)
    def make(*args, **kwargs):
        sig = spec.signature(args, kwargs)
        program = trace_program(fun, spec, sig, passes=passes)
        if return_only_write:
            return program.lowered.closed_jaxpr, tuple(program.lowered.written_states)
        return program.lowered.closed_jaxpr, program.states

    return make
