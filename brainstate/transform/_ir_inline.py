"""inline_jit: expand the nested ``jit`` calls of a jaxpr into its own equations."""

from __future__ import annotations

from typing import Callable

from jax.extend import core as jex_core

__all__ = ['inline_jit']

_JIT_NAMES = ('jit', 'pjit')


def _fresh(v, renamed: dict):
    if isinstance(v, jex_core.Var) and type(v).__name__ != 'DropVar':
        new = renamed.get(id(v))
        if new is None:
            new = renamed[id(v)] = jex_core.Var(v.aval)
        return new
    return v


def _inline(jaxpr, should_expand, env: dict):
    def sub(a):
        return env.get(id(a), a) if isinstance(a, jex_core.Var) else a

    eqns = []
    for eqn in jaxpr.eqns:
        invars = [sub(a) for a in eqn.invars]
        inner = eqn.params.get('jaxpr') if eqn.primitive.name in _JIT_NAMES else None
        if inner is not None and not getattr(inner, 'consts', ()) and \
                (should_expand is None or should_expand(eqn)):
            body = inner.jaxpr if hasattr(inner, 'jaxpr') else inner
            # Fresh variables for every expansion: the same jitted function may be called
            # (and inlined) more than once.
            inner_env = {id(v): a for v, a in zip(body.invars, invars)}
            renamed: dict = {}
            for inner_eqn in _inline(body, should_expand, {}).eqns:
                new_in = [inner_env.get(id(a), renamed.get(id(a), a))
                          if isinstance(a, jex_core.Var) else a for a in inner_eqn.invars]
                new_out = [_fresh(v, renamed) for v in inner_eqn.outvars]
                eqns.append(inner_eqn.replace(invars=new_in, outvars=new_out))
            for outer_v, inner_a in zip(eqn.outvars, body.outvars):
                if isinstance(inner_a, jex_core.Var):
                    inner_a = inner_env.get(id(inner_a), renamed.get(id(inner_a), inner_a))
                env[id(outer_v)] = inner_a
            continue
        eqns.append(eqn.replace(invars=invars))
    return jaxpr.replace(eqns=eqns, outvars=[sub(a) for a in jaxpr.outvars])


def inline_jit(jaxpr, should_expand: Callable | None = None):
    """``jaxpr`` (a Jaxpr or ClosedJaxpr, returned in kind) with the ``jit`` equations for
    which ``should_expand(eqn)`` holds (all of them by default) replaced by their bodies,
    recursively. Calls with constants of their own are kept.

    Example::

        flat = brainstate.transform.inline_jit(jax.make_jaxpr(f)(x))
    """
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        return jex_core.ClosedJaxpr(_inline(jaxpr.jaxpr, should_expand, {}), jaxpr.consts)
    if not isinstance(jaxpr, jex_core.Jaxpr):
        from ._ir_utils import IRValidationError
        raise IRValidationError(f'inline_jit expects a Jaxpr or ClosedJaxpr, got '
                                f'{type(jaxpr).__name__}.')
    return _inline(jaxpr, should_expand, {})
