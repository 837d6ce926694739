"""Lowering rules of the built-in regions: pure region nodes become ``lax`` control flow.

Each rule lowers the region's (pure) bodies with :func:`lower_subgraph`, then lets JAX build the
control-flow equation itself: it traces a small wrapper calling ``lax.scan`` /
``lax.while_loop`` / ``lax.switch`` / ``jax.checkpoint`` on the lowered bodies, and splices the
wrapper's equations into the program. Going through the public ``lax`` functions (rather than
writing ``scan_p``'s params by hand) keeps lowering correct across JAX releases, at the price of
re-binding each body's equations once, which is cheap next to tracing the user's Python.

Body results are cast to the types the region declared (JAX's loops reject a carry that comes
back weakly typed when it went in strongly typed).
"""

from __future__ import annotations

import jax
import jax.extend.core as jex_core
from jax import lax

from ._lower import REGION_LOWERING_RULES, lower_subgraph

__all__ = []

_closed_call_p = jex_core.primitives.closed_call_p


def _struct(aval):
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)


def _cast(values, avals):
    """Cast ``values`` to the dtypes of ``avals``, making weak types strong where the aval is
    strong (a weak target accepts either)."""
    out = []
    for value, aval in zip(values, avals):
        have = jax.typeof(value)
        if have.dtype != aval.dtype or (have.weak_type and not aval.weak_type):
            value = lax.convert_element_type(value, aval.dtype)
        out.append(value)
    return out


def _as_fun(closed: jex_core.ClosedJaxpr):
    return jex_core.jaxpr_as_fun(closed)


def _splice(node, wrapper: jex_core.ClosedJaxpr, invars, outvars) -> list:
    """The equations of ``wrapper`` with its inputs renamed to ``invars`` and its results to
    ``outvars``; a ``closed_call`` of it when renaming is not possible."""
    jaxpr = wrapper.jaxpr
    producers = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for j, var in enumerate(eqn.outvars):
            producers[var] = (i, j)
    renames, ok = {}, not wrapper.consts
    for var, target in zip(jaxpr.outvars, outvars):
        if not isinstance(var, jex_core.Var) or var not in producers or var in renames or \
                var.aval.dtype != target.aval.dtype or var.aval.shape != target.aval.shape:
            ok = False
            break
        renames[var] = target
    if not ok:
        return [jex_core.new_jaxpr_eqn(list(invars), list(outvars), _closed_call_p,
                                       {'call_jaxpr': wrapper}, wrapper.effects,
                                       node.source_info)]
    subst = dict(zip(jaxpr.invars, invars))
    subst.update(renames)
    eqns = []
    for eqn in jaxpr.eqns:
        new_in = [subst.get(a, a) if isinstance(a, jex_core.Var) else a for a in eqn.invars]
        new_out = [subst.get(v, v) for v in eqn.outvars]
        eqns.append(eqn.replace(invars=new_in, outvars=new_out))
    return eqns


def _wrapper(fun, invars):
    return jax.make_jaxpr(fun)(*[_struct(v.aval) for v in invars])


def lower_scan(node, invars, outvars):
    body = lower_subgraph(node.subgraphs[0])
    p = node.params
    nc, nk = p['num_consts'], p['num_carry']
    out_avals = [v.aval for v in node.outputs]
    carry_avals = out_avals[:nk]
    run_body = _as_fun(body)

    def fun(*ops):
        consts, init, xs = ops[:nc], ops[nc:nc + nk], ops[nc + nk:]

        def step(carry, x):
            outs = run_body(*consts, *carry, *x)
            return _cast(outs[:nk], carry_avals), list(outs[nk:])

        carry, ys = lax.scan(step, _cast(init, carry_avals), list(xs), length=p['length'],
                             reverse=p['reverse'], unroll=p['unroll'])
        return _cast(list(carry) + list(ys), out_avals)

    return _splice(node, _wrapper(fun, invars), invars, outvars)


def lower_while(node, invars, outvars):
    cond_body, loop_body = (lower_subgraph(g) for g in node.subgraphs)
    p = node.params
    cn, bn = p['cond_nconsts'], p['body_nconsts']
    out_avals = [v.aval for v in node.outputs]
    run_cond, run_body = _as_fun(cond_body), _as_fun(loop_body)

    def fun(*ops):
        cond_consts, body_consts, init = ops[:cn], ops[cn:cn + bn], ops[cn + bn:]

        def cond(carry):
            pred, = run_cond(*cond_consts, *carry)
            return pred

        def body(carry):
            return _cast(run_body(*body_consts, *carry), out_avals)

        return _cast(lax.while_loop(cond, body, _cast(init, out_avals)), out_avals)

    return _splice(node, _wrapper(fun, invars), invars, outvars)


def lower_cond(node, invars, outvars):
    branches = [_as_fun(lower_subgraph(g)) for g in node.subgraphs]
    out_avals = [v.aval for v in node.outputs]

    def make(run):
        return lambda *ops: _cast(run(*ops), out_avals)

    def fun(index, *ops):
        if len(branches) == 1:
            return make(branches[0])(*ops)
        return lax.switch(index, [make(b) for b in branches], *ops)

    return _splice(node, _wrapper(fun, invars), invars, outvars)


def lower_checkpoint(node, invars, outvars):
    run = _as_fun(lower_subgraph(node.subgraphs[0]))
    p = node.params
    out_avals = [v.aval for v in node.outputs]
    inner = jax.checkpoint(lambda *ops: _cast(run(*ops), out_avals),
                           prevent_cse=p.get('prevent_cse', True), policy=p.get('policy'))
    return _splice(node, _wrapper(lambda *ops: inner(*ops), invars), invars, outvars)


REGION_LOWERING_RULES.update({
    'scan': lower_scan,
    'while': lower_while,
    'cond': lower_cond,
    'checkpoint': lower_checkpoint,
})
