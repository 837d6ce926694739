"""RandomState: a State holding a JAX PRNG key, with NumPy-style samplers.

JAX's random numbers are functional: the same key always gives the same numbers, so a program
must split its key and carry the new one forward. ``RandomState`` does that bookkeeping in a
State. Every draw is

    key, sub = jax.random.split(self.value)     # an ordinary state read ...
    self.value = key                            # ... and an ordinary state write
    return jax.random.<distribution>(sub, ...)

so brainstate transforms thread the key like any other state: under ``jit`` consecutive calls
draw different numbers and the key advances; loops carry it; ``grad`` passes it through. No
transform needs code of its own for random numbers, except ``vmap``, which splits the key per
lane (see :meth:`RandomState.split_key`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from .. import _state
from .._state import State
from ._checks import as_key, output_shape, random_seed, size_to_shape
from .._errors import ArgumentTypeError, ArgumentValueError

__all__ = ['RandomState']

Size = Optional[Union[int, Sequence[int]]]


class RandomState(State):
    """A State holding a typed JAX PRNG key (``jax.random.key``), with NumPy-style samplers.

    Args:
      seed_or_key: an integer seed, a key from ``jax.random.key``, or the ``uint32[2]`` data of
        an old-style ``jax.random.PRNGKey``. ``None`` (the default) picks a fresh random seed,
        like an unseeded NumPy generator.
      name: an optional name for messages and the printed IR.

    ``.value`` is the current key. Each sampler (``normal``, ``uniform``, ``randint``, ...)
    splits it, stores one half back and draws from the other, so every call gives new numbers
    and two generators seeded alike give the same sequence. Every sampler takes:

      size: the output shape, NumPy style: ``None`` (the broadcast shape of the parameters, a
        scalar for scalar parameters), an ``int`` ``n`` (shape ``(n,)``) or a tuple of ints.
        It must be a Python value (it fixes the shape of the compiled program).
      key: draw from this key instead; the state is then neither read nor advanced. Useful to
        reproduce one draw, or to manage keys by hand.

    Example::

        rng = brainstate.random.RandomState(0)
        x = rng.normal(size=(2, 3))            # advances rng
        y = rng.uniform(-1.0, 1.0, size=4)     # different numbers from a new key

        @brainstate.transform.jit
        def noisy(v):
            return v + rng.normal(scale=0.1, size=v.shape)   # new noise on every call

    Under ``raw jax.jit`` the key update would be lost (brainstate raises an error explaining
    this); under ``brainstate.transform.jit`` it is kept.
    """

    def __init__(self, seed_or_key: Any = None, name: Optional[str] = None):
        if seed_or_key is None:
            seed_or_key = random_seed()
        super().__init__(as_key(seed_or_key, 'RandomState'), name=name)

    # -- the key ----------------------------------------------------------------------------

    def seed(self, seed_or_key: Any = None):
        """Reset the key from an integer seed or a key; ``None`` picks a fresh random seed.

        After ``rng.seed(n)`` the samplers give the same numbers as a new ``RandomState(n)``.
        """
        if seed_or_key is None:
            seed_or_key = random_seed()
        self.value = as_key(seed_or_key, 'RandomState.seed')

    def set_key(self, key: Any):
        """Replace the key (a typed key, legacy ``uint32[2]`` key data, or an integer seed)."""
        self.value = as_key(key, 'RandomState.set_key')

    def get_key(self):
        """The current key (the same as ``.value``); reading it does not advance the state."""
        return self.value

    def split_key(self, n: Optional[int] = None):
        """Advance the state once and return fresh keys for your own use.

        Args:
          n: ``None`` for one new key (shape ``()``), or an int for ``n`` keys (shape ``(n,)``).

        Returns:
          Keys independent of the ones the state will use next. ``split_key()`` is exactly the
          split each sampler does: ``new_state, returned = jax.random.split(old_state)``; with
          ``n``, ``jax.random.split(old_state, n + 1)`` gives the new state and the ``n`` keys.

        This is also how ``vmap`` gives each lane its own numbers: it takes
        ``split_key(axis_size)``, lets lane ``i`` draw from key ``i``, and discards the lanes'
        keys afterwards, so the state advances once per call.
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                              or n < 1):
            raise ArgumentValueError(
                f'RandomState.split_key: n must be None (one key) or a positive int '
                f'(that many keys), got {n!r}.')
        # Eagerly, the read and the write are one step for other threads (no two threads draw
        # from the same key); inside a trace they are traced operations of this thread.
        with _state.eager_state_lock():
            if n is None:
                key, sub = jax.random.split(self.value)
                self.value = key
                return sub
            keys = jax.random.split(self.value, int(n) + 1)
            self.value = keys[0]
            return keys[1:]

    def _key(self, key, where: str):
        """The key a sampler draws from: ``key=`` if given (state untouched), else a split."""
        if key is None:
            return self.split_key()
        return as_key(key, where)

    # -- uniform and integer draws ----------------------------------------------------------

    def rand(self, *dn: int, size: Size = None, key=None, dtype=None):
        """Uniform floats in ``[0, 1)`` of shape ``dn`` (NumPy's ``rand(d0, d1, ...)``).

        ``rng.rand(2, 3)`` and ``rng.rand(size=(2, 3))`` are the same; with neither, a scalar.
        """
        shape = _shape_from_dims(dn, size, 'rand')
        return jax.random.uniform(self._key(key, 'rand'), shape, _float(dtype))

    def random(self, size: Size = None, key=None, dtype=None):
        """Uniform floats in ``[0, 1)`` (NumPy's ``random(size)``)."""
        shape = size_to_shape(size, 'random')
        return jax.random.uniform(self._key(key, 'random'), shape, _float(dtype))

    def random_sample(self, size: Size = None, key=None, dtype=None):
        """An alias of :meth:`random`."""
        return self.random(size=size, key=key, dtype=dtype)

    def uniform(self, low=0.0, high=1.0, size: Size = None, key=None, dtype=None):
        """Uniform floats in ``[low, high)``; ``low`` and ``high`` broadcast (NumPy's rules)."""
        shape = output_shape(size, 'uniform', low=low, high=high)
        dtype = _float(dtype)
        return jax.random.uniform(self._key(key, 'uniform'), shape, dtype,
                                  minval=jnp.asarray(low, dtype), maxval=jnp.asarray(high, dtype))

    def randint(self, low, high=None, size: Size = None, dtype=int, key=None):
        """Uniform integers in ``[low, high)``; with one bound, in ``[0, low)`` (like NumPy)."""
        if high is None:
            low, high = 0, low
        shape = output_shape(size, 'randint', low=low, high=high)
        return jax.random.randint(self._key(key, 'randint'), shape, low, high,
                                  dtype=_int(dtype, 'randint'))

    def choice(self, a, size: Size = None, replace: bool = True, p=None, key=None):
        """Random elements of ``a`` (an array, or an int ``n`` for ``arange(n)``).

        Args:
          a: the population (sampled along its first axis), or an int.
          size: how many / what shape of draws; ``None`` for one element.
          replace: draw with replacement. Without it ``size`` may not exceed ``len(a)``.
          p: probabilities of each entry of ``a`` (sum to 1); ``None`` for uniform.
        """
        shape = size_to_shape(size, 'choice')
        if not isinstance(a, (int, np.integer)):
            a = jnp.asarray(a)
            if a.ndim == 0:
                raise ArgumentValueError(
                    'choice: `a` must be an int or an array with at least one '
                    'dimension; to sample from range(n) pass the int n.')
        n = int(a) if isinstance(a, (int, np.integer)) else a.shape[0]
        if not replace and int(np.prod(shape)) > n:
            raise ArgumentValueError(
                f'choice: cannot take {int(np.prod(shape))} samples from a '
                f'population of {n} without replacement; use replace=True or a '
                f'smaller size.')
        return jax.random.choice(self._key(key, 'choice'), a, shape, replace=replace, p=p)

    def permutation(self, x, axis: int = 0, independent: bool = False, key=None):
        """A random permutation of ``x`` along ``axis``, or of ``arange(x)`` for an int ``x``.

        ``independent=True`` permutes each slice along ``axis`` independently.
        """
        if not isinstance(x, (int, np.integer)):
            x = jnp.asarray(x)
        return jax.random.permutation(self._key(key, 'permutation'), x, axis=axis,
                                      independent=independent)

    def shuffle(self, x, axis: int = 0, key=None):
        """``x`` with its entries shuffled along ``axis``, returned as a new array.

        JAX arrays are immutable, so unlike NumPy's ``shuffle`` this cannot work in place:
        use the result (``x = rng.shuffle(x)``).
        """
        return jax.random.permutation(self._key(key, 'shuffle'), jnp.asarray(x), axis=axis,
                                      independent=False)

    def bernoulli(self, p=0.5, size: Size = None, key=None):
        """Booleans that are ``True`` with probability ``p`` (broadcast to ``size``)."""
        shape = output_shape(size, 'bernoulli', p=p)
        return jax.random.bernoulli(self._key(key, 'bernoulli'), p, shape)

    def categorical(self, logits, axis: int = -1, size: Size = None, key=None):
        """Category indices drawn with probabilities ``softmax(logits)`` along ``axis``.

        With ``size=None`` one index per distribution (``logits.shape`` without ``axis``); a
        ``size`` must end with that batch shape.
        """
        logits = jnp.asarray(logits)
        if logits.ndim == 0:
            raise ArgumentValueError('categorical: logits must have at least one dimension (the '
                                     'categories).')
        batch = list(logits.shape)
        batch.pop(axis)
        shape = tuple(batch) if size is None else output_shape(
            size, 'categorical', logits_batch=np.empty(batch, dtype=np.bool_))
        return jax.random.categorical(self._key(key, 'categorical'), logits, axis=axis,
                                      shape=shape)

    # -- continuous distributions -----------------------------------------------------------

    def randn(self, *dn: int, size: Size = None, key=None, dtype=None):
        """Standard normal floats of shape ``dn`` (NumPy's ``randn(d0, d1, ...)``)."""
        shape = _shape_from_dims(dn, size, 'randn')
        return jax.random.normal(self._key(key, 'randn'), shape, _float(dtype))

    def standard_normal(self, size: Size = None, key=None, dtype=None):
        """Standard normal floats (mean 0, variance 1)."""
        shape = size_to_shape(size, 'standard_normal')
        return jax.random.normal(self._key(key, 'standard_normal'), shape, _float(dtype))

    def normal(self, loc=0.0, scale=1.0, size: Size = None, key=None, dtype=None):
        """Normal (Gaussian) floats with mean ``loc`` and standard deviation ``scale``."""
        shape = output_shape(size, 'normal', loc=loc, scale=scale)
        dtype = _float(dtype)
        z = jax.random.normal(self._key(key, 'normal'), shape, dtype)
        return _loc_scale(z, loc, scale, dtype)

    def lognormal(self, mean=0.0, sigma=1.0, size: Size = None, key=None, dtype=None):
        """``exp(normal(mean, sigma))``: ``mean`` and ``sigma`` are those of the logarithm."""
        shape = output_shape(size, 'lognormal', mean=mean, sigma=sigma)
        dtype = _float(dtype)
        z = jax.random.normal(self._key(key, 'lognormal'), shape, dtype)
        return jnp.exp(_loc_scale(z, mean, sigma, dtype))

    def truncated_normal(self, lower, upper, size: Size = None, loc=0.0, scale=1.0, key=None,
                         dtype=None):
        """Normal floats with mean ``loc`` and std ``scale``, restricted to ``[lower, upper]``.

        ``lower`` and ``upper`` are in the units of the output (not standardized).
        """
        shape = output_shape(size, 'truncated_normal', lower=lower, upper=upper, loc=loc,
                             scale=scale)
        dtype = _float(dtype)
        loc, scale = jnp.asarray(loc, dtype), jnp.asarray(scale, dtype)
        z = jax.random.truncated_normal(
            self._key(key, 'truncated_normal'), (jnp.asarray(lower, dtype) - loc) / scale,
            (jnp.asarray(upper, dtype) - loc) / scale, shape, dtype)
        return z * scale + loc

    def exponential(self, scale=1.0, size: Size = None, key=None, dtype=None):
        """Exponential floats with mean ``scale`` (NumPy's parameter, ``1 / rate``)."""
        shape = output_shape(size, 'exponential', scale=scale)
        dtype = _float(dtype)
        e = jax.random.exponential(self._key(key, 'exponential'), shape, dtype)
        return e if _is_python_one(scale) else e * jnp.asarray(scale, dtype)

    def standard_exponential(self, size: Size = None, key=None, dtype=None):
        """Exponential floats with mean 1."""
        return self.exponential(1.0, size=size, key=key, dtype=dtype)

    def gamma(self, shape, scale=1.0, size: Size = None, key=None, dtype=None):
        """Gamma floats with shape ``shape`` (k) and scale ``scale`` (theta): mean ``k * theta``.

        Note that ``shape`` is the distribution's parameter, as in NumPy; the output shape is
        ``size``.
        """
        out = output_shape(size, 'gamma', shape=shape, scale=scale)
        dtype = _float(dtype)
        g = jax.random.gamma(self._key(key, 'gamma'), jnp.asarray(shape, dtype), out, dtype)
        return g if _is_python_one(scale) else g * jnp.asarray(scale, dtype)

    def standard_gamma(self, shape, size: Size = None, key=None, dtype=None):
        """Gamma floats with scale 1."""
        return self.gamma(shape, 1.0, size=size, key=key, dtype=dtype)

    def beta(self, a, b, size: Size = None, key=None, dtype=None):
        """Beta floats in ``[0, 1]`` with parameters ``a``, ``b``: mean ``a / (a + b)``."""
        shape = output_shape(size, 'beta', a=a, b=b)
        dtype = _float(dtype)
        return jax.random.beta(self._key(key, 'beta'), jnp.asarray(a, dtype),
                               jnp.asarray(b, dtype), shape, dtype)

    # -- discrete counts --------------------------------------------------------------------

    def poisson(self, lam=1.0, size: Size = None, key=None, dtype=None):
        """Poisson counts with rate (and mean) ``lam``."""
        shape = output_shape(size, 'poisson', lam=lam)
        return jax.random.poisson(self._key(key, 'poisson'), lam, shape,
                                  _int(dtype, 'poisson'))

    def binomial(self, n, p, size: Size = None, key=None, dtype=None):
        """Binomial counts: successes in ``n`` trials of probability ``p`` (mean ``n * p``)."""
        shape = output_shape(size, 'binomial', n=n, p=p)
        fdtype = _float(None)
        counts = jax.random.binomial(self._key(key, 'binomial'), jnp.asarray(n, fdtype),
                                     jnp.asarray(p, fdtype), shape, fdtype)
        return counts.astype(_int(dtype, 'binomial'))


