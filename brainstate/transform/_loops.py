"""State-aware loops: ``scan``, ``for_loop``, their checkpointed forms, ``while_loop`` and
``bounded_while_loop``.

A loop body may read and write States freely. The body is traced once into a sub-graph of the
state IR and the loop stands in the enclosing program as one region node; the hoist-states pass
then turns the states the body writes into loop carries and those it only reads into
loop-invariant operands, and lowering emits one ``lax.scan`` / ``lax.while_loop``: a simulation of
thousands of steps is one XLA loop.

Called outside any transform, a loop compiles itself (with ``brainstate.transform.jit``) and runs
at once; its state updates are kept, and a failed loop leaves every State unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import jax
import numpy as np
import jax.numpy as jnp

from .. import _state
from ..ir import bind_region
from ._checkpoint import checkpoint
from ._conditions import cond
from ._eager import call_eagerly
from ._progress_bar import PROGRESS_BAR_SCOPE, ProgressBar, as_progress_bar
from ._region_tracing import (as_leaves, aval_of, check_no_states, check_types, fun_name,
                              strong_aval, to_aval, trace_region_body)
from .._errors import ArgumentTypeError, ArgumentValueError, StateValueError

__all__ = ['scan', 'for_loop', 'checkpointed_scan', 'checkpointed_for_loop', 'while_loop',
           'bounded_while_loop']

Carry = TypeVar('Carry')
X = TypeVar('X')
Y = TypeVar('Y')


class _BodyReturnError(ArgumentTypeError, ValueError):
    """A loop body that does not return ``(new_carry, y)`` (the published library raises
    ValueError)."""


def _disable_jit_eagerly() -> bool:
    """Under ``jax.disable_jit()``, outside every trace: loops run as Python loops."""
    from .._compat import outside_any_jax_trace
    return bool(jax.config.jax_disable_jit) and not _state.TRACE_STACK and \
        outside_any_jax_trace()


def _python_scan(f, init, xs, length, reverse):
    """scan's documented semantics as a plain Python loop (for ``jax.disable_jit()``)."""
    leaves, tree = jax.tree.flatten(xs)
    n = length if length is not None else (jnp.shape(leaves[0])[0] if leaves else 0)
    if n == 0:
        raise ArgumentValueError(f'scan over {fun_name(f)} under jax.disable_jit(): the loop '
                                 f'length is 0, so the stacked outputs have no example.')
    carry, ys = init, [None] * n
    for i in (reversed(range(n)) if reverse else range(n)):
        x = tree.unflatten([leaf[i] for leaf in leaves]) if leaves else None
        out = f(carry, x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise _BodyReturnError(f'scan over {fun_name(f)}: the body must return a pair '
                                   f'(new_carry, y), got {type(out).__name__}.')
        carry, ys[i] = out
    return carry, jax.tree.map(lambda *y: jnp.stack(y), *ys)


def _loop_length(xs_leaves, length, where: str) -> int:
    lengths = set()
    for leaf in xs_leaves:
        if not jnp.ndim(leaf):
            raise ArgumentValueError(
                f'{where}: the arrays scanned over need a leading axis; got a '
                f'scalar.')
        lengths.add(jnp.shape(leaf)[0])
    if length is not None:
        try:
            length = int(length)
        except TypeError:
            raise ArgumentTypeError(
                f'{where}: `length` must be a Python int, got {length!r}.') from None
        if lengths and lengths != {length}:
            raise ArgumentValueError(
                f'{where}: `length={length}` disagrees with the leading axis sizes '
                f'{sorted(lengths)} of the inputs.')
        return length
    if len(lengths) > 1:
        raise ArgumentValueError(f'{where}: the inputs have different leading axis sizes '
                                 f'{sorted(lengths)}; they must all have the loop length.')
    if not lengths:
        raise ArgumentValueError(f'{where}: no inputs to loop over; give `length=`.')
    return lengths.pop()


def _scan_traced(f, init, xs, length, reverse, unroll, name):
    """Trace one scan into a region of the enclosing trace."""
    where = f'scan over {name}'
    init_leaves, init_tree = as_leaves(init, where)
    xs_leaves, xs_tree = as_leaves(xs, where)
    x_avals = [jax.core.ShapedArray(jnp.shape(x)[1:], jnp.result_type(x),
                                    weak_type=aval_of(x).weak_type) for x in xs_leaves]
    carry_avals = [strong_aval(aval_of(x)) for x in init_leaves]
    nk = len(init_leaves)
    y_tree_box = []

    def flat_body(*leaves):
        carry = init_tree.unflatten(leaves[:nk])
        x = xs_tree.unflatten(leaves[nk:])
        out = f(carry, x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _BodyReturnError(f'{where}: the body must return a pair (new_carry, y), got '
                                    f'{type(out).__name__}.')
        new_carry, y = out
        check_no_states(out, 'returned', where)
        carry_leaves, carry_tree = jax.tree.flatten(new_carry)
        if carry_tree != init_tree:
            raise ArgumentTypeError(
                f'{where}: the body returned a carry with structure {carry_tree}, '
                f'but the initial carry has structure {init_tree}.')
        y_leaves, y_tree = as_leaves(y, where)
        y_tree_box.append(y_tree)
        return list(carry_leaves) + y_leaves

    for attempt in range(2):
        graph, closure = trace_region_body(flat_body, carry_avals + x_avals, name, 'scan')
        out_avals = [v.aval for v in graph.outputs]
        carry_out = out_avals[:nk]
        promoted = _promote_weak(init_leaves, carry_avals, carry_out)
        if promoted is None or attempt:
            break
        carry_avals = promoted  # a weakly typed init (a Python number) takes the body's dtype
    check_types(carry_avals, carry_out, init_tree, f'{where}: the carry returned by the body')
    y_avals = [jax.core.ShapedArray((length,) + a.shape, a.dtype, weak_type=a.weak_type)
               for a in out_avals[nk:]]
    operands = (list(closure) + [to_aval(x, a) for x, a in zip(init_leaves, carry_avals)] +
                xs_leaves)
    outs = bind_region('scan', operands, [graph], carry_avals + y_avals, length=length,
                       reverse=bool(reverse), unroll=unroll, num_consts=len(closure),
                       num_carry=nk)
    return init_tree.unflatten(outs[:nk]), y_tree_box[-1].unflatten(outs[nk:])


def _promote_weak(init_leaves, carry_avals, carry_out):
    """New carry avals when a weakly typed initial value changes dtype in the body, else None."""
    changed, new = False, []
    for leaf, want, have in zip(init_leaves, carry_avals, carry_out):
        if (want.dtype != have.dtype and want.shape == have.shape and aval_of(leaf).weak_type):
            new.append(jax.core.ShapedArray(have.shape, have.dtype))
            changed = True
        else:
            new.append(want)
    return new if changed else None


def _with_progress(f, init, bar: ProgressBar, length: int):
    """Wrap a scan body so that it counts iterations and reports them to the progress bar.

    One runner (one bar on screen) serves every trace of the body: a loop run as several
    scans (checkpointed_scan's blocks and remainder) advances the same bar."""
    runner = bar.init(length)

    def counted(carry, x):
        done, inner = carry
        inner, y = f(inner, x)
        # The bookkeeping in a named scope: pictures of the IR recognise its nodes by it and
        # fold them into one box (brainstate.ir.progress_bar_nodes).
        with jax.named_scope(PROGRESS_BAR_SCOPE):
            done = done + 1
            runner(done - 1)
        return (done, inner), y

    counted.__name__ = fun_name(f)
    return counted, (jnp.zeros((), jnp.int32), init)


def _scan(f, init, xs, length, reverse, unroll, pbar, name):
    xs_leaves = jax.tree.leaves(xs)
    length = _loop_length(xs_leaves, length, f'scan over {name}')
    bar = as_progress_bar(pbar)
    if bar is not None:
        f, init = _with_progress(f, init, bar, length)
    carry, ys = _scan_traced(f, init, xs, length, reverse, unroll, name)
    if bar is not None:
        carry = carry[1]
    return carry, ys


def scan(f: Callable[[Carry, X], tuple[Carry, Y]], init: Carry, xs: X, length: int | None = None,
         reverse: bool = False, unroll: int | bool = 1,
         pbar: ProgressBar | bool | int | None = None) -> tuple[Carry, Y]:
    """Loop ``f`` over the leading axis of ``xs``, carrying a value; ``f`` may use States.

    Semantics, with every state read and write inside ``f`` kept::

        def scan(f, init, xs, length=None):
            carry, ys = init, []
            for x in xs:                 # or range(length) when xs is None
                carry, y = f(carry, x)
                ys.append(y)
            return carry, stack(ys)

    Args:
      f: the body, ``f(carry, x) -> (new_carry, y)``. ``new_carry`` must have the structure,
        shapes and dtypes of ``init``; ``y`` may be any pytree of arrays (or None).
      init: the initial carry (a pytree of arrays).
      xs: a pytree of arrays scanned along their leading axis, or None.
      length: the number of iterations; required when ``xs`` is None.
      reverse: run from the last element of ``xs`` to the first (``ys`` keep ``xs``' order).
      unroll: how many iterations to unroll in one iteration of the compiled loop (``True``:
        all).
      pbar: show a progress bar: a :class:`ProgressBar`, ``True``, or an update frequency.

    Returns:
      ``(final_carry, ys)``, ``ys`` stacking each ``y`` along a new leading axis.

    Example::

        def step(total, x):
            counter.value += 1          # a State: the update is kept
            return total + x, total

        total, partial_sums = brainstate.transform.scan(step, 0., jnp.arange(5.))

    The whole loop compiles to one ``lax.scan``; ``counter`` becomes one of its carries.
    """
    if not callable(f):
        raise ArgumentTypeError(f'scan: `f` must be callable, got {type(f).__name__}.')
    name = fun_name(f)
    if _disable_jit_eagerly():
        return _python_scan(f, init, xs, length, reverse)
    if not _state.TRACE_STACK:
        return call_eagerly(
            ('scan', f, length, reverse, unroll, pbar),
            lambda init, xs: _scan(f, init, xs, length, reverse, unroll, pbar, name),
            f'scan({name})', init, xs)
    return _scan(f, init, xs, length, reverse, unroll, pbar, name)


def _for_loop(f, xs, length, reverse, unroll, pbar, name):
    def body(carry, x):
        return carry, f(*x)

    body.__name__ = name
    _, ys = _scan(body, None, xs, length, reverse, unroll, pbar, name)
    return ys


def for_loop(f: Callable[..., Y], *xs, length: int | None = None, reverse: bool = False,
             unroll: int | bool = 1, pbar: ProgressBar | bool | int | None = None) -> Y:
    """Run ``f`` once per element of the ``xs`` (along their leading axis) and stack what it
    returns. ``f`` may read and write States: this is how a model is simulated over time.

    Args:
      f: the body, called as ``f(*x_slices)``; returns any pytree of arrays (or None).
      *xs: pytrees of arrays looped over together along their leading axis.
      length: the number of iterations; required when no ``xs`` are given (then ``f()`` takes
        no arguments).
      reverse: iterate from the last element to the first.
      unroll: iterations unrolled per compiled loop iteration.
      pbar: a :class:`ProgressBar`, ``True``, or an update frequency.

    Returns:
      The outputs of ``f``, stacked along a new leading axis.

    Example::

        class LIF(brainstate.Module):
            def __init__(self, n):
                super().__init__()
                self.V = brainstate.HiddenState(jnp.zeros(n))

            def update(self, current):
                V = self.V.value + 0.1 * (-self.V.value + current)
                spike = V > 1.
                self.V.value = jnp.where(spike, 0., V)
                return spike

        net = LIF(100)
        spikes = brainstate.transform.for_loop(net.update, jnp.full((1000, 100), 2.))

    ``net.V`` holds its final value afterwards; inside ``jit`` or ``grad`` the loop is one
    ``lax.scan`` with ``V`` as a carry.
    """
    if not callable(f):
        raise ArgumentTypeError(f'for_loop: `f` must be callable, got {type(f).__name__}.')
    name = fun_name(f)
    if not _state.TRACE_STACK:
        return call_eagerly(
            ('for_loop', f, length, reverse, unroll, pbar),
            lambda *xs: _for_loop(f, xs, length, reverse, unroll, pbar, name),
            f'for_loop({name})', *xs)
    return _for_loop(f, xs, length, reverse, unroll, pbar, name)


# -- checkpointed loops -------------------------------------------------------------------------

def _checkpointed_scan(f, init, xs, length, base, pbar, name, reverse=False):
    if reverse:
        xs = jax.tree.map(lambda x: jnp.flip(x, 0), xs)
        carry, ys = _checkpointed_scan(f, init, xs, length, base, pbar, name)
        return carry, jax.tree.map(lambda y: jnp.flip(y, 0), ys)
    length = _loop_length(jax.tree.leaves(xs), length, f'checkpointed_scan over {name}')
    if length == 0:
        raise ArgumentValueError(f'checkpointed_scan over {name}: the loop length is 0; give '
                                 f'at least one iteration.')
    bar = as_progress_bar(pbar)
    if bar is not None:
        f, init = _with_progress(f, init, bar, length)
    blocks, rest = divmod(length, base)

    def block_runner(steps):
        def run_block(carry, xb):
            return _scan_traced(f, carry, xb, steps, False, 1, name)

        run_block.__name__ = f'{name}_block'
        return checkpoint(run_block)

    carry, parts = init, []
    if blocks:
        xs_blocks = jax.tree.map(
            lambda x: x[:blocks * base].reshape((blocks, base) + x.shape[1:]), xs)
        carry, ys = _scan_traced(block_runner(base), carry, xs_blocks, blocks, False, 1, name)
        parts.append(jax.tree.map(lambda y: y.reshape((blocks * base,) + y.shape[2:]), ys))
    if rest:
        carry, ys = block_runner(rest)(carry, jax.tree.map(lambda x: x[blocks * base:], xs))
        parts.append(ys)
    if len(parts) == 2:
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), *parts)
    elif parts:
        ys = parts[0]
    else:  # length 0: trace the body once for its output types
        carry, ys = _scan_traced(f, init, xs, 0, False, 1, name)
    if bar is not None:
        carry = carry[1]
    return carry, ys


