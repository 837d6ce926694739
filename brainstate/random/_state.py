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

The read-split-write of the key is the one critical section of this module: it runs under
``_key_lock()`` (in :meth:`RandomState.split_key` and :meth:`RandomState.self_assign_multi_keys`),
so threads drawing from one state (typically the global ``DEFAULT``) never get the same key.
"""

from __future__ import annotations

import operator
import threading
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import environ
from .._errors import ArgumentTypeError, ArgumentValueError
from .. import _state as _state_module
from .._state import State
from . import _impl
# The published library's names for these helpers, importable from here as there.
from ._impl import _check_py_seq, _size2shape, formalize_key  # noqa: F401
from ._checks import as_key, is_typed_key, output_shape, random_seed, size_to_shape
from ._units import (_loc_scale_unit, _remove_unit_param, _scale_unit, is_quantity, shared_unit,
                     split_unit, with_unit)

__all__ = ['RandomState']

Size = Optional[Union[int, Sequence[int]]]

# Guards every read-modify-write of a RandomState's key (read, split, write back), so two threads
# drawing from one state never see the same key. One lock for all states: the critical section
# is a few Python operations, and a module-level lock keeps RandomState free of unpicklable
# attributes. Reentrant, so a guarded method may call another.
_KEY_LOCK = threading.RLock()


# The attributes a lazily keyed RandomState (the global DEFAULT) makes on first use, under
# _LAZY_LOCK.
_LAZY_ATTRIBUTES = frozenset({'_value', '_treedef', '_avals'})
_LAZY_LOCK = threading.Lock()


def _key_lock():
    """The lock around a key's read-split-write: the State module's eager-state lock where it
    has one (so random draws and other eager read-modify-writes share one lock), else
    ``_KEY_LOCK``."""
    eager_state_lock = getattr(_state_module, 'eager_state_lock', None)
    return eager_state_lock() if eager_state_lock is not None else _KEY_LOCK


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
      key: draw from this key (a key, key data or an int seed) instead; the state is then
        neither read nor advanced. Useful to reproduce one draw, or to manage keys by hand.
      dtype: the output dtype; floats default to ``brainstate.environ``'s float type (float32
        unless 64-bit precision is on), counts to its integer type.

    Location and scale parameters may be ``brainunit`` quantities (``2.0 * u.mV``): the samples
    then carry the unit. Shape, rate, count and probability parameters must be dimensionless.

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

    __module__ = 'brainstate.random'

    def __init__(self, seed_or_key: Any = None, name: Optional[str] = None):
        if seed_or_key is None:
            seed_or_key = random_seed()
        super().__init__(as_key(seed_or_key, 'RandomState'), name=name)
        self._backup = None

    # -- a key created on first use (the global DEFAULT) ------------------------------------

    @classmethod
    def _lazy(cls, name: Optional[str] = None) -> 'RandomState':
        """A RandomState with a fresh random seed whose key is made on first use, so that
        creating it (``import brainstate``) starts no JAX backend: ``XLA_FLAGS`` and JAX's
        configuration set after the import still apply."""
        self = cls.__new__(cls)
        d = self.__dict__
        d['_id'] = next(_state_module._ids)
        d['name'] = name
        d['_owner'] = None
        d['tag'] = None
        d['_metadata'] = {}
        d['_exposed'] = True
        d['_backup'] = None
        d['_lazy_key'] = True
        return self

    def _make_key(self):
        with _LAZY_LOCK:  # two threads' first draws make one key
            d = self.__dict__
            if d.get('_lazy_key'):
                # Its first use may be inside a trace (jax.jit, a brainstate transform): the
                # key is a concrete array all the same, as if made at import.
                with jax.ensure_compile_time_eval():
                    key = as_key(random_seed(), 'RandomState')
                leaves, treedef = jax.tree.flatten(key)
                d['_treedef'] = treedef
                d['_avals'] = tuple(_state_module._leaf_aval(leaf) for leaf in leaves)
                d['_value'] = key
                del d['_lazy_key']

    def __getattr__(self, name):
        # Only reached when the attribute is missing: a lazy key not made yet.
        if name in _LAZY_ATTRIBUTES and self.__dict__.get('_lazy_key'):
            self._make_key()
            return self.__dict__[name]
        raise AttributeError(f'{type(self).__name__!r} object has no attribute {name!r}')

    def has_value(self) -> bool:
        return bool(self.__dict__.get('_lazy_key')) or super().has_value()

    def __repr__(self):
        # The stored key, not `.value`: printing inside a trace must not record a state read.
        return f'{type(self).__name__}({self._value})'

    # -- the key ----------------------------------------------------------------------------

    def check_if_deleted(self):
        """Reseed with a fresh random seed if the key's buffer was deleted (e.g. donated)."""
        value = self._value
        if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
            if value.is_deleted():
                self.seed()

    def _numpy_keys(self, batch_size: int) -> np.ndarray:
        """``batch_size`` fresh ``uint32[2]`` key data drawn with NumPy (full 32-bit range)."""
        return np.random.randint(0, 2 ** 32, (batch_size, 2), dtype=np.uint32)

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

    def backup_key(self):
        """Remember the current key for :meth:`restore_key` (one backup at a time)."""
        if self._backup is not None:
            raise ValueError('RandomState.backup_key: the key is already backed up and has not '
                             'been restored; call restore_key() first.')
        self._backup = self.value

    def restore_key(self):
        """Go back to the key saved by :meth:`backup_key` (or by ``split_key(backup=True)``,
        ``self_assign_multi_keys(backup=True)``)."""
        if self._backup is None:
            raise ValueError('RandomState.restore_key: the key has not been backed up; call '
                             'backup_key() (or split_key(backup=True)) first.')
        self.value = self._backup
        self._backup = None

    def clone(self) -> 'RandomState':
        """A new, independent RandomState seeded with a key split from this one."""
        return type(self)(self.split_key())

    def split_key(self, n: Optional[int] = None, backup: bool = False):
        """Advance the state once and return fresh keys for your own use.

        Args:
          n: ``None`` for one new key (shape ``()``), or an int for ``n`` keys (shape ``(n,)``).
          backup: first save the current key, so :meth:`restore_key` rewinds to it.

        Returns:
          Keys independent of the ones the state will use next. ``split_key()`` is exactly the
          split each sampler does: ``new_state, returned = jax.random.split(old_state)``; with
          ``n``, ``jax.random.split(old_state, n + 1)`` gives the new state and the ``n`` keys.

        This is also how ``vmap`` gives each lane its own numbers: it takes
        ``split_key(axis_size)``, lets lane ``i`` draw from key ``i``, and discards the lanes'
        keys afterwards, so the state advances once per call.
        """
        if n is not None:
            n = _positive_int(n, 'RandomState.split_key')
        with _key_lock():
            keys = jr.split(_typed(self.value), 2 if n is None else n + 1)
            if backup:
                self.backup_key()
            self.value = keys[0]
        return keys[1] if n is None else keys[1:]

    def self_assign_multi_keys(self, n: int, backup: bool = True):
        """Replace the key by ``n`` keys split from it (the value gets shape ``(n,)``).

        Used to give each of ``n`` mapped lanes its own key; with ``backup`` (the default)
        :meth:`restore_key` afterwards goes back to the single key.
        """
        n = _positive_int(n, 'RandomState.self_assign_multi_keys')
        with _key_lock():
            keys = jr.split(_typed(self.value), n)
            if backup:
                self.backup_key()
            self.value = keys

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
        return jr.uniform(self._key(key, 'rand'), shape, _float(dtype))

    def random(self, size: Size = None, key=None, dtype=None):
        """Uniform floats in ``[0, 1)`` (NumPy's ``random(size)``)."""
        shape = size_to_shape(size, 'random')
        return jr.uniform(self._key(key, 'random'), shape, _float(dtype))

    def random_sample(self, size: Size = None, key=None, dtype=None):
        """An alias of :meth:`random`."""
        return self.random(size=size, key=key, dtype=dtype)

    def ranf(self, size: Size = None, key=None, dtype=None):
        """An alias of :meth:`random`."""
        return self.random(size=size, key=key, dtype=dtype)

    def sample(self, size: Size = None, key=None, dtype=None):
        """An alias of :meth:`random`."""
        return self.random(size=size, key=key, dtype=dtype)

    def uniform(self, low=0.0, high=1.0, size: Size = None, key=None, dtype=None):
        """Uniform floats in ``[low, high)``; ``low`` and ``high`` broadcast (NumPy's rules).

        With units, both bounds share one (a plain bound is read in the other's unit).
        """
        low, high, unit = _loc_scale_unit(_seq(low), _seq(high))
        shape = output_shape(size, 'uniform', low=low, high=high)
        r = _impl.uniform_kernel(self._key(key, 'uniform'), low, high, shape=shape,
                                 dtype=_float(dtype))
        return with_unit(r, unit)

    def randint(self, low, high=None, size: Size = None, dtype=None, key=None):
        """Uniform integers in ``[low, high)``; with one bound, in ``[0, low)`` (like NumPy)."""
        if high is None:
            low, high = 0, low
        low = _remove_unit_param('low', _seq(low))
        high = _remove_unit_param('high', _seq(high))
        shape = output_shape(size, 'randint', low=low, high=high)
        return _impl.randint_kernel(self._key(key, 'randint'), low, high, shape=shape,
                                    dtype=_int(dtype, 'randint'))

    def random_integers(self, low, high=None, size: Size = None, key=None, dtype=None):
        """Uniform integers in ``[low, high]`` (both included); with one bound, in ``[1, low]``."""
        if high is None:
            low, high = 1, low
        low = _remove_unit_param('low', _seq(low))
        high = _remove_unit_param('high', _seq(high))
        shape = output_shape(size, 'random_integers', low=low, high=high)
        return _impl.randint_kernel(self._key(key, 'random_integers'), low, jnp.asarray(high) + 1,
                                    shape=shape, dtype=_int(dtype, 'random_integers'))

    def choice(self, a, size: Size = None, replace: bool = True, p=None, key=None):
        """Random elements of ``a`` (an array, or an int ``n`` for ``arange(n)``).

        Args:
          a: the population (sampled along its first axis), or an int. Non-numeric arrays
            (strings, objects) work too and are sampled on the host.
          size: how many / what shape of draws; ``None`` for one element.
          replace: draw with replacement. Without it ``size`` may not exceed ``len(a)``.
          p: probabilities of each entry of ``a`` (sum to 1); ``None`` for uniform.
        """
        shape = size_to_shape(size, 'choice')
        p = _remove_unit_param('p', _seq(p))
        host = None
        if not isinstance(a, (int, np.integer)) and not isinstance(a, (jax.Array, jax.core.Tracer)) \
                and not is_quantity(a):
            host = np.asarray(a)
            if host.dtype.kind in 'biufc':
                host = None
        if host is not None:   # strings or objects: draw indices, gather on the host
            idx = self.choice(host.shape[0] if host.ndim else 0, size, replace, p, key)
            return host[np.asarray(idx)]
        a, unit = split_unit(_seq(a))
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
        r = jr.choice(self._key(key, 'choice'), a, shape, replace=replace, p=p)
        return with_unit(r, unit)

    def permutation(self, x, axis: int = 0, independent: bool = False, key=None):
        """A random permutation of ``x`` along ``axis``, or of ``arange(x)`` for an int ``x``.

        ``independent=True`` permutes each slice along ``axis`` independently.
        """
        x, unit = split_unit(_seq(x))
        if not isinstance(x, (int, np.integer)):
            x = jnp.asarray(x)
        r = jr.permutation(self._key(key, 'permutation'), x, axis=axis, independent=independent)
        return with_unit(r, unit)

    def shuffle(self, x, axis: int = 0, key=None):
        """``x`` with its entries shuffled along ``axis``, returned as a new array.

        JAX arrays are immutable, so unlike NumPy's ``shuffle`` this cannot work in place:
        use the result (``x = rng.shuffle(x)``).
        """
        return self.permutation(x, axis=axis, independent=False, key=key)

    def bernoulli(self, p=0.5, size: Size = None, key=None, check_valid: bool = True):
        """Booleans that are ``True`` with probability ``p`` (broadcast to ``size``).

        ``check_valid`` raises ``ValueError`` for a ``p`` outside ``[0, 1]``.
        """
        p = _remove_unit_param('p', _seq(p))
        if check_valid:
            _check('bernoulli', lambda p: (p < 0) | (p > 1), 'p must be within [0, 1]', p=p)
        shape = output_shape(size, 'bernoulli', p=p)
        return jr.bernoulli(self._key(key, 'bernoulli'), p, shape)

    def categorical(self, logits, axis: int = -1, size: Size = None, key=None):
        """Category indices drawn with probabilities ``softmax(logits)`` along ``axis``.

        With ``size=None`` one index per distribution (``logits.shape`` without ``axis``); a
        ``size`` must end with that batch shape.
        """
        logits = jnp.asarray(_remove_unit_param('logits', _seq(logits)))
        if logits.ndim == 0:
            raise ArgumentValueError('categorical: logits must have at least one dimension (the '
                                     'categories).')
        batch = list(logits.shape)
        batch.pop(axis)
        shape = tuple(batch) if size is None else output_shape(
            size, 'categorical', logits_batch=np.empty(batch, dtype=np.bool_))
        return jr.categorical(self._key(key, 'categorical'), logits, axis=axis, shape=shape)

    # -- continuous distributions -----------------------------------------------------------

    def randn(self, *dn: int, size: Size = None, key=None, dtype=None):
        """Standard normal floats of shape ``dn`` (NumPy's ``randn(d0, d1, ...)``)."""
        shape = _shape_from_dims(dn, size, 'randn')
        return jr.normal(self._key(key, 'randn'), shape, _float(dtype))

    def standard_normal(self, size: Size = None, key=None, dtype=None):
        """Standard normal floats (mean 0, variance 1)."""
        shape = size_to_shape(size, 'standard_normal')
        return jr.normal(self._key(key, 'standard_normal'), shape, _float(dtype))

    def normal(self, loc=None, scale=None, size: Size = None, key=None, dtype=None):
        """Normal (Gaussian) floats with mean ``loc`` (default 0) and std ``scale`` (default 1)."""
        return self._loc_scale_draw('normal', jr.normal, loc, scale, size, key, dtype)

    def laplace(self, loc=None, scale=None, size: Size = None, key=None, dtype=None):
        """Laplace (double exponential) floats with location ``loc`` and scale ``scale``."""
        return self._loc_scale_draw('laplace', jr.laplace, loc, scale, size, key, dtype)

    def logistic(self, loc=None, scale=None, size: Size = None, key=None, dtype=None):
        """Logistic floats with location ``loc`` and scale ``scale``."""
        return self._loc_scale_draw('logistic', jr.logistic, loc, scale, size, key, dtype)

    def gumbel(self, loc=None, scale=None, size: Size = None, key=None, dtype=None):
        """Gumbel (type I extreme value) floats with location ``loc`` and scale ``scale``."""
        return self._loc_scale_draw('gumbel', jr.gumbel, loc, scale, size, key, dtype)

    def _loc_scale_draw(self, where, sampler, loc, scale, size, key, dtype):
        loc, scale, unit = _loc_scale_unit(_seq(loc), _seq(scale))
        shape = output_shape(size, where, loc=loc, scale=scale)
        z = _impl.loc_scale_kernel(self._key(key, where), loc, scale, shape=shape,
                                   dtype=_float(dtype), sampler=sampler)
        return with_unit(z, unit)

    def lognormal(self, mean=None, sigma=None, size: Size = None, key=None, dtype=None):
        """``exp(normal(mean, sigma))``: ``mean`` and ``sigma`` are those of the logarithm."""
        dtype = _float(dtype)
        mean = _remove_unit_param('mean', _seq(mean))
        sigma = _remove_unit_param('sigma', _seq(sigma))
        shape = output_shape(size, 'lognormal', mean=mean, sigma=sigma)
        return _impl.loc_scale_kernel(self._key(key, 'lognormal'), mean, sigma, shape=shape,
                                      dtype=dtype, sampler=jr.normal, exp=True)

    def truncated_normal(self, lower, upper, size: Size = None, loc=0.0, scale=1.0, key=None,
                         dtype=None, check_valid: bool = True):
        """Normal floats with mean ``loc`` and std ``scale``, restricted to ``[lower, upper]``.

        ``lower`` and ``upper`` are in the units of the output (not standardized).
        ``check_valid`` raises ``ValueError`` when ``loc`` is more than 2 std outside the bounds
        (where the sampler loses accuracy).
        """
        (lower, upper, loc, scale), unit = shared_unit(_seq(lower), _seq(upper), _seq(loc),
                                                       _seq(scale))
        shape = output_shape(size, 'truncated_normal', lower=lower, upper=upper, loc=loc,
                             scale=scale)
        dtype = _float(dtype)
        if check_valid:
            _check('truncated_normal',
                   lambda lo, hi, m, s: (m < lo - 2 * s) | (m > hi + 2 * s),
                   'the mean is more than 2 std from [lower, upper]; the samples would be '
                   'inaccurate', lower=lower, upper=upper, loc=loc, scale=scale)
        z = _impl.truncated_normal_kernel(self._key(key, 'truncated_normal'), lower, upper, loc,
                                          scale, shape=shape, dtype=dtype)
        return with_unit(z, unit)

    def exponential(self, scale=None, size: Size = None, key=None, dtype=None):
        """Exponential floats with mean ``scale`` (NumPy's parameter, ``1 / rate``; default 1)."""
        scale, unit = _scale_unit(_seq(scale))
        shape = output_shape(size, 'exponential', scale=scale)
        e = _impl.loc_scale_kernel(self._key(key, 'exponential'), None, scale, shape=shape,
                                   dtype=_float(dtype), sampler=jr.exponential)
        return with_unit(e, unit)

    def standard_exponential(self, size: Size = None, key=None, dtype=None):
        """Exponential floats with mean 1."""
        return self.exponential(None, size=size, key=key, dtype=dtype)

    def gamma(self, shape, scale=None, size: Size = None, key=None, dtype=None):
        """Gamma floats with shape ``shape`` (k) and scale ``scale`` (theta): mean ``k * theta``.

        Note that ``shape`` is the distribution's parameter, as in NumPy; the output shape is
        ``size``. ``scale`` may carry a unit.
        """
        k = _remove_unit_param('shape', _seq(shape))
        scale, unit = _scale_unit(_seq(scale))
        out = output_shape(size, 'gamma', shape=k, scale=scale)
        g = _impl.gamma_kernel(self._key(key, 'gamma'), k, scale, shape=out, dtype=_float(dtype))
        return with_unit(g, unit)

    def standard_gamma(self, shape, size: Size = None, key=None, dtype=None):
        """Gamma floats with scale 1."""
        return self.gamma(shape, None, size=size, key=key, dtype=dtype)

    def beta(self, a, b, size: Size = None, key=None, dtype=None):
        """Beta floats in ``[0, 1]`` with parameters ``a``, ``b``: mean ``a / (a + b)``."""
        a = _remove_unit_param('a', _seq(a))
        b = _remove_unit_param('b', _seq(b))
        shape = output_shape(size, 'beta', a=a, b=b)
        dtype = _float(dtype)
        return jr.beta(self._key(key, 'beta'), jnp.asarray(a, dtype), jnp.asarray(b, dtype),
                       shape, dtype)

    def dirichlet(self, alpha, size: Size = None, key=None, dtype=None):
        """Probability vectors from the Dirichlet distribution with concentrations ``alpha``.

        The output has shape ``size + alpha.shape[-1:]`` (``size`` must broadcast with
        ``alpha``'s leading dimensions); each vector sums to 1.
        """
        alpha = jnp.asarray(_remove_unit_param('alpha', _seq(alpha)))
        if alpha.ndim == 0:
            raise ArgumentValueError('dirichlet: alpha must have at least one dimension (the '
                                     'categories), e.g. alpha=[1.0, 2.0, 3.0].')
        dtype = _float(dtype)
        shape = alpha.shape[:-1] if size is None else output_shape(
            size, 'dirichlet', alpha=np.empty(alpha.shape[:-1], np.bool_))
        return jr.dirichlet(self._key(key, 'dirichlet'), alpha.astype(dtype), shape, dtype)

    def pareto(self, a, size: Size = None, key=None, dtype=None):
        """Pareto floats ``>= 1`` with shape ``a``: density ``a / x^(a + 1)``.

        This is the classical Pareto distribution, as in the published BrainState library and
        ``jax.random.pareto``; NumPy's ``pareto`` is this minus 1 (the Lomax distribution).
        """
        a = _remove_unit_param('a', _seq(a))
        shape = output_shape(size, 'pareto', a=a)
        dtype = _float(dtype)
        return jr.pareto(self._key(key, 'pareto'), jnp.asarray(a, dtype), shape, dtype)

    def standard_cauchy(self, size: Size = None, key=None, dtype=None):
        """Standard Cauchy (Lorentz) floats."""
        shape = size_to_shape(size, 'standard_cauchy')
        return jr.cauchy(self._key(key, 'standard_cauchy'), shape, _float(dtype))

    def standard_t(self, df, size: Size = None, key=None, dtype=None):
        """Student's t floats with ``df`` degrees of freedom."""
        df = _remove_unit_param('df', _seq(df))
        shape = output_shape(size, 'standard_t', df=df)
        dtype = _float(dtype)
        return jr.t(self._key(key, 'standard_t'), jnp.asarray(df, dtype), shape, dtype)

    def t(self, df, size: Size = None, key=None, dtype=None):
        """Student's t floats with ``df`` degrees of freedom: ``normal * sqrt(df / chi2(df))``."""
        df = _remove_unit_param('df', _seq(df))
        shape = output_shape(size, 't', df=df)
        return _impl.t_kernel(self._key(key, 't'), df, shape=shape, dtype=_float(dtype))

    def chisquare(self, df, size: Size = None, key=None, dtype=None, check_valid: bool = True):
        """Chi-square floats with ``df`` degrees of freedom (any positive real): ``2 Gamma(df/2)``.

        ``check_valid`` raises ``ValueError`` for ``df <= 0``.
        """
        df = _remove_unit_param('df', _seq(df))
        if check_valid:
            _check('chisquare', lambda df: df <= 0, 'df must be > 0', df=df)
        shape = output_shape(size, 'chisquare', df=df)
        return _impl.chisquare_kernel(self._key(key, 'chisquare'), df, shape=shape,
                                      dtype=_float(dtype))

    def noncentral_chisquare(self, df, nonc, size: Size = None, key=None, dtype=None):
        """Non-central chi-square floats with ``df`` degrees of freedom and non-centrality
        ``nonc``."""
        df = _remove_unit_param('df', _seq(df))
        nonc = _remove_unit_param('nonc', _seq(nonc))
        shape = output_shape(size, 'noncentral_chisquare', df=df, nonc=nonc)
        return _impl.noncentral_chisquare_kernel(self._key(key, 'noncentral_chisquare'), df,
                                                 nonc, shape=shape, dtype=_float(dtype))

    def f(self, dfnum, dfden, size: Size = None, key=None, dtype=None):
        """F (Fisher-Snedecor) floats with ``dfnum`` and ``dfden`` degrees of freedom."""
        dfnum = _remove_unit_param('dfnum', _seq(dfnum))
        dfden = _remove_unit_param('dfden', _seq(dfden))
        shape = output_shape(size, 'f', dfnum=dfnum, dfden=dfden)
        return _impl.f(self._key(key, 'f'), dfnum, dfden, shape=shape, dtype=_float(dtype))

    def noncentral_f(self, dfnum, dfden, nonc, size: Size = None, key=None, dtype=None):
        """Non-central F floats (``dfnum``, ``dfden`` degrees of freedom, non-centrality
        ``nonc``)."""
        dfnum = _remove_unit_param('dfnum', _seq(dfnum))
        dfden = _remove_unit_param('dfden', _seq(dfden))
        nonc = _remove_unit_param('nonc', _seq(nonc))
        shape = output_shape(size, 'noncentral_f', dfnum=dfnum, dfden=dfden, nonc=nonc)
        return _impl.noncentral_f(self._key(key, 'noncentral_f'), dfnum, dfden, nonc,
                                  shape=shape, dtype=_float(dtype))

    def loggamma(self, a, size: Size = None, key=None, dtype=None):
        """Logarithms of Gamma(``a``) floats, accurate also for small ``a``."""
        a = _remove_unit_param('a', _seq(a))
        shape = output_shape(size, 'loggamma', a=a)
        dtype = _float(dtype)
        return jr.loggamma(self._key(key, 'loggamma'), jnp.asarray(a, dtype), shape, dtype)

    def rayleigh(self, scale=1.0, size: Size = None, key=None, dtype=None):
        """Rayleigh floats with scale ``scale`` (may carry a unit): ``scale sqrt(-2 log U)``."""
        scale, unit = _scale_unit(_seq(scale))
        shape = output_shape(size, 'rayleigh', scale=scale)
        x = _impl.rayleigh_kernel(self._key(key, 'rayleigh'), scale, shape=shape,
                                  dtype=_float(dtype))
        return with_unit(x, unit)

    def maxwell(self, size: Size = None, key=None, dtype=None):
        """Maxwell-Boltzmann speeds: the norm of a standard normal 3-vector."""
        shape = size_to_shape(size, 'maxwell')
        return _impl.maxwell_kernel(self._key(key, 'maxwell'), shape=shape, dtype=_float(dtype))

    def weibull(self, a, size: Size = None, key=None, dtype=None):
        """Weibull floats with shape ``a`` and scale 1: ``(-log(1 - U))^(1 / a)``.

        With a ``size``, ``a`` must be a scalar (as in the published library).
        """
        return self.weibull_min(a, None, size=size, key=key, dtype=dtype, _where='weibull')

    def weibull_min(self, a, scale=None, size: Size = None, key=None, dtype=None, *,
                    _where='weibull_min'):
        """Weibull floats with shape ``a`` and scale ``scale`` (may carry a unit)."""
        a = _remove_unit_param('a', _seq(a))
        scale, unit = _scale_unit(_seq(scale))
        if size is not None and np.size(a) > 1:
            raise ArgumentValueError(
                f'{_where}: `a` must be a scalar when size is given (got shape {np.shape(a)}); '
                f'pass size=None to draw one sample per entry of `a`.')
        shape = output_shape(size, _where, a=a, scale=scale)
        x = _impl.weibull_kernel(self._key(key, _where), a, scale, shape=shape,
                                 dtype=_float(dtype))
        return with_unit(x, unit)

    def triangular(self, left=0.0, mode=0.5, right=1.0, size: Size = None, key=None,
                   dtype=None):
        """Triangular floats on ``[left, right]`` peaking at ``mode`` (inverse-CDF sampling).

        Raises ``ValueError`` unless ``left <= mode <= right`` and ``left < right``.
        """
        (left, mode, right), unit = shared_unit(_seq(left), _seq(mode), _seq(right))
        _check('triangular', lambda lo, m, hi: (lo > m) | (m > hi) | (lo >= hi),
               'requires left <= mode <= right and left < right', left=left, mode=mode,
               right=right)
        shape = output_shape(size, 'triangular', left=left, mode=mode, right=right)
        r = _impl.triangular_kernel(self._key(key, 'triangular'), left, mode, right, shape=shape,
                                    dtype=_float(dtype))
        return with_unit(r, unit)

    def vonmises(self, mu, kappa, size: Size = None, key=None, dtype=None):
        """Von Mises (circular normal) angles in ``[-pi, pi)`` with mean ``mu`` and concentration
        ``kappa``; ``kappa = 0`` is uniform on the circle."""
        dtype = _float(dtype)
        mu, unit = _scale_unit(_seq(mu))
        kappa = _remove_unit_param('kappa', _seq(kappa))
        shape = output_shape(size, 'vonmises', mu=mu, kappa=kappa)
        angle = _impl.vonmises_kernel(self._key(key, 'vonmises'), mu, kappa, shape=shape,
                                      dtype=dtype)
        return with_unit(angle, unit)

    def wald(self, mean, scale, size: Size = None, key=None, dtype=None):
        """Wald (inverse Gaussian) floats with mean ``mean`` and shape ``scale`` (lambda).

        Michael, Schucany and Haas's method, as NumPy. ``mean`` and ``scale`` share a unit.
        """
        mean, scale, unit = _loc_scale_unit(_seq(mean), _seq(scale))
        shape = output_shape(size, 'wald', mean=mean, scale=scale)
        r = _impl.wald_kernel(self._key(key, 'wald'), mean, scale, shape=shape,
                              dtype=_float(dtype))
        return with_unit(r, unit)

    def orthogonal(self, n: int, size: Size = None, key=None, dtype=None):
        """Random orthogonal ``n x n`` matrices (Haar measure), shape ``size + (n, n)``."""
        try:
            n = operator.index(n)
        except TypeError:
            raise ArgumentTypeError(f'orthogonal: n must be a Python int (the matrix size), got '
                                    f'{n!r}.') from None
        shape = size_to_shape(size, 'orthogonal')
        return _impl.orthogonal_kernel(self._key(key, 'orthogonal'), n=n, shape=shape,
                                       dtype=_float(dtype))

    def multivariate_normal(self, mean, cov, size: Size = None, method: str = 'cholesky',
                            key=None, dtype=None):
        """Vectors from the multivariate normal with ``mean`` (``(..., n)``) and covariance
        ``cov`` (``(..., n, n)``), shape ``size + (n,)``.

        Args:
          method: the factorization of ``cov``: ``'cholesky'`` (fast, needs positive definite),
            ``'eigh'`` or ``'svd'`` (also positive semi-definite).

        With units, ``cov`` must carry the square of ``mean``'s unit.
        """
        if method not in ('svd', 'eigh', 'cholesky'):
            raise ValueError(f"multivariate_normal: method must be one of 'svd', 'eigh', "
                             f"'cholesky', got {method!r}.")
        dtype = _float(dtype)
        mean, unit = split_unit(_seq(mean))
        cov, cov_unit = split_unit(_seq(cov))
        if is_quantity_unit(unit):
            import brainunit
            if not is_quantity_unit(cov_unit) or cov_unit != unit ** 2:
                raise brainunit.UnitMismatchError(
                    f'multivariate_normal: cov must carry the square of the unit of mean '
                    f'({unit ** 2}), got {cov_unit}.')
        mean, cov = jnp.asarray(mean, dtype), jnp.asarray(cov, dtype)
        if mean.ndim < 1:
            raise ValueError(f'multivariate_normal: mean must have at least one dimension, got '
                             f'shape {mean.shape}.')
        if cov.ndim < 2:
            raise ValueError(f'multivariate_normal: cov must have at least two dimensions, got '
                             f'shape {cov.shape}.')
        n = mean.shape[-1]
        if cov.shape[-2:] != (n, n):
            raise ValueError(f'multivariate_normal: cov must have shape (..., {n}, {n}) to match '
                             f'mean of shape {mean.shape}, got {cov.shape}.')
        if size is None:
            shape = tuple(jax.lax.broadcast_shapes(mean.shape[:-1], cov.shape[:-2]))
        else:
            shape = size_to_shape(size, 'multivariate_normal')
            _impl._check_shape('multivariate_normal', shape, mean.shape[:-1], cov.shape[:-2])
        r = _impl.multivariate_normal_kernel(self._key(key, 'multivariate_normal'), mean, cov,
                                             shape=shape, dtype=dtype, method=method)
        return with_unit(r, unit)

    # -- discrete counts --------------------------------------------------------------------

    def poisson(self, lam=1.0, size: Size = None, key=None, dtype=None):
        """Poisson counts with rate (and mean) ``lam``."""
        lam = _remove_unit_param('lam', _seq(lam))
        shape = output_shape(size, 'poisson', lam=lam)
        return jr.poisson(self._key(key, 'poisson'), lam, shape, _int(dtype, 'poisson'))

    def binomial(self, n, p, size: Size = None, key=None, dtype=None, check_valid: bool = True):
        """Binomial counts: successes in ``n`` trials of probability ``p`` (mean ``n * p``)."""
        n = _remove_unit_param('n', _seq(n))
        p = _remove_unit_param('p', _seq(p))
        if check_valid:
            _check('binomial', lambda p: (p < 0) | (p > 1), 'p must be within [0, 1]', p=p)
        shape = output_shape(size, 'binomial', n=n, p=p)
        return _impl.binomial_kernel(self._key(key, 'binomial'), n, p, shape=shape,
                                     dtype=_int(dtype, 'binomial'), float_dtype=_float(None))

    def negative_binomial(self, n, p, size: Size = None, key=None, dtype=None):
        """Negative binomial counts: failures before the ``n``-th success of probability ``p``.

        Drawn as a Gamma-Poisson mixture (so ``n`` may be any positive real).
        """
        n = _remove_unit_param('n', _seq(n))
        p = _remove_unit_param('p', _seq(p))
        shape = output_shape(size, 'negative_binomial', n=n, p=p)
        return _impl.negative_binomial_kernel(self._key(key, 'negative_binomial'), n, p,
                                              shape=shape, dtype=_int(dtype, 'negative_binomial'),
                                              float_dtype=_float(None))

    def geometric(self, p, size: Size = None, key=None, dtype=None):
        """Geometric counts on ``{1, 2, ...}``: trials up to the first success of probability
        ``p`` (NumPy's convention, ``P(1) = p``). Raises ``ValueError`` unless ``0 < p <= 1``."""
        p = _remove_unit_param('p', _seq(p))
        _check('geometric', lambda p: (p <= 0) | (p > 1), 'p must be in (0, 1]', p=p)
        shape = output_shape(size, 'geometric', p=p)
        return _impl.geometric_kernel(self._key(key, 'geometric'), p, shape=shape,
                                      dtype=_int(dtype, 'geometric'), float_dtype=_float(None))

    def multinomial(self, n, pvals, size: Size = None, key=None, dtype=None,
                    check_valid: bool = True):
        """Counts of ``n`` draws among ``len(pvals)`` categories of probabilities ``pvals``.

        Args:
          n: the number of draws: an int or an integer array over the batch of ``pvals``. It
            must be concrete (not traced): it fixes how many draws the program makes.
          pvals: probabilities along the last axis (leading axes: a batch).
          size: the shape of the samples without the category axis (it must end with the
            batch shape of ``n`` and ``pvals``); the output has shape ``size + (k,)``.
          check_valid: raise ``ValueError`` if ``sum(pvals[..., :-1]) > 1``.
        """
        n = _remove_unit_param('n', _seq(n))
        pvals = jnp.asarray(_remove_unit_param('pvals', _seq(pvals)))
        if check_valid:
            _check('multinomial', lambda pv: np.sum(pv[..., :-1], axis=-1) > 1 + 1e-6,
                   'requires sum(pvals[..., :-1]) <= 1 for every distribution', pvals=pvals)
        if isinstance(n, jax.core.Tracer):
            raise ValueError('multinomial: the number of draws `n` must be concrete (a Python or '
                             'NumPy int or array), not a traced value: it fixes how many draws '
                             'the compiled program makes. Pass it as a static argument.')
        n_max = int(np.max(np.asarray(n)))
        batch = np.empty(jax.lax.broadcast_shapes(pvals.shape[:-1], np.shape(n)), np.bool_)
        shape = output_shape(size, 'multinomial', batch=batch)
        counts = _impl.multinomial(self._key(key, 'multinomial'), pvals, n, n_max=n_max,
                                   shape=shape)
        return counts.astype(_int(dtype, 'multinomial'))

    def zipf(self, a, size: Size = None, key=None, dtype=None):
        """Zipf counts ``k >= 1`` with ``P(k)`` proportional to ``k^-a``; raises ``ValueError``
        unless ``a > 1``."""
        a = _remove_unit_param('a', _seq(a))
        _check('zipf', lambda a: ~(a > 1), 'a must be greater than 1', a=a)
        shape = output_shape(size, 'zipf', a=a)
        return _impl.zipf(self._key(key, 'zipf'), a, shape=shape, dtype=_int(dtype, 'zipf'))

    def power(self, a, size: Size = None, key=None, dtype=None, check_valid: bool = True):
        """Floats in ``[0, 1]`` with density ``a x^(a - 1)``; ``check_valid`` raises
        ``ValueError`` for ``a <= 0``."""
        a = _remove_unit_param('a', _seq(a))
        if check_valid:
            _check('power', lambda a: a <= 0, 'a must be > 0', a=a)
        shape = output_shape(size, 'power', a=a)
        return _impl.power(self._key(key, 'power'), a, shape=shape, dtype=_float(dtype))

    def hypergeometric(self, ngood, nbad, nsample, size: Size = None, key=None, dtype=None):
        """Good items among ``nsample`` drawn without replacement from ``ngood`` good and
        ``nbad`` bad ones."""
        ngood = _remove_unit_param('ngood', _seq(ngood))
        nbad = _remove_unit_param('nbad', _seq(nbad))
        nsample = _remove_unit_param('nsample', _seq(nsample))
        shape = output_shape(size, 'hypergeometric', ngood=ngood, nbad=nbad, nsample=nsample)
        return _impl.hypergeometric(self._key(key, 'hypergeometric'), ngood, nbad, nsample,
                                    shape=shape, dtype=_int(dtype, 'hypergeometric'))

    def logseries(self, p, size: Size = None, key=None, dtype=None):
        """Logarithmic-series counts ``k >= 1`` with ``P(k) = -p^k / (k log(1 - p))``."""
        p = _remove_unit_param('p', _seq(p))
        shape = output_shape(size, 'logseries', p=p)
        return _impl.logseries(self._key(key, 'logseries'), p, shape=shape,
                               dtype=_int(dtype, 'logseries'))

    # -- PyTorch-style helpers --------------------------------------------------------------

    def rand_like(self, input, dtype=None, key=None):
        """Uniform ``[0, 1)`` floats with the shape of ``input`` (and its dtype by default)."""
        x, _ = split_unit(input)
        dtype = jnp.result_type(x) if dtype is None else dtype
        return self.random(np.shape(x), key=key).astype(dtype)

    def randn_like(self, input, dtype=None, key=None):
        """Standard normal floats with the shape of ``input`` (and its dtype by default)."""
        x, _ = split_unit(input)
        dtype = jnp.result_type(x) if dtype is None else dtype
        return self.randn(*np.shape(x), key=key).astype(dtype)

    def randint_like(self, input, low=0, high=None, dtype=None, key=None):
        """Integers in ``[low, high)`` with the shape of ``input``; ``high`` defaults to
        ``max(input)``."""
        if high is None:
            high = input.max() if is_quantity(input) else jnp.max(jnp.asarray(input))
        x, _ = split_unit(input)
        dtype = jnp.result_type(x) if dtype is None else dtype
        return self.randint(low, high, size=np.shape(x), key=key).astype(dtype)


