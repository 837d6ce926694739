"""Samplers that ``jax.random`` lacks, as pure functions of a key, and small shared helpers.

Every function here takes an explicit key and touches no State; :class:`RandomState`'s methods
split their own key and call them. The distributions follow NumPy's definitions (the same
parameters and support), implemented with ``jax.random`` primitives and, where NumPy uses a
rejection method, a vectorized ``lax.while_loop`` that redraws only the rejected entries.

The helper names (``_size2shape``, ``formalize_key``, ``_loc_scale``, ...) are those the published
BrainState library uses, so code written against it finds them here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from ._checks import as_key, is_typed_key
from ._units import _loc_scale_unit, _remove_unit_param, _scale_unit  # noqa: F401 (re-exported)

__all__ = ['multinomial', 'von_mises_centered', 'f', 'noncentral_f', 'logseries', 'zipf', 'power',
           'hypergeometric', 'formalize_key']


# -- keys, shapes and dtypes ------------------------------------------------------------------

def _is_typed_key(x) -> bool:
    """Whether ``x`` is a typed JAX PRNG key array."""
    return is_typed_key(x)


def _validate_raw_key_data(key) -> None:
    """Check that ``key`` is legacy key data: a NumPy or JAX ``uint32`` array of 2 entries.

    Raises ``TypeError`` otherwise. Pure NumPy: no JAX computation runs.
    """
    if not isinstance(key, (jax.Array, np.ndarray)):
        raise TypeError(f'Raw key data must be a uint32 array of size 2, got '
                        f'{type(key).__name__}.')
    if key.dtype != np.uint32 or key.size != 2:
        raise TypeError(f'Raw key data must be a uint32 array of size 2, but got '
                        f'dtype={key.dtype}, size={key.size}.')


def formalize_key(key) -> jax.Array:
    """A typed PRNG key from an int seed, a typed key, or ``uint32[2]`` key data.

    Raises ``TypeError`` for anything else (see :func:`brainstate.random._checks.as_key`).
    """
    return as_key(key, 'formalize_key')


_format_key = formalize_key


def _size2shape(size) -> tuple:
    """NumPy's ``size``: ``None`` -> ``()``, an int -> ``(n,)``, a sequence -> a tuple."""
    if size is None:
        return ()
    if isinstance(size, (tuple, list)):
        return tuple(size)
    return (size,)


def _check_shape(name: str, shape, *param_shapes) -> None:
    """Raise ``ValueError`` unless every parameter shape broadcasts to exactly ``shape``."""
    if param_shapes:
        result = lax.broadcast_shapes(tuple(shape), *param_shapes)
        if tuple(result) != tuple(shape):
            raise ValueError(
                f'{name}: the parameter shapes {param_shapes} broadcast with size={shape} to '
                f'{result}, which is not the requested size; give a size whose trailing '
                f'dimensions match the parameters.')


def _check_py_seq(seq):
    """A Python list or tuple as an array; anything else unchanged."""
    return jnp.asarray(seq) if isinstance(seq, (tuple, list)) else seq


def _loc_scale(loc, scale, value):
    """``value * scale + loc``, skipping the parts given as ``None``."""
    if scale is not None:
        value = value * scale
    if loc is not None:
        value = value + loc
    return value


def _reshape(x, shape):
    """Reshape with NumPy for host values (scalars, NumPy arrays), with jnp otherwise."""
    if isinstance(x, (int, float, complex, np.ndarray, np.generic)):
        return np.reshape(x, shape)
    return jnp.reshape(x, shape)


def _promote_shapes(*args, shape=()):
    """Prepend unit dimensions so the arguments (and ``shape``) have the same rank."""
    if len(args) < 2 and not shape:
        return args
    shapes = [np.shape(a) for a in args]
    ndim = len(lax.broadcast_shapes(tuple(shape), *shapes))
    return [_reshape(a, (1,) * (ndim - len(s)) + s) if len(s) < ndim else a
            for a, s in zip(args, shapes)]


_PYTHON_SCALAR_DTYPES = {bool: np.dtype('bool'), int: np.dtype('int64'),
                         float: np.dtype('float64'), complex: np.dtype('complex128')}


