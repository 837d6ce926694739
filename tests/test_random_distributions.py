"""brainstate.random: every sampler's distribution, checked against scipy.stats.

Continuous samplers: a Kolmogorov-Smirnov test of 4000 draws against scipy's CDF. Discrete ones:
the sample mean and variance against the exact moments (five standard errors; 10 % for the
variance). Fixed seeds make each check deterministic; the thresholds are loose enough for any
seed, and tight enough that a wrong parameterization (a rate for a scale, NumPy's Lomax for the
classical Pareto, an off-by-one support) fails by orders of magnitude.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
import brainstate.random as br

stats = pytest.importorskip('scipy.stats')

N = 4000

# name -> (method, args, kwargs, scipy frozen distribution)
CONTINUOUS = {
    'uniform': ('uniform', (-1.0, 3.0), {}, stats.uniform(-1.0, 4.0)),
    'normal': ('normal', (2.0, 3.0), {}, stats.norm(2.0, 3.0)),
    'laplace': ('laplace', (1.0, 2.0), {}, stats.laplace(1.0, 2.0)),
    'logistic': ('logistic', (1.0, 2.0), {}, stats.logistic(1.0, 2.0)),
    'gumbel': ('gumbel', (1.0, 2.0), {}, stats.gumbel_r(1.0, 2.0)),
    'lognormal': ('lognormal', (0.5, 0.75), {}, stats.lognorm(0.75, scale=math.exp(0.5))),
    'exponential': ('exponential', (2.5,), {}, stats.expon(scale=2.5)),
    'standard_exponential': ('standard_exponential', (), {}, stats.expon()),
    'gamma': ('gamma', (3.0, 2.0), {}, stats.gamma(3.0, scale=2.0)),
    'standard_gamma': ('standard_gamma', (0.7,), {}, stats.gamma(0.7)),
    'beta': ('beta', (2.0, 5.0), {}, stats.beta(2.0, 5.0)),
    'pareto': ('pareto', (3.0,), {}, stats.pareto(3.0)),
    'standard_cauchy': ('standard_cauchy', (), {}, stats.cauchy()),
    'standard_normal': ('standard_normal', (), {}, stats.norm()),
    'standard_t': ('standard_t', (4.0,), {}, stats.t(4.0)),
    't': ('t', (2.5,), {}, stats.t(2.5)),
    'chisquare': ('chisquare', (3.5,), {}, stats.chi2(3.5)),
    'noncentral_chisquare': ('noncentral_chisquare', (3.0, 2.0), {}, stats.ncx2(3.0, 2.0)),
    'noncentral_chisquare_small_df': ('noncentral_chisquare', (0.5, 2.0), {},
                                      stats.ncx2(0.5, 2.0)),
    'f': ('f', (3.0, 7.0), {}, stats.f(3.0, 7.0)),
    'noncentral_f': ('noncentral_f', (3.0, 20.0, 2.0), {}, stats.ncf(3.0, 20.0, 2.0)),
    'rayleigh': ('rayleigh', (2.0,), {}, stats.rayleigh(scale=2.0)),
    'maxwell': ('maxwell', (), {}, stats.maxwell()),
    'weibull': ('weibull', (1.7,), {}, stats.weibull_min(1.7)),
    'weibull_min': ('weibull_min', (1.7, 3.0), {}, stats.weibull_min(1.7, scale=3.0)),
    'triangular': ('triangular', (-1.0, 2.0, 3.0), {}, stats.triang(0.75, loc=-1.0, scale=4.0)),
    'vonmises': ('vonmises', (0.5, 2.0), {}, stats.vonmises(2.0, loc=0.5)),
    'vonmises_uniform': ('vonmises', (0.0, 0.0), {}, stats.uniform(-math.pi, 2 * math.pi)),
    'wald': ('wald', (1.5, 2.0), {}, stats.invgauss(1.5 / 2.0, scale=2.0)),
    'power': ('power', (2.5,), {}, stats.powerlaw(2.5)),
    'truncated_normal': ('truncated_normal', (0.5, 2.0), {'loc': 1.0, 'scale': 3.0},
                         stats.truncnorm((0.5 - 1.0) / 3.0, (2.0 - 1.0) / 3.0, 1.0, 3.0)),
    'loggamma': ('loggamma', (2.0,), {}, stats.loggamma(2.0)),
    'rand': ('rand', (N,), {}, stats.uniform()),
    'randn': ('randn', (N,), {}, stats.norm()),
    'random': ('random', (), {}, stats.uniform()),
}

# name -> (method, args, kwargs, exact mean, exact variance, smallest value)
DISCRETE = {
    'poisson': ('poisson', (4.0,), {}, 4.0, 4.0, 0),
    'binomial': ('binomial', (10, 0.3), {}, 3.0, 2.1, 0),
    'negative_binomial': ('negative_binomial', (5.0, 0.4), {}, 7.5, 18.75, 0),
    'geometric': ('geometric', (0.35,), {}, 1 / 0.35, 0.65 / 0.35 ** 2, 1),
    'hypergeometric': ('hypergeometric', (7, 13, 6), {}, 6 * 7 / 20,
                       6 * (7 / 20) * (13 / 20) * (14 / 19), 0),
    'logseries': ('logseries', (0.6,), {}, stats.logser(0.6).mean(), stats.logser(0.6).var(), 1),
    'randint': ('randint', (2, 9), {}, 5.0, (7 ** 2 - 1) / 12, 2),
    'random_integers': ('random_integers', (2, 9), {}, 5.5, (8 ** 2 - 1) / 12, 2),
    'bernoulli': ('bernoulli', (0.3,), {}, 0.3, 0.21, 0),
}


def _draw_kwargs(method):
    return {} if method in ('rand', 'randn') else {'size': N}


def _draw(table, seed):
    """Every draw of the samplers in ``table`` from one jitted call: one XLA compile instead of
    one per sampler (the compile is the cost of this file). One table per test, so that a
    parallel run (-n 2) compiles the two on different workers."""
    rng = br.RandomState(seed)

    @brainstate.transform.jit
    def draw_all():
        return {name: getattr(rng, method)(*args, **kwargs, **_draw_kwargs(method))
                for name, (method, args, kwargs, *_) in table.items()}

    return jax.tree.map(np.asarray, draw_all())


def _continuous_failure(name, x):
    """Why the draws ``x`` of sampler ``name`` do not follow scipy's distribution, or None."""
    if x.shape != (N,) or not np.isfinite(x).all() or not np.issubdtype(x.dtype, np.floating):
        return f'{name}: shape {x.shape}, dtype {x.dtype}, finite {np.isfinite(x).all()}'
    p = stats.kstest(x.astype(np.float64), CONTINUOUS[name][3].cdf).pvalue
    return None if p > 1e-3 else f'{name}: KS p-value {p:.2e}'