# -- helpers ----------------------------------------------------------------------------------

def _positive_int(n, where: str) -> int:
    if isinstance(n, bool):
        raise ArgumentTypeError(f'{where}: n must be a positive integer, got {n!r}.')
    try:
        n = operator.index(n)
    except TypeError:
        raise ArgumentTypeError(f'{where}: n must be an integer (how many keys), got '
                                f'{n!r}.') from None
    if n < 1:
        raise ArgumentValueError(f'{where}: n must be a positive int (how many keys), got {n}.')
    return n


def _typed(key):
    """The stored key as a typed key (a value set by hand may be legacy ``uint32[2]`` data)."""
    return key if is_typed_key(key) else as_key(key, 'RandomState')


def _seq(x):
    """A Python list or tuple parameter as an array (brainunit quantities inside allowed)."""
    if isinstance(x, (list, tuple)):
        if any(is_quantity(v) for v in x):
            import brainunit
            return brainunit.math.asarray(x)
        return jnp.asarray(x)
    return x


def is_quantity_unit(unit) -> bool:
    return unit is not None and not unit.is_unitless


def _float(dtype):
    """The float dtype to draw in: ``brainstate.environ``'s default float for ``None``."""
    if dtype is None:
        return jnp.dtype(environ.dftype())
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ArgumentTypeError(
            f'expected a floating dtype for this sampler, got {dtype}. Draw floats '
            f'and cast (`.astype(...)`), or use randint for integers.')
    return dtype


