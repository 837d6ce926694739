"""Build a jaxpr from a list of equations (``eqns_to_jaxpr``, ``eqns_to_closed_jaxpr``)."""

from __future__ import annotations

from typing import Sequence

from jax.extend.core import ClosedJaxpr, Jaxpr, Var

from ._ir_utils import IRValidationError, check_all_vars

__all__ = ['eqns_to_jaxpr', 'eqns_to_closed_jaxpr']


def _resolve(eqns, invars, outvars, constvars):
    """The binder lists: given ones checked, missing ones inferred in a deterministic order
    (inputs: variables used but not produced, by first use; outputs: variables produced and
    never used, by production)."""
    produced = {id(v) for eqn in eqns for v in eqn.outvars}
    used, seen = [], set()
    for eqn in eqns:
        for v in eqn.invars:
            if isinstance(v, Var) and id(v) not in seen:
                seen.add(id(v))
                used.append(v)
    if invars is None:
        invars = [v for v in used if id(v) not in produced]
    else:
        invars = list(invars)
        check_all_vars(invars, 'invars')
    if constvars is None:
        given = {id(v) for v in invars}
        constvars = [v for v in used if id(v) not in produced and id(v) not in given]
    else:
        constvars = list(constvars)
        check_all_vars(constvars, 'constvars')
    if outvars is None:
        consumed = {id(v) for eqn in eqns for v in eqn.invars if isinstance(v, Var)}
        outvars = [v for eqn in eqns for v in eqn.outvars if id(v) not in consumed]
    else:
        outvars = list(outvars)
        check_all_vars(outvars, 'outvars')
    return constvars, invars, outvars


def eqns_to_jaxpr(eqns: Sequence, invars: Sequence | None = None,
                  outvars: Sequence | None = None, constvars: Sequence | None = None) -> Jaxpr:
    """A ``Jaxpr`` of ``eqns``; binder lists left as None are inferred (see :func:`_resolve`).

    Example::

        jaxpr = brainstate.transform.eqns_to_jaxpr(closed.jaxpr.eqns[:3])
    """
    eqns = list(eqns)
    constvars, invars, outvars = _resolve(eqns, invars, outvars, constvars)
    return Jaxpr(constvars=constvars, invars=invars, outvars=outvars, eqns=eqns)


def eqns_to_closed_jaxpr(eqns: Sequence, invars: Sequence | None = None,
                         outvars: Sequence | None = None, constvars: Sequence | None = None,
                         consts: Sequence | None = None) -> ClosedJaxpr:
    """A ``ClosedJaxpr`` of ``eqns`` with ``consts`` (one value per constvar)."""
    eqns = list(eqns)
    constvars, invars, outvars = _resolve(eqns, invars, outvars, constvars)
    consts = [] if consts is None else list(consts)
    if len(consts) != len(constvars):
        raise IRValidationError(f'consts length ({len(consts)}) does not match constvars '
                                f'length ({len(constvars)}).')
    return ClosedJaxpr(Jaxpr(constvars=constvars, invars=invars, outvars=outvars, eqns=eqns),
                       consts)