def _discrete_failure(name, x):
    """Why the draws ``x`` of sampler ``name`` miss the exact moments, or None."""
    _, _, _, mean, var, low = DISCRETE[name]
    if x.shape != (N,) or x.min() < low:
        return f'{name}: shape {x.shape}, smallest value {x.min()} (support from {low})'
    x = x.astype(np.float64)
    if abs(x.mean() - mean) >= 5 * math.sqrt(var / N):
        return f'{name}: mean {x.mean()} (exact {mean})'
    if abs(x.var() - var) >= 0.1 * var:
        return f'{name}: variance {x.var()} (exact {var})'
    return None


def test_every_continuous_sampler_follows_its_distribution():
    draws = _draw(CONTINUOUS, 2024)
    failures = [_continuous_failure(name, draws[name]) for name in sorted(CONTINUOUS)]
    failures = [f for f in failures if f]
    assert not failures, '\n'.join(failures)


def test_every_discrete_sampler_has_its_exact_moments():
    draws = _draw(DISCRETE, 2025)
    failures = [_discrete_failure(name, draws[name]) for name in sorted(DISCRETE)]
    failures = [f for f in failures if f]
    assert not failures, '\n'.join(failures)


def test_the_checks_catch_a_wrong_parameterization():
    # the checks above can fail: a rate for a scale, a shifted support, a wrong variance
    rng = np.random.default_rng(0)
    assert _continuous_failure('exponential', rng.exponential(1 / 2.5, N))
    assert _continuous_failure('normal', np.full(N, np.nan))
    assert _discrete_failure('geometric', rng.geometric(0.35, N) - 1)
    assert _discrete_failure('poisson', rng.poisson(4.4, N))
    assert _discrete_failure('binomial', np.repeat([1, 5], N // 2))
    assert _continuous_failure('exponential', rng.exponential(2.5, N)) is None


def test_zipf_frequencies():
    # Heavy tailed: compare the frequencies of the first values with the pmf instead.
    x = np.asarray(br.RandomState(3).zipf(2.5, size=N))
    assert x.min() >= 1
    for k in (1, 2, 3):
        p = stats.zipf(2.5).pmf(k)
        assert abs((x == k).mean() - p) < 5 * math.sqrt(p * (1 - p) / N)


def test_multinomial_counts_and_moments():
    rng = br.RandomState(4)
    p = np.array([0.2, 0.3, 0.5])
    counts = np.asarray(rng.multinomial(20, p, size=N))
    assert counts.shape == (N, 3) and np.issubdtype(counts.dtype, np.integer)
    assert (counts.sum(-1) == 20).all()
    np.testing.assert_allclose(counts.mean(0), 20 * p, atol=5 * math.sqrt(20 * 0.25 / N))
    np.testing.assert_allclose(counts.var(0), 20 * p * (1 - p), rtol=0.1)
    # A batch of distributions with their own n.
    batch = np.asarray(rng.multinomial(np.array([3, 9]), np.array([[0.5, 0.5], [0.1, 0.9]])))
    assert batch.shape == (2, 2)
    np.testing.assert_array_equal(batch.sum(-1), [3, 9])


def test_dirichlet_moments():
    alpha = np.array([1.0, 2.0, 3.0])
    x = np.asarray(br.RandomState(5).dirichlet(alpha, size=N))
    assert x.shape == (N, 3)
    np.testing.assert_allclose(x.sum(-1), 1.0, rtol=1e-5)
    a0 = alpha.sum()
    mean = alpha / a0
    var = alpha * (a0 - alpha) / (a0 ** 2 * (a0 + 1))
    np.testing.assert_allclose(x.mean(0), mean, atol=5 * math.sqrt(var.max() / N))
    np.testing.assert_allclose(x.var(0), var, rtol=0.1)


def test_multivariate_normal_covariance():
    mean = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    for method in ('cholesky', 'eigh', 'svd'):
        x = np.asarray(br.RandomState(6).multivariate_normal(mean, cov, size=N, method=method))
        assert x.shape == (N, 2)
        np.testing.assert_allclose(x.mean(0), mean, atol=5 * math.sqrt(2.0 / N))
        np.testing.assert_allclose(np.cov(x.T), cov, atol=0.12)


def test_orthogonal_matrices_are_orthonormal():
    q = np.asarray(br.RandomState(7).orthogonal(4, size=3))
    assert q.shape == (3, 4, 4)
    np.testing.assert_allclose(np.einsum('bij,bik->bjk', q, q), np.broadcast_to(np.eye(4),
                                                                                (3, 4, 4)),
                               atol=1e-5)


def test_same_numbers_as_handwritten_jax():
    """Composite samplers follow their formulas exactly (not only in distribution)."""
    rng = br.RandomState(0)

    @jax.jit  # both sides in one compiled program (explicit keys: no state is touched)
    def ours_and_formulas(k):
        u = jax.random.uniform(k, (5,))
        kn, kg = jax.random.split(k)
        n, g = jax.random.normal(kn, (5,)), jax.random.gamma(kg, 1.25, (5,))
        z = jax.random.normal(k, (5, 3))
        return {
            'rayleigh': (rng.rayleigh(2.0, size=5, key=k), 2.0 * jnp.sqrt(-2 * jnp.log1p(-u))),
            'weibull_min': (rng.weibull_min(1.7, 3.0, size=5, key=k),
                            3.0 * (-jnp.log1p(-u)) ** (1 / 1.7)),
            'power': (rng.power(2.5, size=5, key=k), (1 - u) ** (1 / 2.5)),
            't': (rng.t(2.5, size=5, key=k), n * jnp.sqrt(1.25 / g)),
            'chisquare': (rng.chisquare(3.0, size=5, key=k), 2 * jax.random.gamma(k, 1.5, (5,))),
            'maxwell': (rng.maxwell(size=5, key=k), jnp.linalg.norm(z, axis=-1)),
        }

    for name, (ours, formula) in ours_and_formulas(jax.random.key(11)).items():
        np.testing.assert_allclose(ours, formula, rtol=1e-5, err_msg=name)


def test_parameter_checks_raise_value_errors():
    rng = br.RandomState(8)
    before = jax.random.key_data(rng.value)
    for call in (lambda: rng.bernoulli(1.5, size=3), lambda: rng.binomial(5, -0.1),
                 lambda: rng.chisquare(0.0), lambda: rng.geometric(0.0), lambda: rng.zipf(1.0),
                 lambda: rng.power(-1.0), lambda: rng.triangular(0.0, 2.0, 1.0),
                 lambda: rng.multinomial(5, [0.7, 0.6, 0.1]),
                 lambda: rng.truncated_normal(0.0, 1.0, loc=10.0)):
        with pytest.raises(ValueError):
            call()
    # A rejected call leaves the key as it was.
    np.testing.assert_array_equal(jax.random.key_data(rng.value), before)
    assert rng.power(0.0, size=3, check_valid=False).shape == (3,)


def test_dtype_and_shape_arguments():
    rng = br.RandomState(9)
    shape_of = lambda f, *a, **k: jax.eval_shape(lambda key: f(*a, key=key, **k),
                                                 jax.random.key(0))
    assert shape_of(rng.gamma, 2.0, size=(2, 3), dtype=jnp.float16).dtype == jnp.float16
    assert shape_of(rng.zipf, 2.0, size=4, dtype=jnp.int16).dtype == jnp.int16
    assert shape_of(rng.geometric, jnp.array([0.2, 0.5])).shape == (2,)
    assert shape_of(rng.standard_t, jnp.array([1.0, 2.0, 4.0])).shape == (3,)
    assert shape_of(rng.triangular, 0.0, jnp.array([0.2, 0.5]), 1.0).shape == (2,)
    assert shape_of(rng.dirichlet, jnp.ones(3), size=(4, 2)).shape == (4, 2, 3)
    assert shape_of(rng.multivariate_normal, jnp.zeros(2), jnp.eye(2), size=5).shape == (5, 2)
    assert rng.rand_like(jnp.ones((2, 3), jnp.float16)).dtype == jnp.float16
    assert rng.randint_like(jnp.array([[3, 7], [2, 9]])).shape == (2, 2)
    assert br.choice(np.array(['a', 'b', 'c']), size=4).dtype.kind == 'U'