def checkpointed_scan(f: Callable[[Carry, X], tuple[Carry, Y]], init: Carry, xs: X,
                      length: int | None = None, base: int = 16,
                      pbar: ProgressBar | bool | int | None = None,
                      reverse: bool = False) -> tuple[Carry, Y]:
    """:func:`scan` whose backward pass stores only every ``base``-th carry.

    The loop runs as an outer loop over blocks of ``base`` iterations, each block checkpointed:
    reverse-mode differentiation keeps the carries at block boundaries and recomputes the
    inside of one block at a time. Memory for backpropagation through time drops from
    ``length`` steps of activations to about ``length / base + base``, for about one extra
    forward pass of compute. The forward results are the same as :func:`scan`.

    Args:
      f, init, xs, length, pbar: as for :func:`scan`.
      base: iterations per checkpointed block (an int >= 2).
      reverse: run from the last element of ``xs`` to the first (``ys`` keep ``xs``' order).

    Returns:
      ``(final_carry, ys)`` as :func:`scan`.
    """
    if not callable(f):
        raise ArgumentTypeError(
            f'checkpointed_scan: `f` must be callable, got {type(f).__name__}.')
    if isinstance(base, bool) or not isinstance(base, (int, np.integer)) or base < 2:
        raise ArgumentValueError(
            f'checkpointed_scan: `base` must be an integer >= 2, got {base!r}.')
    name = fun_name(f)
    if not _state.TRACE_STACK:
        return call_eagerly(
            ('checkpointed_scan', f, length, base, pbar),
            lambda init, xs: _checkpointed_scan(f, init, xs, length, base, pbar, name,
                                                reverse),
            f'checkpointed_scan({name})', init, xs)
    return _checkpointed_scan(f, init, xs, length, base, pbar, name, reverse)