def _dtype(x, *, canonicalize: bool = False):
    """The dtype of a value or Python scalar type (64-bit for Python scalars), optionally
    canonicalized to what JAX uses in the current precision mode."""
    if x is None:
        raise ValueError('_dtype: expected a value, a dtype or a Python scalar type, got None.')
    if isinstance(x, type) and x in _PYTHON_SCALAR_DTYPES:
        dt = _PYTHON_SCALAR_DTYPES[x]
    elif type(x) in _PYTHON_SCALAR_DTYPES:
        dt = _PYTHON_SCALAR_DTYPES[type(x)]
    elif hasattr(x, 'dtype'):
        dt = x.dtype
    else:
        dt = np.result_type(x)
    return jax.dtypes.canonicalize_dtype(dt) if canonicalize else dt


def _is_python_scalar(x) -> bool:
    """Whether ``x`` acts as a weakly typed scalar (a Python number or a 0-d host array)."""
    if hasattr(x, 'aval'):
        return x.aval.weak_type
    return np.ndim(x) == 0


def const(example, val):
    """``val`` as a constant of ``example``'s dtype (canonical for Python scalars)."""
    if _is_python_scalar(example) and not hasattr(example, 'dtype'):
        return np.array(val, _dtype(example, canonicalize=True))
    return np.array(val, jax.dtypes.canonicalize_dtype(_dtype(example)))


def _shape_of(shape, *params) -> tuple:
    """``shape`` as a tuple; ``None`` means the broadcast shape of the parameters."""
    if shape is None:
        return tuple(lax.broadcast_shapes(*[np.shape(p) for p in params])) if params else ()
    return _size2shape(shape)


def _float_dtype(dtype):
    return jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)


def _int_dtype(dtype):
    return jax.dtypes.canonicalize_dtype(int if dtype is None else dtype)


def _jitted_sampler(fun):
    """Compile ``fun(key, *params, shape=None, dtype=None)`` once per shape and dtype.

    Eager calls then reuse the compiled program (a rejection loop would otherwise be traced
    and compiled again on every call); under a transform it is inlined as usual.
    """
    jitted = jax.jit(fun, static_argnames=('shape', 'dtype'))

    @functools.wraps(fun)
    def sampler(key, *params, shape=None, dtype=None):
        return jitted(key, *params, shape=_shape_of(shape, *params),
                      dtype=None if dtype is None else jnp.dtype(dtype))

    return sampler


def _rejection_sample(key, shape, propose, dtype):
    """Entries of ``shape`` drawn by ``propose(key) -> (candidate, accepted)``, redrawing the
    rejected entries until all are accepted (a vectorized rejection loop)."""
    def cond(carry):
        return ~jnp.all(carry[2])

    def body(carry):
        key, out, done = carry
        key, sub = jr.split(key)
        candidate, accepted = propose(sub)
        take = accepted & ~done
        return key, jnp.where(take, candidate, out), done | accepted

    init = (key, jnp.zeros(shape, dtype), jnp.zeros(shape, bool))
    return lax.while_loop(cond, body, init)[1]


# -- discrete distributions -------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=('n_max', 'shape'))
def multinomial(key, p, n, *, n_max: int, shape=()):
    """Counts of ``n`` draws among ``p.shape[-1]`` categories with probabilities ``p``.

    Args:
      key: the PRNG key.
      p: probabilities; the last axis is the categories, leading axes broadcast with ``n``.
      n: the number of draws (an int or an integer array over the batch).
      n_max: a static upper bound of ``n``: this many categorical draws are made per sample
        and the ones beyond each sample's ``n`` are discarded.
      shape: the batch shape of the output; default the broadcast of ``p.shape[:-1]`` and
        ``n``'s shape.

    Returns:
      Integer counts of shape ``shape + p.shape[-1:]``; each row sums to its ``n``.
    """
    p = jnp.asarray(p)
    k = p.shape[-1]
    batch = tuple(lax.broadcast_shapes(p.shape[:-1], np.shape(n)))
    shape = tuple(shape) if shape else batch
    int_dtype = jnp.result_type(int)
    if n_max == 0:
        return jnp.zeros(shape + (k,), int_dtype)
    logits = jnp.log(p)
    # One categorical draw per trial: (n_max,) + shape indices in [0, k).
    idx = jr.categorical(key, jnp.broadcast_to(logits, shape + (k,)), axis=-1,
                         shape=(n_max,) + shape)
    used = jnp.arange(n_max).reshape((n_max,) + (1,) * len(shape)) < jnp.asarray(n)
    hits = (idx[..., None] == jnp.arange(k)) & used[..., None]
    return jnp.sum(hits, axis=0, dtype=int_dtype)


