"""JAX internals the published API reaches through one module (so they can be mocked)."""

from __future__ import annotations

__all__ = ['get_backend']


def get_backend(platform=None):
    """The XLA backend (client) of ``platform`` (the default one if None)."""
    from jax.extend.backend import get_backend as _get_backend
    return _get_backend(platform)


try:  # the public home of JAX's Primitive
    from jax.extend.core import Primitive
except ImportError:  # pragma: no cover - older JAX
    from jax.core import Primitive


def safe_zip(*args):
    """``zip`` that insists on equal lengths."""
    args = [list(a) for a in args]
    n = len(args[0]) if args else 0
    for a in args[1:]:
        if len(a) != n:
            raise ValueError(f'length mismatch: {[len(x) for x in args]}')
    return list(zip(*args))


def unzip2(pairs):
    """``[(a, b), ...]`` -> ``((a, ...), (b, ...))``."""
    firsts, seconds = [], []
    for a, b in pairs:
        firsts.append(a)
        seconds.append(b)
    return tuple(firsts), tuple(seconds)


__all__ += ['Primitive', 'safe_zip', 'unzip2']


def is_jit_primitive(eqn) -> bool:
    """Whether a jaxpr equation is a call of a ``jax.jit`` function (``jit``; ``pjit`` in
    older JAX)."""
    return eqn.primitive.name in ('jit', 'pjit', 'xla_call')


def scan_num_consts_carry(eqn_params) -> tuple:
    """``(num_consts, num_carry)`` of a ``scan`` equation's params (``jax.lax.map`` is a scan
    too): the ``num_consts`` / ``num_carry`` params where JAX has them, else the group sizes of
    its ``ft_in`` flat tree (consts, carry, xs)."""
    if 'num_consts' in eqn_params:
        return eqn_params['num_consts'], eqn_params['num_carry']
    consts, carry, _xs = eqn_params['ft_in'].unpack()
    return len(consts), len(carry)


__all__ += ['is_jit_primitive', 'scan_num_consts_carry']
