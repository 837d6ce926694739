"""debug_nan, debug_nan_if, breakpoint_if: find where a NaN or Inf comes from.

:func:`debug_nan` traces the function through the one pipeline, evaluates the lowered program
(results and written state values) and, when one of them holds a NaN or Inf, evaluates it again
under JAX's ``checkify`` float checks, which name the first primitive that produced a NaN (or
divided by zero) and its source line. The report is a RuntimeError; inside compiled code it is
raised by a host callback when the program runs. Nothing is stored into any State.
"""

from __future__ import annotations

import traceback as _tb
from typing import Any, Callable, List, Tuple

import jax
import jax.numpy as jnp
from jax._src import source_info_util
from jax._src import traceback_util as _traceback_util
from jax.experimental import checkify as _checkify

from .. import _state
from ._arguments import ArgumentSpec
from ._program import trace_program
from ._unvmap import unvmap

__all__ = ['debug_nan', 'debug_nan_if', 'breakpoint_if', 'DebugNan']

_FLOAT_CHECKS = frozenset(_checkify.nan_checks | _checkify.div_checks)


def _is_inexact_array(x) -> bool:
    return hasattr(x, 'dtype') and jnp.issubdtype(x.dtype, jnp.inexact)


def _has_nan_flag(vals) -> jax.Array:
    """A boolean scalar: whether any float or complex value holds a NaN or Inf (integer and
    boolean arrays are ignored)."""
    flags = [jnp.any(jnp.isnan(v) | jnp.isinf(v)) for v in vals if _is_inexact_array(v)]
    if not flags:
        return jnp.array(False)
    return jnp.any(jnp.stack(flags))


def _user_frames(py_tb) -> list:
    if py_tb is None:
        return []
    return [line for line in _tb.format_tb(py_tb)
            if '/site-packages/' not in line and '\\site-packages\\' not in line]


def _extract_user_source(obj) -> str:
    """The innermost user frame (``File "...", line N, in f``) of a source_info or a JAX
    Traceback; ``'<unknown source>'`` when there is none."""
    if obj is None:
        return '<unknown source>'
    tb = getattr(obj, 'traceback', None)
    if tb is None and hasattr(obj, 'as_python_traceback'):
        tb = obj
    if tb is None:
        return '<unknown source>'
    try:
        py_tb = tb.as_python_traceback()
    except Exception:
        py_tb = None
    if py_tb is not None:
        try:
            filtered = _traceback_util.filter_traceback(py_tb)
        except Exception:
            filtered = None
        for candidate in (filtered, py_tb):
            lines = _user_frames(candidate)
            if lines:
                return lines[-1].strip()
    try:
        return source_info_util.summarize(obj)
    except Exception:
        return '<unknown source>'


def _error_info(err) -> Tuple[Any, Any, Any]:
    """``(primitive name, traceback, checkify's message)`` of a checkify Error (Nones when it
    holds no error or cannot be read)."""
    try:
        exc = err.get_exception()
    except Exception:
        exc = None
    if exc is None:
        return None, None, None
    try:
        detail = err.get()
    except Exception:
        detail = None
    return getattr(exc, 'prim', None), getattr(exc, 'traceback_info', None), detail


def _diagnose(out_leaves) -> List[str]:
    """One line per output leaf holding NaN or Inf: shape, dtype, counts (and range)."""
    lines = []
    for i, v in enumerate(out_leaves):
        if not _is_inexact_array(v):
            continue
        try:
            n_nan, n_inf = int(jnp.sum(jnp.isnan(v))), int(jnp.sum(jnp.isinf(v)))
        except Exception:
            continue
        if not n_nan and not n_inf:
            continue
        line = (f'    output[{i}]: shape={tuple(jnp.shape(v))} dtype={v.dtype} '
                f'NaNs={n_nan} Infs={n_inf}')
        if jnp.issubdtype(v.dtype, jnp.floating):
            try:
                line += f' min={float(jnp.nanmin(v)):.4g} max={float(jnp.nanmax(v)):.4g}'
            except Exception:
                pass
        lines.append(line)
    return lines


def _build_message(err, out_leaves, phase: str) -> Tuple[str, Any]:
    """The report: where the NaN/Inf was made (primitive, source line), checkify's message and
    which outputs hold it. Returns ``(message, traceback)``."""
    prim, tb, detail = _error_info(err)
    lines = [f'NaN/Inf detected{f" [{phase}]" if phase else ""} in the output of the checked '
             f'function!']
    if prim is not None:
        lines.append(f'  Introduced by primitive : `{prim}`')
    lines.append('  Source location         :')
    lines.append(f'    {_extract_user_source(tb)}')
    if detail:
        lines.append(f'  Checkify report         : {detail}')
    diagnosis = _diagnose(out_leaves)
    if diagnosis:
        lines.append('  Contaminated outputs    :')
        lines.extend(diagnosis)
    if prim is None and not diagnosis:
        lines.append('  (NaN/Inf reached the output but could not be localized.)')
    return '\n'.join(lines), tb