def _int(dtype, where: str):
    """The integer dtype of counts: ``brainstate.environ``'s default int for ``None``."""
    if dtype is None or dtype is int:
        return jnp.dtype(environ.ditype())
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ArgumentTypeError(f'{where}: dtype must be an integer dtype, got {dtype}.')
    return dtype


def _check(where: str, is_bad, message: str, **params):
    """Raise ``ValueError`` if ``is_bad(*params)`` holds for any entry.

    Concrete parameters are checked right away (also while tracing: the error then stops the
    trace). Traced parameters are checked when the program runs, through
    ``brainstate.transform.jit_error_if`` where it exists.
    """
    values = list(params.values())
    leaves = jax.tree.leaves(values)
    if not any(isinstance(v, jax.core.Tracer) for v in leaves):
        arrays = [None if v is None else np.asarray(v) for v in values]
        if np.any(is_bad(*arrays)):
            shown = ', '.join(f'{k}={v}' for k, v in params.items())
            raise ArgumentValueError(f'{where}: {message}, but got {shown}.')
        return
    from .. import transform
    jit_error_if = getattr(transform, 'jit_error_if', None)
    if jit_error_if is not None:
        jit_error_if(jnp.any(is_bad(*[jnp.asarray(v) for v in values])),
                     f'{where}: {message}.')


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
