"""Argument checks shared by the samplers: turning seeds into keys and ``size=`` into shapes.

Each helper raises an error that names the sampler at fault and says what to pass instead, so a
typo in ``size=`` reads as ``brainstate.random.normal: size ...`` rather than a deep JAX trace.
"""

from __future__ import annotations

import operator
import secrets

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ArgumentTypeError, ArgumentValueError

__all__ = ['as_key', 'is_typed_key', 'random_seed', 'size_to_shape', 'output_shape']


def is_typed_key(x) -> bool:
    """Whether ``x`` is a typed JAX PRNG key array (dtype ``key<impl>``), concrete or traced."""
    dtype = getattr(x, 'dtype', None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def random_seed() -> int:
    """A fresh 32-bit seed from the operating system's entropy (like NumPy's unseeded RNG)."""
    return secrets.randbits(32)


def as_key(seed_or_key, where: str):
    """A typed PRNG key from an integer seed, a typed key, or legacy ``uint32[2]`` key data.

    Args:
      seed_or_key: an ``int`` (or integer scalar array, traced or not), a key made by
        ``jax.random.key``, or the raw data of an old-style ``jax.random.PRNGKey``.
      where: the name of the calling function, for error messages.
    """
    if is_typed_key(seed_or_key):
        return seed_or_key
    if isinstance(seed_or_key, (bool, np.bool_)):
        raise ArgumentTypeError(f'{where}: expected an integer seed or a JAX key, got a bool '
                                f'({seed_or_key!r}).')
    if isinstance(seed_or_key, (int, np.integer)):
        # Seeds outside 32 bits (e.g. `time.time_ns()`) are folded so jax.random.key accepts them
        # whether or not 64-bit mode is on.
        return jax.random.key(np.uint32(int(seed_or_key) % (1 << 32)))
    shape = np.shape(seed_or_key)
    dtype = jnp.result_type(seed_or_key) if hasattr(seed_or_key, 'dtype') else None
    if dtype is not None and jnp.issubdtype(dtype, jnp.integer):
        size = int(np.prod(shape))
        if size == 1:
            # A seed given as a 0-d or one-element integer array (np.array([42]) too).
            if isinstance(seed_or_key, (np.ndarray, np.generic)):
                return as_key(int(np.asarray(seed_or_key).reshape(())), where)
            return jax.random.key(jnp.reshape(seed_or_key, ()))
        if size == 2 and dtype == jnp.uint32:
            # Legacy key data (jax.random.PRNGKey, or jax.random.key_data of a key).
            return jax.random.wrap_key_data(jnp.reshape(jnp.asarray(seed_or_key), (2,)))
    raise ArgumentTypeError(
        f'{where}: expected an integer seed, a key from `jax.random.key(seed)`, or the uint32[2] '
        f'data of a `jax.random.PRNGKey`; got {type(seed_or_key).__name__}'
        f'{" of shape " + str(shape) + " and dtype " + str(dtype) if dtype is not None else ""}. '
        f'Example: `brainstate.random.seed(42)` or `key=jax.random.key(42)`.')


def size_to_shape(size, where: str) -> tuple[int, ...]:
    """NumPy's ``size=`` convention: ``None`` -> ``()``, ``n`` -> ``(n,)``, a sequence -> tuple."""
    if size is None:
        return ()
    try:
        dims = (operator.index(size),)
    except TypeError:
        try:
            dims = tuple(operator.index(d) for d in size)
        except TypeError:
            raise ArgumentTypeError(
                f'{where}: size must be None, a non-negative int or a tuple of them (the shape of '
                f'the output), got {size!r}. Example: size=(3, 4). Inside a traced function the '
                f'size must be a Python value, not an array.') from None
    for d in dims:
        if d < 0:
            raise ArgumentValueError(
                f'{where}: size must not contain negative numbers, got {size!r}.')
    return dims


def output_shape(size, where: str, **params) -> tuple[int, ...]:
    """The output shape of a sampler with array parameters ``params`` (NumPy's rules).

    With ``size=None`` the parameters' shapes broadcast together; with a ``size`` every parameter
    must broadcast to exactly that shape.
    """
    shapes = {name: np.shape(p) for name, p in params.items() if p is not None}
    if size is None:
        try:
            return tuple(np.broadcast_shapes(*shapes.values()))
        except ValueError:
            raise ArgumentValueError(
                f'{where}: the parameters have shapes that do not broadcast together '
                f'({_describe(shapes)}).') from None
    shape = size_to_shape(size, where)
    for name, s in shapes.items():
        try:
            ok = np.broadcast_shapes(s, shape) == shape
        except ValueError:
            ok = False
        if not ok:
            raise ArgumentValueError(
                f'{where}: parameter `{name}` has shape {s}, which does not broadcast to '
                f'size={shape}. Pass a size whose trailing dimensions match the parameters, or '
                f'size=None to draw one sample per parameter entry.')
    return shape


def _describe(shapes: dict) -> str:
    return ', '.join(f'{name}: {s}' for name, s in shapes.items())
