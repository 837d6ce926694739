"""What the lowering rules of the region kinds share: lower a pure body, then let JAX build the
control-flow equation.

Each rule lowers the region's (pure) bodies with :func:`~brainstate.ir.lower_subgraph`, then
traces a small wrapper calling ``lax.scan`` / ``lax.while_loop`` / ``lax.switch`` /
``jax.checkpoint`` on the lowered bodies, and splices the wrapper's equations into the program
(:func:`splice`). Going through the public ``lax`` functions keeps lowering correct across JAX
releases, at the price of re-binding each body's equations once. The exception is a scan whose
types already fit exactly: :func:`scan_equation` builds its equation directly, in the parameter
layout this JAX uses (learned once and checked against an equation ``lax.scan`` built); any
other layout takes the general path.

Body results are cast to the types the region declared (:func:`cast`: JAX's loops reject a
carry that comes back weakly typed when it went in strongly typed).
"""

from __future__ import annotations

import jax
import jax.extend.core as jex_core
from jax import lax
from ..._compat import trace_to_closed_jaxpr

__all__ = ['cast', 'as_fun', 'splice', 'wrapper', 'lower_body', 'scan_equation']

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
    """Trace ``fun`` on abstract values typed like ``invars`` into a ClosedJaxpr (its outputs:
    the leaves of what ``fun`` returns, as ``jax.make_jaxpr`` gives them)."""
    return trace_to_closed_jaxpr(lambda *ops: jax.tree.leaves(fun(*ops)),
                                 [_struct(v.aval) for v in invars])


def lower_body(graph) -> jex_core.ClosedJaxpr:
    """A pure body as a ClosedJaxpr (inputs: the body's inputs; outputs: its outputs)."""
    from .._lower import lower_subgraph  # a late import: _lower asks the kinds for rules
    return lower_subgraph(graph)


# -- scan without re-tracing: the equation built directly -----------------------------------------

# JAX's scan equation has had two parameter layouts: the counts ``num_consts``/``num_carry``
# (to JAX 0.10), and flat trees ``ft_in``/``ft_out`` saying which operands are consts, carries and
# xs and which results carries and ys (JAX 0.11+). The layout is learned once per process from
# a small ``lax.scan``, whose equation the builder for that layout must reproduce exactly.
_COMMON_SCAN_PARAMS = frozenset({'reverse', 'length', 'jaxpr', 'unroll'})


def _counts_layout(nc, nk, nx, ny):
    return {'num_consts': nc, 'num_carry': nk}


def _flat_tree_layout(nc, nk, nx, ny):
    from jax._src import flattree as ft  # (private: checked against lax.scan's equation)
    return {'ft_in': ft.pack((ft.nones(nc), ft.nones(nk), ft.nones(nx))),
            'ft_out': ft.pack((ft.nones(nk), ft.nones(ny).filter_with_mask([True] * ny)))}


_SCAN_LAYOUTS = {frozenset({'num_consts', 'num_carry'}): _counts_layout,
                 frozenset({'ft_in', 'ft_out'}): _flat_tree_layout}
_scan_template: list = []  # [(scan primitive, layout builder) or None], learned once


def _scan_primitive():
    """``(scan primitive, layout builder)`` when this JAX's scan equation has a layout
    :func:`scan_equation` can write (checked on a ``lax.scan`` with a const, two carries, an
    x and two ys, traced once); else None (every scan goes through ``lax.scan``)."""
    if not _scan_template:
        try:
            table = jax.numpy.arange(3.)

            def body(c, x):
                return (c[0] + x * table[0], c[1] * 2.), (x * 2., c[0])

            traced = jax.make_jaxpr(lambda c, xs: lax.scan(body, c, xs))(
                (jax.ShapeDtypeStruct((), 'float32'), jax.ShapeDtypeStruct((), 'float32')),
                jax.ShapeDtypeStruct((3,), 'float32'))
            eqn, = traced.jaxpr.eqns
            own = frozenset(eqn.params) - _COMMON_SCAN_PARAMS
            layout = _SCAN_LAYOUTS.get(own)
            ok = layout is not None and _COMMON_SCAN_PARAMS <= set(eqn.params) and \
                isinstance(eqn.params['jaxpr'], jex_core.ClosedJaxpr) and \
                layout(1, 2, 1, 2) == {k: eqn.params[k] for k in own}
            _scan_template.append((eqn.primitive, layout) if ok else None)
        except Exception:  # pragma: no cover - another JAX layout
            _scan_template.append(None)
    return _scan_template[0]


def _same(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and \
        getattr(a, 'weak_type', False) == getattr(b, 'weak_type', False)


def scan_equation(node, body: jex_core.ClosedJaxpr, invars, outvars, *, length, reverse,
                  unroll, num_consts, num_carry):
    """The ``scan`` equation of a lowered body, built directly, or None when this must go
    through ``lax.scan`` (see :func:`wrapper`).

    ``lax.scan`` would trace the body once more (evaluating its equations again) only to
    produce the same equation when the types already fit exactly: that is what this checks.
    The body has no constants or effects; the consts, carries and x slices going in have
    exactly the body's input types (weak types included); the carries coming out have the
    carries' types and the results have the region's. Anything else, or a JAX whose scan
    equation has other parameters, returns None.
    """
    learned = _scan_primitive()
    if learned is None or body.consts or body.jaxpr.effects:
        return None
    scan_p, layout = learned
    if type(unroll) is bool:  # as lax.scan normalizes it
        unroll = max(length, 1) if unroll else 1
    if type(unroll) is not int or unroll < 1 or type(length) is not int or length < 0:
        return None
    in_avals, out_avals = body.in_avals, body.out_avals
    n_fixed = num_consts + num_carry
    if len(in_avals) != len(invars) or len(out_avals) != len(outvars):
        return None
    for var, aval in zip(invars[:n_fixed], in_avals[:n_fixed]):
        if not _same(var.aval, aval):
            return None
    for var, aval in zip(invars[n_fixed:], in_avals[n_fixed:]):
        shape = var.aval.shape
        if not shape or shape[0] != length or not _same(
                jax.core.ShapedArray(shape[1:], var.aval.dtype,
                                     weak_type=getattr(var.aval, 'weak_type', False)), aval):
            return None
    for out, carry_in in zip(out_avals[:num_carry], in_avals[num_consts:n_fixed]):
        if not _same(out, carry_in):
            return None
    for var, aval in zip(outvars[:num_carry], out_avals[:num_carry]):
        if not _same(var.aval, aval):
            return None
    for var, aval in zip(outvars[num_carry:], out_avals[num_carry:]):
        if not _same(var.aval, jax.core.ShapedArray((length,) + tuple(aval.shape), aval.dtype,
                                                    weak_type=aval.weak_type)):
            return None
    params = dict(reverse=bool(reverse), length=length, jaxpr=body, unroll=unroll,
                  **layout(num_consts, num_carry, len(invars) - n_fixed,
                           len(outvars) - num_carry))
    return jex_core.new_jaxpr_eqn(list(invars), list(outvars), scan_p, params, frozenset(),
                                  node.source_info)
