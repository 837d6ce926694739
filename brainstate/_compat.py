"""The few places where brainstate needs JAX internals, each with a public fallback.

Pinned JAX range: see pyproject.toml. When JAX moves one of these, only this file changes.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import types

import jax
import jax.extend.core as jex_core

__all__ = ['outside_any_jax_trace', 'current_jax_trace', 'inside_of', 'inside_brainstate_trace',
           'extend_axis_env',
           'debug_checks_enabled', 'include_frame', 'hide_brainstate_frames',
           'set_debug_info', 'DEBUG_CHECKS_SEEN']

try:  # 0.4us: is the current JAX trace the eager one?
    from jax._src.core import trace_ctx as _trace_ctx

    def outside_any_jax_trace() -> bool:
        """True when no JAX transformation (jit, vmap, grad, ...) is tracing right now."""
        return _trace_ctx.is_top_level()

    outside_any_jax_trace()
    def current_jax_trace():
        """The JAX trace values are being recorded into right now (an identity to compare
        with ``is``; ``None`` when unknown)."""
        return _trace_ctx.trace

    current_jax_trace()
except Exception:  # pragma: no cover - older/newer JAX without trace_ctx
    def current_jax_trace():
        """The JAX trace values are being recorded into right now (unknown on this JAX)."""
        return None

    def outside_any_jax_trace() -> bool:
        """True when no JAX jit is tracing right now (public, slower, jit-only check)."""
        return not jex_core.unsafe_am_i_under_a_jit_DO_NOT_USE()


# Binding a primitive in an enclosing JAX trace while a nested one (jax.grad's) is current: a
# state read made for an enclosing brainstate trace stands in that trace (its own tracers,
# which the nested transform sees as constants), as if read just before the nested one began.
try:
    from jax._src.core import set_current_trace as _set_current_trace

    def inside_of(trace):
        """A context manager making ``trace`` (from :func:`current_jax_trace`) the current JAX
        trace; none when ``trace`` is None (unknown on this JAX)."""
        if trace is None:
            return contextlib.nullcontext()
        return _set_current_trace(trace)

    with inside_of(current_jax_trace()):
        pass
except Exception:  # pragma: no cover - a JAX without it: the read is bound in the current
    # trace, whose rules for a primitive without traced operands pass it to the enclosing one
    def inside_of(trace):
        return contextlib.nullcontext()

# JAX caches the trace of a raw `jax.jit` helper by its arguments. A helper that reads a State,
# traced once outside brainstate (the state's value baked in as a constant), would be reused
# inside a brainstate trace, where its reads must be recorded: a silently stale value. A flag in
# JAX's trace context makes the two situations separate cache entries.
try:
    from jax._src import config as _config

    _tracing_flag = _config.bool_state(
        'brainstate_tracing', False,
        'Set while brainstate traces a function into its state IR (part of the trace context, '
        'so raw jax.jit helpers are traced afresh inside brainstate).',
        include_in_trace_context=True)

    def inside_brainstate_trace():
        """A context manager marking JAX traces made while brainstate traces."""
        return _tracing_flag(True)
except Exception:  # pragma: no cover - a JAX without config states: helpers may be stale
    def inside_brainstate_trace():
        return contextlib.nullcontext()


# vmap binds its axis name while tracing, so collectives (psum, axis_index) inside the mapped
# function can be traced. None on a JAX without it: collectives then need axis_name unset.
try:
    from jax._src.core import extend_axis_env_nd as extend_axis_env
except ImportError:  # pragma: no cover
    extend_axis_env = None


# Whether JAX re-runs failing programs to locate a NaN/Inf (that needs the inputs alive, so no
# state buffer may be donated). 0.1us through the config holders; the public flag otherwise.
try:
    from jax._src.config import debug_infs as _debug_infs, debug_nans as _debug_nans

    def debug_checks_enabled() -> bool:
        return _debug_nans.value or _debug_infs.value

    debug_checks_enabled()
except Exception:  # pragma: no cover
    import jax as _jax

    def debug_checks_enabled() -> bool:
        return bool(_jax.config.jax_debug_nans or _jax.config.jax_debug_infs)

#: ``[False]`` while neither check has been turned on anywhere in this process (globally or in
#: any thread's ``with jax.debug_nans(True)``): then :func:`debug_checks_enabled` is False in
#: every thread, and a cached call skips asking it (0.1-0.2us). Set for good by the first
#: switch-on seen (JAX's hooks on the two settings), or from the start when the hooks cannot
#: be added: callers then ask :func:`debug_checks_enabled` each time.
DEBUG_CHECKS_SEEN = [True]


def _install_debug_check_hooks():
    def seen(value):
        if value:
            DEBUG_CHECKS_SEEN[0] = True
            # Cached calls that donate stop skipping the per-call question (see _state).
            from . import _state
            _state.recheck_cached_calls()

    for setting in (_debug_nans, _debug_infs):
        for slot in ('_update_global_hook', '_update_thread_local_hook'):
            previous = getattr(setting, slot)

            def hook(value, previous=previous):
                seen(value)
                if previous is not None:
                    previous(value)

            setattr(setting, slot, hook)
    DEBUG_CHECKS_SEEN[0] = debug_checks_enabled()


try:
    _install_debug_check_hooks()
except Exception:  # pragma: no cover - JAX's settings changed: always ask
    DEBUG_CHECKS_SEEN[0] = True


# Which frames are the user's: JAX's own list of excluded paths (its internals, and brainstate's
# package, registered in brainstate.ir), used to name where a user created something.
try:
    from jax._src.traceback_util import include_frame
except Exception:  # pragma: no cover
    def include_frame(frame) -> bool:
        return '/jax/' not in frame.f_code.co_filename.replace('\\', '/')


# Tracebacks as JAX shows its own: brainstate's frames are excluded like JAX's internals, so an
# error in user code (a Python `if` on a traced value, ...) points at the user's lines. JAX's
# entry points filter their part of the traceback; ours (a transform's call) filter the rest.
try:
    from jax._src import traceback_util as _traceback_util

    _traceback_util.register_exclusion(
        os.path.dirname(os.path.abspath(__file__)) + os.sep)

    def hide_brainstate_frames(error: BaseException):
        """Drop brainstate's and JAX's frames from ``error``'s traceback (as JAX's
        ``api_boundary`` does, honouring ``JAX_TRACEBACK_FILTERING``); re-raise it after."""
        mode = _traceback_util._filtering_mode()
        if mode == 'off' or error.__traceback__ is None or \
                _traceback_util._is_under_reraiser(error):
            return
        if mode == 'tracebackhide':
            _traceback_util._add_tracebackhide_to_hidden_frames(error.__traceback__)
            return
        error.with_traceback(_traceback_util.filter_traceback(error.__traceback__))
        note = '--------------------\n' + _traceback_util._simplified_tb_msg
        if note not in getattr(error, '__notes__', ()):
            error.add_note(note)
except Exception:  # pragma: no cover - a JAX without traceback_util: full tracebacks
    def hide_brainstate_frames(error: BaseException):
        return


# JAX's messages about traced values (TracerBoolConversionError, ...) name the function being
# traced and the argument a value came from. brainstate traces a flattened wrapper, so it tells
# JAX the user's function and argument names instead.
try:
    from jax._src import api_util as _api_util, core as _jax_core

    _api_util.debug_info  # noqa: B018 - checks the attribute exists

    def set_debug_info(wrapper, fun, arg_names, traced_for: str = 'a brainstate transform'):
        """Make JAX describe ``wrapper``'s trace as one of ``fun`` with ``arg_names``."""
        try:
            source = _api_util.fun_sourceinfo(fun)
            info = _jax_core.DebugInfo(traced_for, source, tuple(arg_names),
                                       _jax_core.initial_result_paths)
            _api_util.save_wrapped_fun_debug_info(wrapper, info)
        except Exception:  # pragma: no cover - JAX changed: its generic description stays
            pass