@_jitted_sampler
def logseries(key, p, shape=None, dtype=None):
    """Logarithmic (log-series) counts ``k >= 1`` with ``P(k) = -p^k / (k log(1 - p))``.

    Kemp's method, as NumPy; ``p = 0`` gives 1.
    """
    shape = _shape_of(shape, p)
    dtype = _int_dtype(dtype)
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    fdtype = _float_dtype(None)
    p = jnp.asarray(p, fdtype)
    r = jnp.log1p(-p)

    def propose(k):
        kv, ku = jr.split(k)
        v = jr.uniform(kv, shape, fdtype)
        u = jr.uniform(ku, shape, fdtype)
        q = -jnp.expm1(r * u)
        safe_q = jnp.where((q > 0) & (q < 1), q, 0.5)
        k_small = jnp.floor(1 + jnp.log(v) / jnp.log(safe_q))
        out = jnp.where(v >= p, 1.0,
                        jnp.where(v <= q * q, k_small, jnp.where(v >= q, 1.0, 2.0)))
        ok = (v >= p) | (v > q * q) | ((k_small >= 1) & (v > 0) & jnp.isfinite(k_small))
        return out, ok

    return _rejection_sample(key, shape, propose, fdtype).astype(dtype)


@_jitted_sampler
def zipf(key, a, shape=None, dtype=None):
    """Zipf counts ``k >= 1`` with ``P(k) = k^-a / zeta(a)`` (``a > 1``).

    Devroye's rejection method, as NumPy.
    """
    shape = _shape_of(shape, a)
    dtype = _int_dtype(dtype)
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    fdtype = _float_dtype(None)
    a = jnp.asarray(a, fdtype)
    am1 = a - 1.0
    b = jnp.power(2.0, am1)
    upper = jnp.asarray(np.iinfo(np.dtype(dtype)).max, fdtype)

    def propose(k):
        ku, kv = jr.split(k)
        u = 1.0 - jr.uniform(ku, shape, fdtype)
        v = jr.uniform(kv, shape, fdtype)
        x = jnp.floor(jnp.power(u, -1.0 / am1))
        t = jnp.power(1.0 + 1.0 / x, am1)
        ok = (x >= 1) & (x <= upper) & (v * x * (t - 1.0) / (b - 1.0) <= t / b)
        return jnp.where(ok, x, 1.0), ok

    return _rejection_sample(key, shape, propose, fdtype).astype(dtype)


@_jitted_sampler
def hypergeometric(key, ngood, nbad, nsample, shape=None, dtype=None):
    """Good items among ``nsample`` drawn without replacement from ``ngood`` good and ``nbad``
    bad ones, simulated draw by draw (``max(nsample)`` steps)."""
    shape = _shape_of(shape, ngood, nbad, nsample)
    dtype = _int_dtype(dtype)
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    fdtype = _float_dtype(None)
    good = jnp.broadcast_to(jnp.asarray(ngood, fdtype), shape)
    bad = jnp.broadcast_to(jnp.asarray(nbad, fdtype), shape)
    nsample = jnp.broadcast_to(jnp.asarray(nsample, fdtype), shape)

    def body(i, carry):
        key, good_left, total_left, drawn_good = carry
        key, sub = jr.split(key)
        u = jr.uniform(sub, shape, fdtype)
        active = i < nsample
        pick_good = active & (u * total_left < good_left)
        return (key, good_left - pick_good, total_left - active, drawn_good + pick_good)

    steps = jnp.max(nsample).astype(jnp.int32)
    init = (key, good, good + bad, jnp.zeros(shape, fdtype))
    return lax.fori_loop(0, steps, body, init)[3].astype(dtype)


