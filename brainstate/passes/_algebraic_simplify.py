"""algebraic-simplify: arithmetic identities that give the same bits for every input.

``x + 0``, ``0 + x``, ``x - 0``, ``x * 1``, ``1 * x`` and ``x / 1`` become ``x``; for integers
and booleans ``x * 0`` and ``0 * x`` become ``0``, and ``x - x`` becomes ``0``. The constant must
be a scalar literal, and ``x`` must have the result's exact type (shape, dtype, weak type).

Floats keep IEEE semantics: ``0 * x`` is NaN for an infinite or NaN ``x`` and ``x - x`` NaN for
an infinite one, so neither is rewritten; ``-0.0 + 0.0`` is ``+0.0``, so ``x + 0`` is rewritten
only when the zero is ``-0.0`` (and ``x - 0`` only when it is ``+0.0``). With
``signed_zeros=False`` the sign of a zero result may change (``x + 0.0`` becomes ``x``): the
published ``brainstate.transform.algebraic_simplification`` does so. Recurses into region bodies.
"""

from __future__ import annotations

import numpy as np

from ..ir import Literal
from ._pass import PassStatistics, register

__all__ = ['algebraic_simplify']


def _scalar(value):
    """The value of a scalar literal operand as a NumPy scalar, or None."""
    if type(value) is not Literal or value.aval.shape != ():
        return None
    try:
        return np.asarray(value.val, dtype=value.aval.dtype)[()]
    except (TypeError, ValueError):  # an extended dtype (a PRNG key)
        return None


def _is(value, number) -> bool:
    scalar = _scalar(value)
    return scalar is not None and bool(scalar == number)


def _exact_integer(dtype) -> bool:
    try:
        return np.issubdtype(dtype, np.integer) or dtype == np.bool_
    except TypeError:
        return False


def _zero_sign_ok(zero, negative: bool, signed_zeros: bool) -> bool:
    """Whether adding (negative=True: a ``-0.0`` is needed) or subtracting (``+0.0`` needed)
    this zero leaves every float unchanged, bits included."""
    scalar = _scalar(zero)
    if not signed_zeros or _exact_integer(scalar.dtype):
        return True
    parts = (scalar.real, scalar.imag) if np.iscomplexobj(scalar) else (scalar,)
    return all(bool(np.signbit(p)) == negative for p in parts)


def _simplified(node, signed_zeros: bool):
    """What the node's single result equals (a Value or a Literal), or None."""
    name = node.op.name
    if name not in ('add', 'sub', 'mul', 'div') or len(node.inputs) != 2:
        return None
    lhs, rhs = node.inputs
    out = node.outputs[0]
    integer = _exact_integer(out.aval.dtype)
    same = None
    if name == 'add':
        if _is(lhs, 0) and _zero_sign_ok(lhs, True, signed_zeros):
            same = rhs
        elif _is(rhs, 0) and _zero_sign_ok(rhs, True, signed_zeros):
            same = lhs
    elif name == 'sub':
        if _is(rhs, 0) and _zero_sign_ok(rhs, False, signed_zeros):
            same = lhs
        elif lhs is rhs and integer and out.aval.shape == ():
            return Literal(np.zeros((), out.aval.dtype)[()], out.aval)
    elif name == 'mul':
        if integer and out.aval.shape == () and (_is(lhs, 0) or _is(rhs, 0)):
            return Literal(np.zeros((), out.aval.dtype)[()], out.aval)
        if _is(lhs, 1):
            same = rhs
        elif _is(rhs, 1):
            same = lhs
    elif name == 'div' and _is(rhs, 1):
        same = lhs
    if same is None or type(same) is Literal or same.aval != out.aval:
        return None
    return same


@register('algebraic-simplify')
def algebraic_simplify(graph, stats=None, *, signed_zeros: bool = True):
    """Replace x + 0, x - 0, x * 1, x / 1 by x (and integer x * 0, x - x by 0), exactly."""
    stats = PassStatistics() if stats is None else stats
    for node in graph.nodes:
        for sub in node.subgraphs:
            algebraic_simplify(sub, stats, signed_zeros=signed_zeros)
        if node.kind != 'primitive' or len(node.outputs) != 1 or node.has_effect:
            continue
        result = _simplified(node, signed_zeros)
        if result is None:
            continue
        graph.replace_node(node, [result])
        stats['operations simplified'] += 1
    return graph