except Exception:  # pragma: no cover
    def set_debug_info(wrapper, fun, arg_names, traced_for: str = 'a brainstate transform'):
        return


# The primitive that calls a closed jaxpr (``jax.extend.core.primitives.closed_call_p``) is named
# 'closed_call' up to JAX 0.11 and 'eval_jaxpr' from 0.12; its jaxpr is the ``call_jaxpr`` param
# in both. Code that recognises it by name uses this.
CLOSED_CALL_NAME = jex_core.primitives.closed_call_p.name
__all__ += ['CLOSED_CALL_NAME']


def in_name_scope(eqn, scope):
    """``eqn`` as it stands inside the call being inlined whose name stack is ``scope``: its
    own name stack (relative to that call) prefixed by ``scope``, as JAX's own inlining does,
    so a ``jax.named_scope`` around a ``jax.jit`` helper reaches the helper's operations.
    (``JaxprEqn.replace``, ``SourceInfo.replace`` and ``NameStack + NameStack``; if a JAX
    release lacks one, the equation keeps its own stack: only pictures lose the scope.)"""
    try:
        return eqn.replace(source_info=eqn.source_info.replace(
            name_stack=scope + eqn.source_info.name_stack))
    except Exception:  # pragma: no cover - JAX changed: only the scope is lost
        return eqn