# -- continuous distributions -----------------------------------------------------------------

def _chisquare(key, df, shape, dtype):
    return 2.0 * jr.gamma(key, 0.5 * df, shape, dtype)


@_jitted_sampler
def f(key, dfnum, dfden, shape=None, dtype=None):
    """F (Fisher-Snedecor) samples: ``(chi2(dfnum) / dfnum) / (chi2(dfden) / dfden)``."""
    shape = _shape_of(shape, dfnum, dfden)
    dtype = _float_dtype(dtype)
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    dfnum, dfden = jnp.asarray(dfnum, dtype), jnp.asarray(dfden, dtype)
    k1, k2 = jr.split(key)
    return (_chisquare(k1, dfnum, shape, dtype) / dfnum) / (_chisquare(k2, dfden, shape, dtype)
                                                          / dfden)


def _noncentral_chisquare(key, df, nonc, shape, dtype):
    """Non-central chi-square: for ``df > 1`` a central chi2(df - 1) plus a shifted normal
    squared; otherwise the Poisson mixture chi2(df + 2 Poisson(nonc / 2)), as NumPy."""
    kp, kn, kg = jr.split(key, 3)
    i = jr.poisson(kp, 0.5 * nonc, shape).astype(dtype)
    z = jr.normal(kn, shape, dtype) + jnp.sqrt(nonc)
    big = df > 1.0
    chi2 = _chisquare(kg, jnp.where(big, df - 1.0, df + 2.0 * i), shape, dtype)
    return jnp.where(big, chi2 + z * z, chi2)


@_jitted_sampler
def noncentral_f(key, dfnum, dfden, nonc, shape=None, dtype=None):
    """Non-central F: ``(noncentral_chisquare(dfnum, nonc) / dfnum) / (chi2(dfden) / dfden)``."""
    shape = _shape_of(shape, dfnum, dfden, nonc)
    dtype = _float_dtype(dtype)
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    dfnum, dfden = jnp.asarray(dfnum, dtype), jnp.asarray(dfden, dtype)
    nonc = jnp.asarray(nonc, dtype)
    k1, k2 = jr.split(key)
    num = _noncentral_chisquare(k1, dfnum, nonc, shape, dtype)
    den = _chisquare(k2, dfden, shape, dtype)
    return (num / dfnum) / (den / dfden)


@_jitted_sampler
def power(key, a, shape=None, dtype=None):
    """Power-law samples on ``[0, 1]`` with density ``a x^(a - 1)``: ``U^(1 / a)``."""
    shape = _shape_of(shape, a)
    dtype = _float_dtype(dtype)
    if 0 in shape:
        return jnp.zeros(shape, dtype)
    a = jnp.asarray(a, dtype)
    # 1 - U lies in (0, 1], so a = 0 gives 1 rather than 0^inf.
    return jnp.power(1.0 - jr.uniform(key, shape, dtype), 1.0 / a)


@functools.partial(jax.jit, static_argnums=(2, 3), static_argnames=('shape', 'dtype'))
def von_mises_centered(key, concentration, shape, dtype=None):
    """Von Mises angles in ``[-pi, pi]`` with mean 0 and concentration ``kappa``.

    Best and Fisher's rejection method (a wrapped Cauchy proposal). ``kappa <= 0`` gives the
    uniform distribution on the circle, its limit. Samples are computed in float32 or float64
    and returned in ``dtype`` (float16/bfloat16 allowed); an integer dtype is a ``ValueError``.
    """
    dtype = _float_dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f'von_mises_centered: dtype must be a floating dtype, got {dtype}.')
    work = jnp.float64 if dtype == jnp.float64 else jnp.float32
    shape = tuple(shape) if shape else tuple(np.shape(concentration))
    kappa = jnp.broadcast_to(jnp.asarray(concentration, work), shape)
    positive = kappa > 0
    safe_kappa = jnp.where(positive, kappa, 1.0)
    tau = 1.0 + jnp.sqrt(1.0 + 4.0 * safe_kappa ** 2)
    rho = (tau - jnp.sqrt(2.0 * tau)) / (2.0 * safe_kappa)
    r = (1.0 + rho ** 2) / (2.0 * rho)

    def propose(k):
        k1, k2, k3 = jr.split(k, 3)
        u1 = jr.uniform(k1, shape, work)
        u2 = jr.uniform(k2, shape, work)
        u3 = jr.uniform(k3, shape, work)
        z = jnp.cos(jnp.pi * u1)
        w = jnp.clip((1.0 + r * z) / (r + z), -1.0, 1.0)
        c = safe_kappa * (r - w)
        ok = (c * (2.0 - c) > u2) | (jnp.log(c / u2) + 1.0 - c >= 0)
        angle = jnp.sign(u3 - 0.5) * jnp.arccos(w)
        return angle, ok | ~positive

    k_angle, k_uniform = jr.split(key)
    angle = _rejection_sample(k_angle, shape, propose, work)
    uniform = jr.uniform(k_uniform, shape, work, -jnp.pi, jnp.pi)
    return jnp.where(positive, angle, uniform).astype(dtype)