def _checkpointed_for_loop(f, xs, length, base, pbar, name):
    def body(carry, x):
        return carry, f(*x)

    body.__name__ = name
    _, ys = _checkpointed_scan(body, None, xs, length, base, pbar, name)
    return ys


def checkpointed_for_loop(f: Callable[..., Y], *xs, length: int | None = None, base: int = 16,
                          pbar: ProgressBar | bool | int | None = None) -> Y:
    """:func:`for_loop` whose backward pass stores only every ``base``-th step's states (see
    :func:`checkpointed_scan`). Same arguments and results as :func:`for_loop`, plus ``base``.
    """
    if not callable(f):
        raise ArgumentTypeError(
            f'checkpointed_for_loop: `f` must be callable, got {type(f).__name__}.')
    name = fun_name(f)
    if not _state.TRACE_STACK:
        return call_eagerly(
            ('checkpointed_for_loop', f, length, base, pbar),
            lambda *xs: _checkpointed_for_loop(f, xs, length, base, pbar, name),
            f'checkpointed_for_loop({name})', *xs)
    return _checkpointed_for_loop(f, xs, length, base, pbar, name)


# -- while loops --------------------------------------------------------------------------------

def _while_loop(cond_fun, body_fun, init_val, name):
    where = f'while_loop over {name}'
    init_leaves, init_tree = as_leaves(init_val, where)
    carry_avals = [strong_aval(aval_of(x)) for x in init_leaves]

    def flat_cond(*leaves):
        pred = cond_fun(init_tree.unflatten(leaves))
        check_no_states(pred, 'returned', where)
        if jnp.shape(pred) != () or jnp.result_type(pred) != jnp.bool_:
            raise ArgumentTypeError(f'{where}: the condition must return a boolean scalar, got '
                                    f'{jax.typeof(pred).str_short()}.')
        return [jnp.asarray(pred)]

    def flat_body(*leaves):
        out = body_fun(init_tree.unflatten(leaves))
        check_no_states(out, 'returned', where)
        out_leaves, out_tree = jax.tree.flatten(out)
        if out_tree != init_tree:
            raise ArgumentTypeError(
                f'{where}: the body returned a value with structure {out_tree}, '
                f'but the initial value has structure {init_tree}.')
        return out_leaves

    cond_graph, cond_closure = trace_region_body(flat_cond, carry_avals,
                                                 f'{fun_name(cond_fun)}', 'while')
    body_graph, body_closure = trace_region_body(flat_body, carry_avals, name, 'while')
    check_types(carry_avals, [v.aval for v in body_graph.outputs], init_tree,
                f'{where}: the value returned by the body')
    operands = (list(cond_closure) + list(body_closure) +
                [to_aval(x, a) for x, a in zip(init_leaves, carry_avals)])
    outs = bind_region('while', operands, [cond_graph, body_graph], carry_avals,
                       cond_nconsts=len(cond_closure), body_nconsts=len(body_closure))
    return init_tree.unflatten(outs)


