"""The global random state ``DEFAULT`` and the functions that seed and inspect it.

``brainstate.random.normal(...)`` and the other module-level samplers draw from ``DEFAULT``, a
:class:`RandomState` created at import with a fresh random seed (like NumPy's global generator).
Call ``brainstate.random.seed(n)`` to make a run reproducible.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional

from ._checks import as_key
from ._rand_state import RandomState

__all__ = ['DEFAULT', 'seed', 'get_key', 'set_key', 'split_key', 'split_keys', 'seed_context',
           'default_rng']

DEFAULT = RandomState(name='brainstate.random.DEFAULT')


def seed(seed_or_key: Any = None):
    """Reseed the global random state; ``seed(n)`` makes every later draw reproducible.

    Args:
      seed_or_key: an integer seed, a key from ``jax.random.key``, or ``uint32[2]`` legacy key
        data. ``None`` picks a fresh random seed from the operating system, like NumPy.

    Example::

        brainstate.random.seed(0); a = brainstate.random.normal(size=3)
        brainstate.random.seed(0); b = brainstate.random.normal(size=3)   # a == b

    Only brainstate's random state is seeded; NumPy's global generator is left alone.
    """
    DEFAULT.seed(seed_or_key)


def get_key():
    """The current key of the global random state (reading it does not advance it)."""
    return DEFAULT.value


def set_key(key: Any):
    """Replace the key of the global random state (a key from :func:`get_key`, say)."""
    DEFAULT.set_key(key)


def split_key(n: Optional[int] = None):
    """Advance the global random state once; return one new key, or ``n`` keys for ``n``.

    Use it to hand explicit keys to code that takes them (``jax.random`` calls, ``key=``
    arguments); see :meth:`RandomState.split_key`.
    """
    return DEFAULT.split_key(n)


def split_keys(n: int):
    """``n`` new keys from the global random state (``split_key(n)``)."""
    return DEFAULT.split_key(n)


@contextlib.contextmanager
def seed_context(seed_or_key: Any):
    """Within the block, draw from a fixed seed; afterwards restore the previous key.

    The draws outside the block continue as if the block had never run, so the block can be
    added or removed without changing the rest of a random run.

    Example::

        with brainstate.random.seed_context(42):
            w = brainstate.random.normal(size=(3, 3))   # the same on every run
    """
    new_key = as_key(seed_or_key, 'seed_context')  # check before touching the state
    previous = DEFAULT.value
    DEFAULT.value = new_key
    try:
        yield
    finally:
        DEFAULT.value = previous


def default_rng(seed_or_key: Any = None) -> RandomState:
    """The global random state for ``None``, else a new :class:`RandomState` from the seed."""
    if seed_or_key is None:
        return DEFAULT
    return RandomState(seed_or_key)
