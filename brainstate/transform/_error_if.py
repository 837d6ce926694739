"""jit_error_if: raise an error from compiled code when a traced condition holds."""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from ._unvmap import unvmap

__all__ = ['jit_error_if']


def _error_msg(msg: str, *args, **kwargs):
    """Raise ValueError with ``msg`` formatted by its arguments (``{}``/``{name}`` or ``%``)."""
    if args:
        try:
            text = msg.format(*args)
        except (IndexError, KeyError, ValueError):
            text = None
        if text is None or text == msg:
            try:
                text = msg % args
            except TypeError:
                text = f'{msg} {args}'
        msg = text
    elif kwargs:
        msg = msg.format(**kwargs)
    raise ValueError(msg)


def jit_error_if(pred, error: Callable | str, *err_args, **err_kwargs):
    """Raise ``error`` when ``pred`` is true, also inside ``jit``, loops and ``vmap``.

    Args:
      pred: a boolean (scalar or array: true if any element is; under ``vmap``, if any lane
        is).
      error: a function called with ``*err_args, **err_kwargs`` (concrete values) that
        raises, or a message (formatted with the arguments, ``'x={x}'``), raised as
        ValueError.
      *err_args, **err_kwargs: values (may be traced) handed to ``error``.

    Under compilation the error is raised by a host callback when the program runs; JAX
    reports it as a runtime error whose message includes ours.

    Example::

        brainstate.transform.jit_error_if(jnp.isnan(v).any(), 'V is NaN: {v}', v=v)
    """
    if isinstance(error, str):
        error = functools.partial(_error_msg, error)
    if not callable(error):
        raise TypeError(f'jit_error_if: error must be a function or a message, got '
                        f'{type(error).__name__}.')
    flag = unvmap(jnp.asarray(pred), op='any')

    def raise_it(args, kwargs):
        jax.debug.callback(lambda a, k: error(*a, **k), args, kwargs, ordered=False)

    def fine(args, kwargs):
        pass

    if isinstance(flag, jax.core.Tracer):
        unbatched = jax.tree.map(lambda x: unvmap(x, op='none') if isinstance(
            x, jax.core.Tracer) else x, (err_args, err_kwargs))
        jax.lax.cond(flag, raise_it, fine, *unbatched)
    elif bool(flag):
        error(*err_args, **err_kwargs)