def _raise_report(err, out_leaves, phase: str) -> None:
    """Raise the report as a RuntimeError, its traceback pointing at the user's line when
    JAX can tell it."""
    message, tb = _build_message(err, out_leaves, phase)
    context = None
    if tb is not None:
        try:
            context = source_info_util.user_context(tb)
        except Exception:
            context = None
    if context is not None:
        with context:
            raise RuntimeError(message)
    raise RuntimeError(message)


class DebugNan:
    """``fn(*args)`` checked for NaN/Inf in its results and written states.

    ``check()`` raises a RuntimeError naming the primitive and source line that made the first
    NaN; ``check_if(flag)`` only when ``flag`` holds. Works eagerly, under ``jit`` and ``vmap``
    (there the report comes from a host callback). States are read, never written.
    """

    def __init__(self, fn: Callable, *args, phase: str = ''):
        self.fn = fn
        self.args = args
        self.phase = phase
        spec = ArgumentSpec(fn)
        self._sig = spec.signature(args, {}, allow_tracers=True)
        self._program = trace_program(fn, spec, self._sig)

    def _pure(self, state_leaves, arg_leaves):
        closed = self._program.lowered.closed_jaxpr
        return jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *state_leaves, *arg_leaves)

    def _state_vals(self) -> list:
        return [leaf for s in self._program.lowered.read_states
                for leaf in jax.tree.leaves(s.value)]

    def _inputs(self):
        return self._state_vals(), list(self._sig.leaves)

    def check(self):
        """Raise a RuntimeError when a result or written state holds NaN or Inf."""
        self._check(None)

    def check_if(self, has_nan):
        """:meth:`check`, only when ``has_nan`` is true (also traced or batched)."""
        self._check(has_nan)

    def _check(self, trigger):
        states, leaves = self._inputs()
        concrete = all(not isinstance(x, jax.core.Tracer)
                       for x in jax.tree.leaves((states, leaves, trigger)))
        if concrete:
            if trigger is not None and not bool(jnp.any(jnp.asarray(trigger))):
                return
            outs = self._pure(states, leaves)
            if trigger is None and not bool(_has_nan_flag(outs)):
                return
            err, outs = _checkify.checkify(self._pure, errors=_FLOAT_CHECKS)(states, leaves)
            if trigger is not None or err.get() is not None or bool(_has_nan_flag(outs)):
                _raise_report(err, outs, self.phase)
            return
        err, outs = _checkify.checkify(self._pure, errors=_FLOAT_CHECKS)(states, leaves)
        flag = _has_nan_flag(outs) if trigger is None else jnp.any(jnp.asarray(trigger))
        flag = unvmap(flag, op='any')
        phase = self.phase

        def report(err, outs):
            _raise_report(err, outs, phase)

        def when_bad(err, outs):
            jax.debug.callback(report, err, outs)

        def when_fine(err, outs):
            pass

        err, outs = jax.tree.map(lambda x: unvmap(x, op='none') if isinstance(
            x, jax.core.Tracer) else x, (err, outs))
        jax.lax.cond(flag, when_bad, when_fine, err, outs)


def debug_nan(fn: Callable, *args, phase: str = '') -> None:
    """Raise a RuntimeError when ``fn(*args)`` produces NaN or Inf, naming the primitive and the
    source line that made it (``phase`` is added to the message). See :class:`DebugNan`.

    Example::

        brainstate.transform.debug_nan(model, x, phase='forward')
    """
    DebugNan(fn, *args, phase=phase).check()


def debug_nan_if(has_nan, fn: Callable, *args, phase: str = '') -> None:
    """:func:`debug_nan`, run only when ``has_nan`` is true (a traced or batched flag
    allowed: under ``vmap`` any lane triggers it)."""
    if not isinstance(has_nan, jax.core.Tracer) and not bool(jnp.any(jnp.asarray(has_nan))):
        return
    DebugNan(fn, *args, phase=phase).check_if(has_nan)


def breakpoint_if(pred, **breakpoint_kwargs):
    """Enter ``jax.debug.breakpoint`` when ``pred`` holds (also in compiled code)."""
    flag = unvmap(jnp.asarray(pred), op='any')

    def stop():
        jax.debug.breakpoint(**breakpoint_kwargs)

    if isinstance(flag, jax.core.Tracer):
        return jax.lax.cond(flag, stop, lambda: None)
    if bool(flag):
        stop()
