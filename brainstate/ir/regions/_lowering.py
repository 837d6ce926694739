"""What the lowering rules of the region kinds share: lower a pure body, then let JAX build the
control-flow equation.

Each rule lowers the region's (pure) bodies with :func:`~brainstate.ir.lower_subgraph`, then
traces a small wrapper calling ``lax.scan`` / ``lax.while_loop`` / ``lax.switch`` /
``jax.checkpoint`` on the lowered bodies, and splices the wrapper's equations into the program
(:func:`splice`). Going through the public ``lax`` functions (rather than writing ``scan_p``'s
params by hand) keeps lowering correct across JAX releases, at the price of re-binding each
body's equations once, which is cheap next to tracing the user's Python.

Body results are cast to the types the region declared (:func:`cast`: JAX's loops reject a
carry that comes back weakly typed when it went in strongly typed).
"""

from __future__ import annotations

import jax
import jax.extend.core as jex_core
from jax import lax

__all__ = ['cast', 'as_fun', 'splice', 'wrapper', 'lower_body']

_closed_call_p = jex_core.primitives.closed_call_p


def _struct(aval):
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)


def cast(values, avals):
    """Cast ``values`` to the dtypes of ``avals``, making weak types strong where the aval is
    strong (a weak target accepts either)."""
    out = []
    for value, aval in zip(values, avals):
        have = jax.typeof(value)
        if have.dtype != aval.dtype or (have.weak_type and not aval.weak_type):
            value = lax.convert_element_type(value, aval.dtype)
        out.append(value)
    return out


def as_fun(closed: jex_core.ClosedJaxpr):
    """A lowered body as a Python function of its inputs."""
    return jex_core.jaxpr_as_fun(closed)


def splice(node, wrapper: jex_core.ClosedJaxpr, invars, outvars) -> list:
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


def wrapper(fun, invars):
    """Trace ``fun`` on abstract values typed like ``invars`` into a ClosedJaxpr."""
    return jax.make_jaxpr(fun)(*[_struct(v.aval) for v in invars])


def lower_body(graph) -> jex_core.ClosedJaxpr:
    """A pure body as a ClosedJaxpr (inputs: the body's inputs; outputs: its outputs)."""
    from .._lower import lower_subgraph  # a late import: _lower asks the kinds for rules
    return lower_subgraph(graph)
