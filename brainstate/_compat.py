"""The few places where brainstate needs JAX internals, each with a public fallback.

Pinned JAX range: see pyproject.toml. When JAX moves one of these, only this file changes.
"""

from __future__ import annotations

import contextlib

import jax.extend.core as jex_core

__all__ = ['outside_any_jax_trace', 'inside_brainstate_trace', 'extend_axis_env',
           'debug_checks_enabled']

try:  # 0.4us: is the current JAX trace the eager one?
    from jax._src.core import trace_ctx as _trace_ctx

    def outside_any_jax_trace() -> bool:
        """True when no JAX transformation (jit, vmap, grad, ...) is tracing right now."""
        return _trace_ctx.is_top_level()

    outside_any_jax_trace()
except Exception:  # pragma: no cover - older/newer JAX without trace_ctx
    def outside_any_jax_trace() -> bool:
        """True when no JAX jit is tracing right now (public, slower, jit-only check)."""
        return not jex_core.unsafe_am_i_under_a_jit_DO_NOT_USE()


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


# The primitive that calls a closed jaxpr (``jax.extend.core.primitives.closed_call_p``) is named
# 'closed_call' up to JAX 0.11 and 'eval_jaxpr' from 0.12; its jaxpr is the ``call_jaxpr`` param
# in both. Code that recognises it by name uses this.
CLOSED_CALL_NAME = jex_core.primitives.closed_call_p.name
__all__ += ['CLOSED_CALL_NAME']