# -- the math of RandomState's composite samplers, one compiled program each -----------------
#
# RandomState's methods check their arguments and split their key in Python, then call one of
# these with the key: an eager draw compiles one program per (sampler, shape, dtype) instead of
# one per arithmetic operation, and is cached across calls. Under a transform they are inlined.

def _kernel(*static):
    def decorate(fun):
        return jax.jit(fun, static_argnames=('shape', 'dtype') + static)
    return decorate


def _apply_loc_scale(z, loc, scale, dtype):
    if scale is not None:
        z = z * jnp.asarray(scale, dtype)
    if loc is not None:
        z = z + jnp.asarray(loc, dtype)
    return z


@_kernel('sampler', 'exp')
def loc_scale_kernel(key, loc, scale, *, shape, dtype, sampler, exp=False):
    """``sampler(key) * scale + loc`` (``exp`` of it for the log-normal)."""
    z = _apply_loc_scale(sampler(key, shape, dtype), loc, scale, dtype)
    return jnp.exp(z) if exp else z


@_kernel()
def uniform_kernel(key, low, high, *, shape, dtype):
    return jr.uniform(key, shape, dtype, jnp.asarray(low, dtype), jnp.asarray(high, dtype))


@_kernel()
def gamma_kernel(key, k, scale, *, shape, dtype):
    return _apply_loc_scale(jr.gamma(key, jnp.asarray(k, dtype), shape, dtype), None, scale,
                            dtype)


@_kernel()
def chisquare_kernel(key, df, *, shape, dtype):
    return _chisquare(key, jnp.asarray(df, dtype), shape, dtype)


@_kernel()
def t_kernel(key, df, *, shape, dtype):
    k_normal, k_gamma = jr.split(key)
    half_df = jnp.asarray(df, dtype) / 2
    n = jr.normal(k_normal, shape, dtype)
    return n * jnp.sqrt(half_df / jr.gamma(k_gamma, half_df, shape, dtype))


@_kernel()
def noncentral_chisquare_kernel(key, df, nonc, *, shape, dtype):
    return _noncentral_chisquare(key, jnp.asarray(df, dtype), jnp.asarray(nonc, dtype), shape,
                                 dtype)


@_kernel()
def truncated_normal_kernel(key, lower, upper, loc, scale, *, shape, dtype):
    loc, scale = jnp.asarray(loc, dtype), jnp.asarray(scale, dtype)
    z = jr.truncated_normal(key, (jnp.asarray(lower, dtype) - loc) / scale,
                            (jnp.asarray(upper, dtype) - loc) / scale, shape, dtype)
    return z * scale + loc


@_kernel()
def weibull_kernel(key, a, scale, *, shape, dtype):
    u = jr.uniform(key, shape, dtype)
    x = jnp.power(-jnp.log1p(-u), 1.0 / jnp.asarray(a, dtype))
    return _apply_loc_scale(x, None, scale, dtype)


@_kernel()
def rayleigh_kernel(key, scale, *, shape, dtype):
    # 1 - U lies in (0, 1]: no log(0).
    x = jnp.sqrt(-2.0 * jnp.log1p(-jr.uniform(key, shape, dtype)))
    return _apply_loc_scale(x, None, scale, dtype)


