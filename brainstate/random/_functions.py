"""The NumPy-style module-level samplers: each draws from the global state ``DEFAULT``.

``brainstate.random.normal(size=3)`` is ``brainstate.random.DEFAULT.normal(size=3)``, with the
same signature and docstring as :class:`RandomState`'s method of that name. Every one takes
``size=`` (the output shape) and ``key=`` (draw from this key and leave ``DEFAULT`` alone).
The functions are generated from the methods, so the two can never disagree.
"""

from __future__ import annotations

import inspect

from . import _default
from ._state import RandomState

SAMPLERS = (
    # uniform and integer draws
    'rand', 'randint', 'random_integers', 'randn', 'random', 'random_sample', 'ranf', 'sample',
    'choice', 'permutation', 'shuffle',
    # continuous distributions
    'beta', 'exponential', 'gamma', 'gumbel', 'laplace', 'logistic', 'normal', 'pareto',
    'standard_cauchy', 'standard_exponential', 'standard_gamma', 'standard_normal', 'standard_t',
    'uniform', 'truncated_normal', 'lognormal', 'rayleigh', 'triangular', 'vonmises', 'wald',
    'weibull', 'weibull_min', 'maxwell', 't', 'loggamma', 'chisquare', 'f', 'noncentral_chisquare',
    'noncentral_f', 'dirichlet', 'multivariate_normal', 'orthogonal',
    # discrete distributions
    'poisson', 'bernoulli', 'binomial', 'geometric', 'hypergeometric', 'logseries',
    'multinomial', 'negative_binomial', 'power', 'zipf', 'categorical',
    # PyTorch-style helpers
    'rand_like', 'randint_like', 'randn_like',
)

__all__ = list(SAMPLERS)


def _module_function(name: str):
    """``brainstate.random.<name>``: the method ``name`` of the global state."""
    method = getattr(RandomState, name)

    def sampler(*args, **kwargs):
        return getattr(_default.DEFAULT, name)(*args, **kwargs)

    signature = inspect.signature(method)
    params = [p for p in list(signature.parameters.values())[1:] if not p.name.startswith('_')]
    sampler.__signature__ = signature.replace(parameters=params)
    sampler.__name__ = sampler.__qualname__ = name
    sampler.__module__ = 'brainstate.random'
    sampler.__doc__ = (f'Draw from the global random state ``DEFAULT``; see '
                       f'``RandomState.{name}``.\n\n    {method.__doc__}')
    sampler.__wrapped__ = method
    return sampler


for _name in SAMPLERS:
    globals()[_name] = _module_function(_name)
del _name
