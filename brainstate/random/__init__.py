"""Random numbers as state: NumPy-style samplers whose key lives in a State.

``RandomState`` holds a typed JAX PRNG key; each draw splits it, stores one half back and samples
from the other, so brainstate transforms thread the key like any written state: consecutive calls
of a ``brainstate.transform.jit`` function draw different numbers, and ``seed(n)`` reproduces a
run exactly. The module-level functions draw from the global state ``DEFAULT``; drawing is
thread-safe (the key's read-split-write is guarded by one lock).

Example::

    import brainstate

    brainstate.random.seed(0)
    w = brainstate.random.normal(0.0, 0.1, size=(3, 4))

    @brainstate.transform.jit
    def dropout(x, rate=0.5):
        keep = brainstate.random.bernoulli(1 - rate, size=x.shape)
        return x * keep / (1 - rate)        # a new mask on every call

    rng = brainstate.random.RandomState(1)  # an independent stream
    idx = rng.permutation(10)
"""

from ._state import RandomState
from ._default import (DEFAULT, clone_rng, default_rng, get_key, get_key_data, restore_key, seed,
                       seed_context, self_assign_multi_keys, set_key, split_key, split_keys)
from ._functions import SAMPLERS as _SAMPLERS
from ._functions import *  # noqa: F401,F403  (the samplers listed in _functions.SAMPLERS)

__all__ = [
    'RandomState', 'DEFAULT', 'seed', 'set_key', 'get_key', 'get_key_data', 'default_rng',
    'split_key', 'split_keys', 'seed_context', 'restore_key', 'self_assign_multi_keys',
    'clone_rng',
] + list(_SAMPLERS)