__all__ += ['in_name_scope']


# ``jax.jit(inline=...)`` and the ``inline`` parameter of JAX's jit primitive: a bool up to JAX
# 0.11; from 0.12 a ``jax.Inline`` enum, where ``True`` means "inline while lowering to MLIR"
# (the jit equation stays in the jaxpr) and inlining into the enclosing jaxpr is ``JAX_EARLY``.
# ``JIT_INLINE_AT_LOWERING``: the jit equation stays in the jaxpr and its body is emitted inline
# in the caller's MLIR (``JAX_LATE``); JAX 0.10 / 0.11 have no such mode and emit a call.
if hasattr(jax, 'Inline'):
    JIT_INLINE_AT_TRACE = jax.Inline.JAX_EARLY
    JIT_NO_INLINE = jax.Inline.AUTO
    JIT_INLINE_AT_LOWERING = getattr(jax.Inline, 'JAX_LATE', JIT_NO_INLINE)
else:  # pragma: no cover - JAX 0.10 / 0.11
    JIT_INLINE_AT_TRACE = True
    JIT_NO_INLINE = False
    JIT_INLINE_AT_LOWERING = False
__all__ += ['JIT_INLINE_AT_TRACE', 'JIT_NO_INLINE', 'JIT_INLINE_AT_LOWERING']


# Tracing a flat function into a ClosedJaxpr. ``jax.make_jaxpr`` goes through ``jax.jit(f).trace``
# (argument parsing, pytree flattening, a trace cache keyed by the fresh function, sharding and
# donation bookkeeping) before JAX's tracer runs: 0.1-0.3 ms per trace, the largest fixed cost
# of tracing a small step (a for_loop traces twice: the function and its body). Our callers
# trace fresh flat functions of flat avals, so they call the tracer itself. At import, a small
# function is traced both ways and the two jaxprs compared; if the private API is missing or
# gives another jaxpr (a JAX release changed it), ``jax.make_jaxpr`` is used.
def _trace_with_make_jaxpr(fun, avals):
    """``jax.make_jaxpr(fun)(*avals)`` (the public path)."""
    return jax.make_jaxpr(fun)(*[
        a if isinstance(a, jax.ShapeDtypeStruct) else
        jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=getattr(a, 'weak_type', False))
        for a in avals])


