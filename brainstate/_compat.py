"""The few places where brainstate needs JAX internals, each with a public fallback.

Pinned JAX range: see pyproject.toml. When JAX moves one of these, only this file changes.
"""

from __future__ import annotations

import jax.extend.core as jex_core

__all__ = ['outside_any_jax_trace']

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
