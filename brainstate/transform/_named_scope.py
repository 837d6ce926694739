"""named_scope and named_call: name a function's computation in traces, profiles and the IR."""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax

__all__ = ['named_scope', 'named_call', 'fn_to_call']


def _ir_compilation() -> bool:
    try:
        from .. import environ
    except ImportError:
        return False
    try:
        return bool(environ.get('ir_compilation', False))
    except Exception:  # an environ without the key or with another signature
        return False


def _normalize_argnums(argnums, n_args: int) -> tuple:
    if argnums is None:
        return ()
    argnums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    return tuple(i + n_args if i < 0 else i for i in argnums)


def _normalize_argnames(argnames) -> tuple:
    if argnames is None:
        return ()
    return (argnames,) if isinstance(argnames, str) else tuple(argnames)


def fn_to_call(fn: Callable, name: str, static_argnums=None, static_argnames=None) -> Callable:
    """``fn`` run under ``jax.named_scope(name)``; with ``environ`` ``ir_compilation`` set, run
    through :func:`~brainstate.transform.jit` (named ``name``), one compiled function per
    static configuration (``static_argnums``/``static_argnames`` may be callables of the
    call's arguments). The wrapper keeps ``fn`` as ``.fn`` and binds as a method."""
    from ._jit import jit
    jit_cache: dict = {}

    def jitted_for(args, kwargs):
        nums = static_argnums(*args, **kwargs) if callable(static_argnums) else static_argnums
        names = static_argnames(*args, **kwargs) if callable(static_argnames) else \
            static_argnames
        key = (_normalize_argnums(nums, len(args)), _normalize_argnames(names))
        if key not in jit_cache:
            jit_cache[key] = jit(fn, name=name, static_argnums=key[0], static_argnames=key[1])
        return jit_cache[key]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _ir_compilation():
            return jitted_for(args, kwargs)(*args, **kwargs)
        with jax.named_scope(name):
            return fn(*args, **kwargs)

    wrapper.fn = fn
    wrapper._jit_cache = jit_cache
    return wrapper


def named_scope(name: str, static_argnums: int | Sequence[int] | Callable | None = None,
                static_argnames: str | Sequence[str] | Callable | None = None):
    """Decorator: give a function's computation the name ``name`` (see :func:`fn_to_call`).

    Example::

        @brainstate.transform.named_scope('update')
        def update(x):
            ...
    """
    def decorator(fn):
        return fn_to_call(fn, name, static_argnums, static_argnames)
    return decorator


def named_call(fun: Callable | None = None, *, name: str | None = None) -> Callable:
    """Run ``fun`` under ``jax.named_scope`` (default name: the function's), adding only a
    name: state reads and writes, and every transform around it, are unchanged.

    Usable bare (``@named_call``), with a name (``@named_call(name='block')``) or directly
    (``named_call(f, name='block')``).
    """
    if fun is None:
        return functools.partial(named_call, name=name)
    scope = name or getattr(fun, '__name__', 'named_call')

    @functools.wraps(fun)
    def wrapper(*args, **kwargs):
        with jax.named_scope(scope):
            return fun(*args, **kwargs)

    return wrapper