def _check_direct_trace(direct) -> bool:
    """Whether ``direct`` traces as ``jax.make_jaxpr`` does: the same printed jaxpr, the same
    constants (a closed-over array stays a constant; a closed-over tracer of an enclosing trace
    becomes one), weak types and Python-scalar outputs included."""
    import numpy as np
    table = np.arange(3., dtype=np.float32)

    def small(x, y, n):
        z = jax.numpy.sin(x) * y + table
        return [z, jax.numpy.sum(z) * n, 2.0]

    def enclosing(x):
        def body(y):  # closes over a tracer of the enclosing trace
            return [y * x, jax.lax.cond(y[0] > 0, lambda v: v + 1., lambda v: v - x, y)]
        direct_one, public_one = direct(body, avals), _trace_with_make_jaxpr(body, avals)
        checks.append(str(direct_one) == str(public_one) and
                      len(direct_one.consts) == len(public_one.consts) and
                      all(a is b for a, b in zip(direct_one.consts, public_one.consts)))
        return [x + 1.]

    avals = [jax.core.ShapedArray((3,), np.float32), jax.core.ShapedArray((), np.float32),
             jax.core.ShapedArray((), np.int32, weak_type=True)]
    checks = []
    got, want = direct(small, avals), _trace_with_make_jaxpr(small, avals)
    checks.append(str(got) == str(want) and len(got.consts) == len(want.consts))
    avals = avals[:1]
    _trace_with_make_jaxpr(enclosing, avals)
    return all(checks) and len(checks) == 2


def _make_direct_trace():
    from jax._src import api_util, core as jcore, linear_util as lu
    from jax._src.interpreters import partial_eval as pe
    from jax.extend.core import ClosedJaxpr as closed_jaxpr  # public since JAX 0.4.36

    varargs_flag = inspect.CO_VARARGS

    def describe(fun, avals):
        """The DebugInfo ``jax.jit`` gives a trace of ``fun``: the one set_debug_info saved,
        else JAX's own; for a plain ``def f(*leaves)`` (a region body's wrapper) built as JAX
        builds it, without the 30-90us of ``inspect.signature``."""
        saved = getattr(fun, '__fun_debug_info__', None)
        if saved is not None:
            return saved
        code = getattr(fun, '__code__', None)
        if type(fun) is types.FunctionType and code.co_argcount == 0 and \
                code.co_kwonlyargcount == 0 and code.co_flags & varargs_flag and \
                '__wrapped__' not in fun.__dict__ and '__signature__' not in fun.__dict__:
            name = code.co_varnames[0]
            return jcore.DebugInfo('jit', api_util.fun_sourceinfo(fun),
                                   tuple(f'{name}[{i}]' for i in range(len(avals))),
                                   jcore.initial_result_paths)
        return api_util.debug_info('jit', fun, avals, {})

    def trace_direct(fun, avals):
        """``jax.make_jaxpr(fun)(*avals)`` through JAX's tracer itself."""
        in_avals = [jcore.shaped_abstractify(a) for a in avals]  # as jax.jit does
        dbg = describe(fun, in_avals)
        jaxpr, _, consts = pe.trace_to_jaxpr_dynamic(lu.wrap_init(fun, debug_info=dbg),
                                                     in_avals)
        return closed_jaxpr(jaxpr, consts)

    def leaves_described_as_jax_does():
        def body(*leaves):
            return leaves
        avals = [jcore.ShapedArray((2,), 'float32')] * 3
        return describe(body, avals) == api_util.debug_info('jit', body, avals, {})

    trace_direct.describe_ok = leaves_described_as_jax_does
    return trace_direct


try:
    _trace_direct = _make_direct_trace()
    DIRECT_TRACE = _trace_direct.describe_ok() and _check_direct_trace(_trace_direct)
except Exception:  # pragma: no cover - JAX moved its tracer: the public path
    DIRECT_TRACE = False


def trace_to_closed_jaxpr(fun, avals):
    """Trace ``fun(*leaves) -> list of leaves`` at ``avals`` (ShapedArrays or
    ShapeDtypeStructs) into a ClosedJaxpr, exactly as ``jax.make_jaxpr(fun)(*avals)`` does.
    JAX's description of the trace (its errors' function and argument names) is the one
    :func:`set_debug_info` gave ``fun``, else JAX's own."""
    if DIRECT_TRACE:
        return _trace_direct(fun, avals)
    return _trace_with_make_jaxpr(fun, avals)


__all__ += ['trace_to_closed_jaxpr']