@_kernel()
def triangular_kernel(key, left, mode, right, *, shape, dtype):
    left, mode, right = (jnp.asarray(v, dtype) for v in (left, mode, right))
    u = jr.uniform(key, shape, dtype)
    span = right - left
    rising = left + jnp.sqrt(u * span * (mode - left))
    falling = right - jnp.sqrt((1.0 - u) * span * (right - mode))
    return jnp.where(u < (mode - left) / span, rising, falling)


@_kernel()
def vonmises_kernel(key, mu, kappa, *, shape, dtype):
    kappa = jnp.broadcast_to(jnp.asarray(kappa, dtype), shape)
    z = von_mises_centered(key, kappa, shape, dtype)
    return (z + jnp.asarray(mu, dtype) + jnp.pi) % (2.0 * jnp.pi) - jnp.pi


@_kernel()
def wald_kernel(key, mean, scale, *, shape, dtype):
    """Michael, Schucany and Haas's method, as NumPy."""
    mean, scale = jnp.asarray(mean, dtype), jnp.asarray(scale, dtype)
    k_normal, k_uniform = jr.split(key)
    big_y = mean * jnp.square(jr.normal(k_normal, shape, dtype))
    u = jr.uniform(k_uniform, shape, dtype)
    # NumPy's x = mean + mean / (2 scale) * (Y - sqrt(4 scale Y + Y^2)), rewritten without
    # cancellation: x = mean * 4 scale Y / (Y + sqrt(4 scale Y + Y^2))^2.
    root = jnp.sqrt(4 * scale * big_y + jnp.square(big_y))
    x = jnp.where(big_y > 0, mean * 4 * scale * big_y / jnp.square(big_y + root), mean)
    return jnp.where(u <= mean / (mean + x), x, jnp.square(mean) / x)


@_kernel()
def maxwell_kernel(key, *, shape, dtype):
    return jnp.linalg.norm(jr.normal(key, shape + (3,), dtype), axis=-1)


@_kernel('n')
def orthogonal_kernel(key, *, n, shape, dtype):
    q, r = jnp.linalg.qr(jr.normal(key, shape + (n, n), dtype))
    return q * jnp.expand_dims(jnp.sign(jnp.diagonal(r, 0, -2, -1)), -2)


@_kernel('float_dtype')
def negative_binomial_kernel(key, n, p, *, shape, dtype, float_dtype):
    """A Gamma-Poisson mixture (so ``n`` may be any positive real)."""
    p = jnp.asarray(p, float_dtype)
    k_gamma, k_poisson = jr.split(key)
    rate = jr.gamma(k_gamma, jnp.asarray(n, float_dtype), shape, float_dtype) * (1 - p) / p
    return jr.poisson(k_poisson, rate, shape, dtype)


@_kernel('float_dtype')
def geometric_kernel(key, p, *, shape, dtype, float_dtype):
    u = jr.uniform(key, shape, float_dtype)
    # p = 1 gives log1p(-1) = -inf and k = 1 (0 / -inf = 0), as it should.
    k = jnp.floor(jnp.log1p(-u) / jnp.log1p(-jnp.asarray(p, float_dtype))) + 1
    return k.astype(dtype)


@_kernel('float_dtype')
def binomial_kernel(key, n, p, *, shape, dtype, float_dtype):
    return jr.binomial(key, jnp.asarray(n, float_dtype), jnp.asarray(p, float_dtype), shape,
                       float_dtype).astype(dtype)


@_kernel()
def randint_kernel(key, low, high, *, shape, dtype):
    return jr.randint(key, shape, low, high, dtype)


@_kernel('method')
def multivariate_normal_kernel(key, mean, cov, *, shape, dtype, method='cholesky'):
    if method == 'svd':
        u, s, _ = jnp.linalg.svd(cov)
        factor = u * jnp.sqrt(s[..., None, :])
    elif method == 'eigh':
        w, v = jnp.linalg.eigh(cov)
        factor = v * jnp.sqrt(jnp.clip(w, 0)[..., None, :])
    else:
        factor = jnp.linalg.cholesky(cov)
    z = jr.normal(key, shape + mean.shape[-1:], dtype)
    return mean + jnp.einsum('...ij,...j->...i', factor, z)
