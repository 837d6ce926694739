"""The global random state ``DEFAULT`` and the functions that seed, inspect and split it.

``brainstate.random.normal(...)`` and the other module-level samplers draw from ``DEFAULT``, a
:class:`RandomState` with a fresh random seed (its key is made on first use, so importing
brainstate starts no JAX backend) (like NumPy's global generator).
Call ``brainstate.random.seed(n)`` to make a run reproducible: it seeds NumPy's global generator
too, as the published BrainState library does.
"""

from __future__ import annotations

import contextlib
import operator
from typing import Any, Iterator, Optional

import jax
import numpy as np

from .._errors import ArgumentValueError
from ._checks import as_key, random_seed
from ._state import RandomState

__all__ = ['DEFAULT', 'seed', 'get_key', 'get_key_data', 'set_key', 'split_key', 'split_keys',
           'self_assign_multi_keys', 'restore_key', 'clone_rng', 'default_rng', 'seed_context']

# Its key is made on first use: importing brainstate starts no JAX backend.
DEFAULT = RandomState._lazy(name='brainstate.random.DEFAULT')


def seed(seed_or_key: Any = None):
    """Reseed the global random state (and NumPy's); ``seed(n)`` makes later draws reproducible.

    Args:
      seed_or_key: an integer seed (folded to 32 bits), a key from ``jax.random.key``, or
        ``uint32[2]`` legacy key data. ``None`` picks a fresh random seed from the operating
        system, like NumPy.

    NumPy's global generator is seeded with the same integer (for a key, with its first word),
    so code mixing ``np.random`` and ``brainstate.random`` is reproducible from one call;
    ``seed(None)`` leaves NumPy's generator untouched.

    Example::

        brainstate.random.seed(0); a = brainstate.random.normal(size=3)
        brainstate.random.seed(0); b = brainstate.random.normal(size=3)   # a == b
    """
    if seed_or_key is None:
        # A fresh key from the OS; NumPy's generator is neither seeded nor advanced.
        DEFAULT.set_key(random_seed())
        return
    if isinstance(seed_or_key, np.integer):
        seed_or_key = int(seed_or_key)
    key = as_key(seed_or_key, 'seed')  # check before touching any state
    numpy_seed = None
    if isinstance(seed_or_key, int):
        numpy_seed = seed_or_key % (1 << 32)
    elif not isinstance(key, jax.core.Tracer):
        numpy_seed = int(jax.random.key_data(key).ravel()[0])
    DEFAULT.set_key(key)
    if numpy_seed is not None:
        np.random.seed(numpy_seed)


def get_key():
    """The current key of the global random state (reading it does not advance it)."""
    return DEFAULT.value


def get_key_data():
    """The raw ``uint32`` data of the global key (``jax.random.key_data(get_key())``)."""
    return jax.random.key_data(DEFAULT.value)


def set_key(seed_or_key: Any):
    """Replace the key of the global random state (a key from :func:`get_key`, key data from
    :func:`get_key_data`, or an integer seed). NumPy's generator is left alone."""
    DEFAULT.set_key(seed_or_key)


def split_key(n: Optional[int] = None, backup: bool = False):
    """Advance the global random state once; return one new key, or ``n`` keys for ``n``.

    Use it to hand explicit keys to code that takes them (``jax.random`` calls, ``key=``
    arguments). With ``backup``, :func:`restore_key` rewinds to the key before the split.
    See :meth:`RandomState.split_key`.
    """
    return DEFAULT.split_key(n, backup=backup)


def split_keys(n: int, backup: bool = False):
    """``n`` new keys (shape ``(n,)``) from the global random state."""
    return DEFAULT.split_key(_count(n, 'split_keys'), backup=backup)


def self_assign_multi_keys(n: int, backup: bool = True):
    """Replace the global key by ``n`` keys split from it; see
    :meth:`RandomState.self_assign_multi_keys`."""
    DEFAULT.self_assign_multi_keys(_count(n, 'self_assign_multi_keys'), backup=backup)


def restore_key():
    """Rewind the global key to the one saved by ``split_key(backup=True)`` or
    ``self_assign_multi_keys(backup=True)``."""
    DEFAULT.restore_key()


def clone_rng(seed_or_key: Any = None, clone: bool = True) -> RandomState:
    """A RandomState to use on its own.

    ``clone_rng()`` is a new state seeded from a key split off the global one (independent of
    it from now on); ``clone_rng(clone=False)`` the global state itself; ``clone_rng(seed)`` a
    new state from ``seed``.
    """
    if seed_or_key is None:
        return DEFAULT.clone() if clone else DEFAULT
    return RandomState(seed_or_key)


def default_rng(seed_or_key: Any = None) -> RandomState:
    """The global random state for ``None``, else a new :class:`RandomState` from the seed."""
    if seed_or_key is None:
        return DEFAULT
    return RandomState(seed_or_key)


@contextlib.contextmanager
def seed_context(seed_or_key: Any) -> Iterator[None]:
    """Within the block, draw from a fixed seed (or key); afterwards restore the previous key
    and NumPy's global generator.

    The draws outside the block continue as if the block had never run, so the block can be
    added or removed without changing the rest of a random run. ``None`` seeds the block with a
    fresh random seed.

    Example::

        with brainstate.random.seed_context(42):
            w = brainstate.random.normal(size=(3, 3))   # the same on every run
    """
    previous_key = DEFAULT.value
    previous_numpy = np.random.get_state()
    try:
        seed(seed_or_key)
        yield
    finally:
        DEFAULT.value = previous_key
        np.random.set_state(previous_numpy)


def _count(n, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ArgumentValueError(f'{where}: n must be a positive integer (how many keys), got '
                                 f'{n!r}.')
    return operator.index(n)