def _float(dtype):
    """The float dtype to draw in: JAX's default float (float32 unless x64) for ``None``."""
    if dtype is None:
        return jax.dtypes.canonicalize_dtype(float)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ArgumentTypeError(
            f'expected a floating dtype for this sampler, got {dtype}. Draw floats '
            f'and cast (`.astype(...)`), or use randint for integers.')
    return dtype


def _int(dtype, where: str):
    if dtype is None or dtype is int:
        return jax.dtypes.canonicalize_dtype(int)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ArgumentTypeError(f'{where}: dtype must be an integer dtype, got {dtype}.')
    return dtype


def _is_python_one(x) -> bool:
    return type(x) in (int, float) and x == 1


def _loc_scale(z, loc, scale, dtype):
    # Skip the arithmetic for the defaults, so `normal()` is bit-identical to jax.random.normal.
    if not _is_python_one(scale):
        z = z * jnp.asarray(scale, dtype)
    if not (type(loc) in (int, float) and loc == 0):
        z = z + jnp.asarray(loc, dtype)
    return z


def _shape_from_dims(dn: tuple, size, where: str) -> tuple[int, ...]:
    if dn and size is not None:
        raise ArgumentTypeError(f'{where}: give the shape either as positional dimensions '
                                f'({where}(2, 3)) or as size=(2, 3), not both.')
    if dn:
        if len(dn) == 1 and not isinstance(dn[0], (int, np.integer)):
            raise ArgumentTypeError(
                f'{where} takes the dimensions as separate arguments, like NumPy: '
                f'{where}(2, 3), or size={dn[0]!r}; got {where}({dn[0]!r}).')
        return size_to_shape(dn, where)
    return size_to_shape(size, where)
