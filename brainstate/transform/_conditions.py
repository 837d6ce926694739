"""State-aware branches: ``cond``, ``switch`` and ``ifelse``.

Each branch is traced into its own body graph; the branch point stands in the enclosing program
as one ``cond`` region node. The hoist-states pass gives every branch the states any branch
touches and makes every branch return the states any branch writes, a branch that does not
write a state passing its value through unchanged; lowering emits one ``lax.switch`` (XLA's
Conditional), so only the chosen branch runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import _state
from ..ir import bind_region
from ._direct import direct_run_active
from ._eager import call_eagerly
from ._region_tracing import (as_leaves, aval_of, check_no_states, check_types, fun_name,
                              trace_region_body, unify_closures)
from .._errors import ArgumentTypeError, ArgumentValueError

__all__ = ['cond', 'switch', 'ifelse']


def _branches_traced(index, branches: Sequence[Callable], operands: tuple, what: str):
    """Trace the branches and bind one ``cond`` region; ``index`` is an int32 in range."""
    where = f'{what} of {", ".join(fun_name(b) for b in branches)}'
    op_leaves, op_tree = as_leaves(operands, where)
    op_avals = [aval_of(x) for x in op_leaves]
    out_trees = []

    def tracer_of(branch):
        def flat(*leaves):
            out = branch(*op_tree.unflatten(leaves))
            check_no_states(out, 'returned', where)
            out_leaves, out_tree = as_leaves(out, where)
            out_trees.append(out_tree)
            return out_leaves
        return flat

    traced = [trace_region_body(tracer_of(b), op_avals, fun_name(b), 'cond') for b in branches]
    first_tree = out_trees[0]
    for branch, tree in zip(branches[1:], out_trees[1:]):
        if tree != first_tree:
            raise ArgumentTypeError(
                f'{where}: branch {fun_name(branch)} returned a value with structure '
                f'{tree}, but branch {fun_name(branches[0])} returned {first_tree}. '
                f'Every branch must return the same structure.')
    out_avals = [v.aval for v in traced[0][0].outputs]
    for graph, _ in traced[1:]:
        avals = [v.aval for v in graph.outputs]
        check_types(out_avals, avals, first_tree, f'{where}: a branch result',
                    'every branch must return the same shapes and dtypes')
        out_avals = [jax.core.ShapedArray(a.shape, a.dtype, weak_type=a.weak_type and b.weak_type)
                     for a, b in zip(out_avals, avals)]
    graphs, closure = unify_closures(traced)
    outs = bind_region('cond', [index, *closure, *op_leaves], graphs, out_avals)
    return first_tree.unflatten(outs)


def _check_scalar(value, what: str):
    if isinstance(value, Sequence) or np.ndim(value) != 0:
        raise ArgumentTypeError(
            f'{what} must be a scalar, got '
            f'{type(value).__name__ if isinstance(value, Sequence) else np.shape(value)}.')
    try:
        return jnp.result_type(value)
    except TypeError:
        raise ArgumentTypeError(f'{what} must be a boolean or a number, got {value!r}.') from None


def _cond(pred, true_fun, false_fun, operands):
    dtype = _check_scalar(pred, 'cond: the predicate')
    if dtype != jnp.bool_:
        if not jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.complexfloating):
            raise ArgumentTypeError(
                f'cond: the predicate must be a boolean or a number, got {dtype}.')
        pred = pred != 0
    index = lax.convert_element_type(pred, jnp.int32)
    return _branches_traced(index, [false_fun, true_fun], operands, 'cond')


def cond(pred, true_fun: Callable, false_fun: Callable, *operands) -> Any:
    """Run ``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``; both may read and
    write States.

    Only the chosen branch runs. A state written by one branch only keeps its value when the
    other branch runs.

    Args:
      pred: a boolean scalar (a number is true when non-zero).
      true_fun, false_fun: the branches; they must return the same structure, shapes and
        dtypes.
      *operands: passed to the branch.

    Returns:
      What the chosen branch returns.

    Example::

        def fire(v):
            count.value += 1
            return jnp.zeros_like(v)

        v = brainstate.transform.cond(v.max() > 1., fire, lambda v: v, v)
    """
    if not (callable(true_fun) and callable(false_fun)):
        raise ArgumentTypeError('cond: `true_fun` and `false_fun` must be callable.')
    if pred is None:
        raise ArgumentTypeError('cond: the predicate is None.')
    if not _state.TRACE_STACK or direct_run_active():
        return call_eagerly(('cond', true_fun, false_fun),
                            lambda pred, *ops: _cond(pred, true_fun, false_fun, ops),
                            f'cond({fun_name(true_fun)}, {fun_name(false_fun)})', pred,
                            *operands)
    return _cond(pred, true_fun, false_fun, operands)


def _switch(index, branches, operands):
    dtype = _check_scalar(index, 'switch: the index')
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ArgumentTypeError(f'switch: the index must be an integer, got {dtype}.')
    index = lax.convert_element_type(index, jnp.int32)
    index = lax.clamp(np.int32(0), index, np.int32(len(branches) - 1))
    return _branches_traced(index, branches, operands, 'switch')


def switch(index, branches: Sequence[Callable], *operands) -> Any:
    """Run ``branches[index](*operands)``; the branches may read and write States.

    ``index`` is clamped to ``[0, len(branches) - 1]``, as in ``jax.lax.switch``.

    Args:
      index: an integer scalar.
      branches: a sequence of callables returning the same structure, shapes and dtypes.
      *operands: passed to the chosen branch.

    Returns:
      What the chosen branch returns.

    Example::

        out = brainstate.transform.switch(mode, [rest, run, jump], x)
    """
    if callable(branches) or not isinstance(branches, Iterable):
        raise ArgumentTypeError(
            f'switch: `branches` must be a sequence of callables (e.g. `[f0, f1]`), got '
            f'{type(branches).__name__}.')
    branches = tuple(branches)
    if not branches:
        raise ArgumentValueError('switch: empty sequence of branches.')
    if not all(callable(b) for b in branches):
        raise ArgumentTypeError('switch: every branch must be callable.')
    if len(branches) == 1:
        return branches[0](*operands)
    if not _state.TRACE_STACK or direct_run_active():
        return call_eagerly(('switch', branches),
                            lambda index, *ops: _switch(index, branches, ops),
                            f'switch({", ".join(fun_name(b) for b in branches)})', index,
                            *operands)
    return _switch(index, branches, operands)


def ifelse(conditions: Sequence, branches: Sequence[Callable], *operands,
           check_cond: bool = True) -> Any:
    """``if``/``elif``/``else`` over States: run the branch whose condition holds.

    With ``check_cond=True`` (the default, as published) the conditions must be mutually
    exclusive: exactly one is true, else a ValueError is raised (at run time under
    compilation, through :func:`jit_error_if`). With ``check_cond=False`` the first true
    condition wins and the last branch is the ``else`` (its condition is not looked at).

    Args:
      conditions: a sequence of boolean scalars, as long as ``branches``.
      branches: a sequence of callables returning the same structure, shapes and dtypes.
      *operands: passed to the chosen branch.
      check_cond: check that exactly one condition is true.

    Example::

        y = brainstate.transform.ifelse([x > 5, (x > 0) & (x <= 5), x <= 0],
                                        [big, positive, other], x)
        y = brainstate.transform.ifelse([x > 5, x > 0, True], [big, positive, other], x,
                                        check_cond=False)
    """
    branches = tuple(branches)
    conditions = tuple(conditions)
    if not branches:
        raise ArgumentValueError('ifelse: empty sequence of branches.')
    if len(conditions) != len(branches):
        raise ArgumentValueError(
            f'ifelse: {len(conditions)} conditions for {len(branches)} branches; '
            f'give one condition per branch (the last one is the `else`).')
    if len(branches) == 1:
        return branches[0](*operands)
    flags = [jnp.asarray(c) for c in (conditions if check_cond else conditions[:-1])]
    for i, flag in enumerate(flags):
        if flag.shape != ():
            raise ArgumentTypeError(
                f'ifelse: condition {i} must be a scalar, got shape {flag.shape}.')
    if check_cond:
        from ._error_if import jit_error_if
        as_int = jnp.stack([f.astype(jnp.int32) for f in flags])
        jit_error_if(jnp.sum(as_int) != 1, 'ifelse: exactly one condition must be True (or '
                     'pass check_cond=False for first-true-wins), but got {c}.', c=as_int)
        flags = flags[:-1]
    flags = jnp.stack([f.astype(bool) for f in flags] + [jnp.asarray(True)])
    index = jnp.argmax(flags).astype(jnp.int32)
    return switch(index, branches, *operands)
