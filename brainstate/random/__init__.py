"""Random numbers as state: NumPy-style samplers whose key lives in a State.

``RandomState`` holds a typed JAX PRNG key; each draw splits it, stores one half back and samples
from the other, so brainstate transforms thread the key like any written state: consecutive calls
of a ``brainstate.transform.jit`` function draw different numbers, and ``seed(n)`` reproduces a
run exactly. The module-level functions draw from the global state ``DEFAULT``.

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

from ._rand_state import RandomState
from ._default import (DEFAULT, default_rng, get_key, seed, seed_context, set_key, split_key,
                       split_keys)
from ._functions import (bernoulli, beta, binomial, categorical, choice, exponential, gamma,
                         lognormal, normal, permutation, poisson, rand, randint, randn, random,
                         random_sample, shuffle, standard_exponential, standard_gamma,
                         standard_normal, truncated_normal, uniform)

__all__ = [
    'RandomState', 'DEFAULT', 'seed', 'get_key', 'set_key', 'split_key', 'split_keys',
    'seed_context', 'default_rng',
    'rand', 'randn', 'random', 'random_sample', 'uniform', 'randint', 'choice', 'permutation',
    'shuffle', 'bernoulli', 'categorical', 'standard_normal', 'normal', 'lognormal',
    'truncated_normal', 'exponential', 'standard_exponential', 'gamma', 'standard_gamma', 'beta',
    'poisson', 'binomial',
]
