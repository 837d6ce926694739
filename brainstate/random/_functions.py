"""The NumPy-style module-level samplers: each draws from the global state ``DEFAULT``.

``brainstate.random.normal(size=3)`` is ``brainstate.random.DEFAULT.normal(size=3)``; the
arguments and their meaning are documented on :class:`RandomState`'s method of the same name
(each function here carries that docstring). Every one takes ``size=`` (the output shape) and
``key=`` (draw from this key and leave ``DEFAULT`` alone).
"""

from __future__ import annotations

from ._default import DEFAULT
from ._rand_state import RandomState

__all__ = [
    'rand', 'randn', 'random', 'random_sample', 'uniform', 'randint', 'choice', 'permutation',
    'shuffle', 'bernoulli', 'categorical', 'standard_normal', 'normal', 'lognormal',
    'truncated_normal', 'exponential', 'standard_exponential', 'gamma', 'standard_gamma', 'beta',
    'poisson', 'binomial',
]


def _documented_as(method):
    """Give a module-level function the docstring of the RandomState method it calls."""
    def decorate(fun):
        fun.__doc__ = (f'Draw from the global random state; see ``RandomState.{method.__name__}``.'
                       f'\n\n    {method.__doc__}')
        return fun
    return decorate


@_documented_as(RandomState.rand)
def rand(*dn, size=None, key=None, dtype=None):
    return DEFAULT.rand(*dn, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.randn)
def randn(*dn, size=None, key=None, dtype=None):
    return DEFAULT.randn(*dn, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.random)
def random(size=None, key=None, dtype=None):
    return DEFAULT.random(size=size, key=key, dtype=dtype)


@_documented_as(RandomState.random_sample)
def random_sample(size=None, key=None, dtype=None):
    return DEFAULT.random_sample(size=size, key=key, dtype=dtype)


@_documented_as(RandomState.uniform)
def uniform(low=0.0, high=1.0, size=None, key=None, dtype=None):
    return DEFAULT.uniform(low, high, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.randint)
def randint(low, high=None, size=None, dtype=int, key=None):
    return DEFAULT.randint(low, high, size=size, dtype=dtype, key=key)


@_documented_as(RandomState.choice)
def choice(a, size=None, replace=True, p=None, key=None):
    return DEFAULT.choice(a, size=size, replace=replace, p=p, key=key)


@_documented_as(RandomState.permutation)
def permutation(x, axis=0, independent=False, key=None):
    return DEFAULT.permutation(x, axis=axis, independent=independent, key=key)


@_documented_as(RandomState.shuffle)
def shuffle(x, axis=0, key=None):
    return DEFAULT.shuffle(x, axis=axis, key=key)


@_documented_as(RandomState.bernoulli)
def bernoulli(p=0.5, size=None, key=None):
    return DEFAULT.bernoulli(p, size=size, key=key)


@_documented_as(RandomState.categorical)
def categorical(logits, axis=-1, size=None, key=None):
    return DEFAULT.categorical(logits, axis=axis, size=size, key=key)


@_documented_as(RandomState.standard_normal)
def standard_normal(size=None, key=None, dtype=None):
    return DEFAULT.standard_normal(size=size, key=key, dtype=dtype)


@_documented_as(RandomState.normal)
def normal(loc=0.0, scale=1.0, size=None, key=None, dtype=None):
    return DEFAULT.normal(loc, scale, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.lognormal)
def lognormal(mean=0.0, sigma=1.0, size=None, key=None, dtype=None):
    return DEFAULT.lognormal(mean, sigma, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.truncated_normal)
def truncated_normal(lower, upper, size=None, loc=0.0, scale=1.0, key=None, dtype=None):
    return DEFAULT.truncated_normal(lower, upper, size=size, loc=loc, scale=scale, key=key, dtype=dtype)


@_documented_as(RandomState.exponential)
def exponential(scale=1.0, size=None, key=None, dtype=None):
    return DEFAULT.exponential(scale, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.standard_exponential)
def standard_exponential(size=None, key=None, dtype=None):
    return DEFAULT.standard_exponential(size=size, key=key, dtype=dtype)


@_documented_as(RandomState.gamma)
def gamma(shape, scale=1.0, size=None, key=None, dtype=None):
    return DEFAULT.gamma(shape, scale, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.standard_gamma)
def standard_gamma(shape, size=None, key=None, dtype=None):
    return DEFAULT.standard_gamma(shape, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.beta)
def beta(a, b, size=None, key=None, dtype=None):
    return DEFAULT.beta(a, b, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.poisson)
def poisson(lam=1.0, size=None, key=None, dtype=None):
    return DEFAULT.poisson(lam, size=size, key=key, dtype=dtype)


@_documented_as(RandomState.binomial)
def binomial(n, p, size=None, key=None, dtype=None):
    return DEFAULT.binomial(n, p, size=size, key=key, dtype=dtype)
