"""checkify: functional error checks (``jax.experimental.checkify``) for stateful functions.

The function is traced through the one pipeline; the lowered pure program (state values and
arguments in, results and written state values out) is what JAX's ``checkify`` transforms, so
``check(...)`` calls, NaN, division and index checks work as in JAX, and the written states are
stored back (through :mod:`._state_io`) only when the whole call succeeded.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
from jax.experimental import checkify as _jax_checkify

from .. import _state
from ._arguments import ArgumentSpec
from ._eager import run_eagerly
from ._program import trace_program
from ._state_io import write_back

__all__ = ['checkify', 'check', 'check_error', 'all_checks', 'user_checks', 'nan_checks',
           'div_checks', 'index_checks', 'float_checks', 'automatic_checks']

check = _jax_checkify.check
check_error = _jax_checkify.check_error
all_checks = frozenset(_jax_checkify.all_checks)
user_checks = frozenset(_jax_checkify.user_checks)
nan_checks = frozenset(_jax_checkify.nan_checks)
div_checks = frozenset(_jax_checkify.div_checks)
index_checks = frozenset(_jax_checkify.index_checks)
float_checks = frozenset(_jax_checkify.float_checks)
automatic_checks = frozenset(_jax_checkify.automatic_checks)


def checkify(fun: Callable, errors=user_checks):
    """Functionalize the checks of a stateful function, like ``jax.experimental.checkify``.

    Args:
      fun: the function; it may read and write States and call ``check(pred, msg, ...)``.
      errors: which checks to enable (``user_checks``, ``nan_checks``, ``div_checks``,
        ``index_checks``, ``float_checks``, ``automatic_checks``, ``all_checks``, or a union).

    Returns:
      A function returning ``(error, result)``; ``error.get()`` is the message (None when no
      check failed) and ``error.throw()`` raises it. The written states are stored back.

    Example::

        err, out = brainstate.transform.checkify(step)(x)
        err.throw()
    """
    spec = ArgumentSpec(fun)
    errors = frozenset(errors)

    def traced(*args, **kwargs):
        sig = spec.signature(args, kwargs, allow_tracers=True)
        program = trace_program(fun, spec, sig)
        lowered = program.lowered
        closed = lowered.closed_jaxpr
        n = lowered.num_outputs

        def pure(state_leaves, arg_leaves):
            return jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *state_leaves, *arg_leaves)

        state_leaves = [leaf for s in lowered.read_states for leaf in jax.tree.leaves(s.value)]
        err, outs = _jax_checkify.checkify(pure, errors=errors)(state_leaves, list(sig.leaves))
        values, offset = [], n
        for state in lowered.written_states:
            count = state.treedef.num_leaves
            values.append(state.treedef.unflatten(outs[offset:offset + count]))
            offset += count
        write_back(list(lowered.written_states), values, f'checkify of {spec.fun_name}')
        return err, program.out_tree.unflatten(outs[:n])

    @functools.wraps(fun)
    def checked(*args, **kwargs):
        if _state.TRACE_STACK:
            return traced(*args, **kwargs)
        return run_eagerly(traced, args, kwargs, name=f'checkify({spec.fun_name})',
                           inside_raw_jax=True)

    return checked
