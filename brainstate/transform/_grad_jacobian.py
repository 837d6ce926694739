"""The pure (state-free) Jacobian helpers under their published private names; the stateful
``jacrev``/``jacfwd`` live in :mod:`._autograd`."""

from __future__ import annotations

from typing import Callable

import jax

from ._autograd import jacfwd, jacobian, jacrev

__all__ = ['jacrev', 'jacfwd', 'jacobian', '_jacrev', '_jacfwd']


def _unit_autograd():
    import brainunit
    return brainunit.autograd


def _jacrev(fn: Callable, argnums=0, holomorphic: bool = False, allow_int: bool = False,
            has_aux: bool = False, unit_aware: bool = False):
    """``jax.jacrev`` (brainunit's with ``unit_aware``) of a pure function."""
    if unit_aware:
        return _unit_autograd().jacrev(fn, argnums=argnums, has_aux=has_aux,
                                       holomorphic=holomorphic, allow_int=allow_int)
    return jax.jacrev(fn, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic,
                      allow_int=allow_int)


def _jacfwd(fn: Callable, argnums=0, holomorphic: bool = False, has_aux: bool = False,
            unit_aware: bool = False):
    """``jax.jacfwd`` (brainunit's with ``unit_aware``) of a pure function."""
    if unit_aware:
        return _unit_autograd().jacfwd(fn, argnums=argnums, has_aux=has_aux,
                                       holomorphic=holomorphic)
    return jax.jacfwd(fn, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic)