def while_loop(cond_fun: Callable[[Carry], Any], body_fun: Callable[[Carry], Carry],
               init_val: Carry) -> Carry:
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)`` is true; both may use States.

    Semantics::

        val = init_val
        while cond_fun(val):
            val = body_fun(val)
        return val

    ``body_fun`` may read and write States (written states become carries of the compiled
    ``lax.while_loop``). ``cond_fun`` may read States but not write them: a write there is a
    :class:`~brainstate.BrainStateError` naming the state. Like ``lax.while_loop`` it supports
    forward-mode but not reverse-mode differentiation; use :func:`bounded_while_loop` to
    differentiate.

    Args:
      cond_fun: ``cond_fun(val) -> bool scalar``.
      body_fun: ``body_fun(val) -> val`` of the same structure, shapes and dtypes.
      init_val: the initial value (a pytree of arrays).

    Returns:
      The final value.
    """
    if not callable(cond_fun) or not callable(body_fun):
        raise ArgumentTypeError('while_loop: `cond_fun` and `body_fun` must be callable.')
    name = fun_name(body_fun)
    if not _state.TRACE_STACK:
        return call_eagerly(('while_loop', cond_fun, body_fun),
                            lambda init: _while_loop(cond_fun, body_fun, init, name),
                            f'while_loop({name})', init_val)
    return _while_loop(cond_fun, body_fun, init_val, name)


def _bounded_while_loop(cond_fun, body_fun, init_val, max_steps, name):
    if not isinstance(max_steps, int) or max_steps < 0:
        raise ArgumentValueError(
            f'bounded_while_loop: `max_steps` must be a non-negative int, got '
            f'{max_steps!r}.')

    def identity(val):
        return val

    def step(val, _):
        return cond(_read_only(cond_fun, 'bounded_while_loop')(val), body_fun, identity,
                    val), None

    step.__name__ = name
    val, _ = _scan_traced(step, init_val, None, max_steps, False, 1, name)
    return val


class _ReadOnlyFrame:
    """The trace frame a loop condition runs in: reads go to the enclosing frame; a write is a
    StateValueError naming the state (a condition must only read states, as in
    :func:`while_loop`, whose region checks this when it hoists its states)."""

    def __init__(self, frame, where: str):
        self._frame, self._where = frame, where

    def __getattr__(self, name):
        return getattr(self._frame, name)

    def write(self, state, value, reshape: bool = False):
        raise StateValueError(
            f'State {state.label()} is written inside the condition function of a '
            f'{self._where}. The condition must only read states: move the update into the '
            f'loop body.')


def _read_only(fun, where: str):
    """``fun`` run so that a state write inside it raises (see :class:`_ReadOnlyFrame`)."""

    def run(*args):
        stack = _state.TRACE_STACK.stack
        if not stack:  # run eagerly (``jax.disable_jit``): nothing is traced to check
            return fun(*args)
        _state.TRACE_STACK.append(_ReadOnlyFrame(stack[-1], where))
        try:
            return fun(*args)
        finally:
            _state.TRACE_STACK.pop()
    return run


def bounded_while_loop(cond_fun: Callable[[Carry], Any], body_fun: Callable[[Carry], Carry],
                       init_val: Carry, max_steps: int, base: int = 16) -> Carry:
    """:func:`while_loop` that stops after at most ``max_steps`` iterations and can be
    differentiated in reverse mode.

    It runs as a loop of ``max_steps`` iterations, each applying ``body_fun`` only while
    ``cond_fun`` holds (a state-aware :func:`cond` inside a :func:`scan`): the result equals
    :func:`while_loop`'s whenever the loop ends within ``max_steps``, and the compiled loop is a
    ``lax.scan``, which ``grad`` can differentiate. States written in ``body_fun`` are only
    updated on the iterations where ``cond_fun`` held.

    Args:
      cond_fun, body_fun, init_val: as for :func:`while_loop`.
      max_steps: a Python int bounding the number of iterations.
      base: accepted for compatibility (an int >= 2): the published library nests loops of
        ``base`` steps to bound compile time; our loop compiles ``body_fun`` once whatever
        ``max_steps`` is, so it does not change the program.
    """
    if not callable(cond_fun) or not callable(body_fun):
        raise ArgumentTypeError('bounded_while_loop: `cond_fun` and `body_fun` must be callable.')
    if isinstance(base, bool) or not isinstance(base, (int, np.integer)) or base < 2:
        raise ArgumentValueError(f'bounded_while_loop: base must be an integer >= 2, got '
                                 f'{base!r}.')
    name = fun_name(body_fun)
    if not _state.TRACE_STACK:
        return call_eagerly(
            ('bounded_while_loop', cond_fun, body_fun, max_steps),
            lambda init: _bounded_while_loop(cond_fun, body_fun, init, max_steps, name),
            f'bounded_while_loop({name})', init_val)
    return _bounded_while_loop(cond_fun, body_fun, init_val, max_steps, name)
