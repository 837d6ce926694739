"""JAX internals the published API reaches through one module (so they can be mocked)."""

from __future__ import annotations

__all__ = ['get_backend']


def get_backend(platform=None):
    """The XLA backend (client) of ``platform`` (the default one if None)."""
    from jax.extend.backend import get_backend as _get_backend
    return _get_backend(platform)
