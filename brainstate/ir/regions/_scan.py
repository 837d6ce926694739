"""The ``scan`` region: ``brainstate.transform.scan`` / ``for_loop`` (a loop of known length).

Signature (params ``num_consts``, ``num_carry``, ``length``, ``reverse``, ``unroll``)::

    operands  consts[num_consts]  carries[num_carry]  xs[...]         (xs: f32[length, ...])
    body      consts              carries             x  (one slice of each xs)
         ->   carries             ys                  (ys: one slice per iteration)
    results   carries             ys[...]                            (ys: f32[length, ...])

Operand ``i`` feeds body input ``i``. Carry ``j`` is operand ``num_consts + j``, body input
``num_consts + j``, body output ``j`` and result ``j``. Lowers to ``lax.scan``.

hoist-states: a state the body writes becomes a carry (after the user's carries); one it only
reads, a const (after the user's consts). Batching: a carry is batched if it starts batched or
the body makes it so (iterated to a fixed point).
"""

from __future__ import annotations

import jax
from jax import lax

from ._hoisting import (add_state_input, flat_values, hoist_body, order_inputs,
                        replace_region, set_results, state_avals)
from ._kind import BodySignature, RegionKind, RegionSignature, register_region_kind
from ._lowering import as_fun, cast, lower_body, scan_equation, splice, wrapper

__all__ = ['ScanKind', 'SCAN']


def leaves_of(mapping: dict, states: list) -> list:
    """The values of ``states`` in ``mapping``, concatenated."""
    return [v for s in states for v in mapping[s]]


def carry_inputs(body, found, states) -> list:
    """The body inputs of ``states`` as carries: the entry value when the body used it, else a
    fresh (unused) input."""
    out = []
    for state in states:
        out.extend(found.inputs[state] if state in found.inputs else add_state_input(body, state))
    return out


class ScanKind(RegionKind):
    """A loop of known length: consts, carries and sliced inputs in; carries and stacked
    outputs out."""

    name = 'scan'
    summary = 'a loop of known length over sliced inputs (lax.scan)'
    num_bodies = 1

    def signature(self, node) -> RegionSignature:
        nc, nk = node.params['num_consts'], node.params['num_carry']
        n_in, n_out = len(node.inputs), len(node.outputs)
        operands = {'consts': slice(0, nc), 'carries': slice(nc, nc + nk),
                    'xs': slice(nc + nk, n_in)}
        results = {'carries': slice(0, nk), 'ys': slice(nk, n_out)}
        body = BodySignature(node.subgraphs[0], operands, results, list(range(n_in)),
                             list(range(n_out)))
        carries = [(nc + j, (nc + j,), 0, j, j) for j in range(nk)]
        return RegionSignature(self, node, operands, results, [body], carries)

    insertable_groups = ('consts',)

    def grow_params(self, node, group, count):
        return dict(node.params, num_consts=node.params['num_consts'] + count)

    def update_params(self, node, removed_operands, removed_results):
        nc, nk = node.params['num_consts'], node.params['num_carry']
        consts = sum(1 for i in removed_operands if i < nc)
        carries = sum(1 for i in removed_operands if nc <= i < nc + nk)
        return dict(node.params, num_consts=nc - consts, num_carry=nk - carries)

    # -- verify --------------------------------------------------------------------------------

    def body_input_aval(self, signature, body, position, operand_aval):
        if position < signature.operand_groups['xs'].start:
            return operand_aval
        if not operand_aval.shape:
            return None  # reported by check_extra
        return jax.core.ShapedArray(operand_aval.shape[1:], operand_aval.dtype)

    def body_output_aval(self, signature, body, position, result_aval):
        if position < signature.result_groups['ys'].start:
            return result_aval
        if not result_aval.shape:
            return None
        return jax.core.ShapedArray(result_aval.shape[1:], result_aval.dtype)

    def check_extra(self, signature, fail, name_of):
        length = signature.node.params.get('length')
        for group, values in (('xs', signature.xs), ('ys', signature.ys)):
            for value in values:
                if not value.aval.shape or value.aval.shape[0] != length:
                    fail(f'{name_of(value)}:{value.aval.str_short()} is one of the {group}, so '
                         f'its leading axis must be the loop length {length}.')

    # -- lower ---------------------------------------------------------------------------------

    def lower(self, node, invars, outvars):
        body = lower_body(node.subgraphs[0])
        p = node.params
        nc, nk = p['num_consts'], p['num_carry']
        direct = scan_equation(node, body, invars, outvars, length=p['length'],
                               reverse=p['reverse'], unroll=p['unroll'], num_consts=nc,
                               num_carry=nk)
        if direct is not None:  # the types fit exactly: no re-trace through lax.scan
            return [direct]
        out_avals = [v.aval for v in node.outputs]
        carry_avals = out_avals[:nk]
        run_body = as_fun(body)

        def fun(*ops):
            consts, init, xs = ops[:nc], ops[nc:nc + nk], ops[nc + nk:]

            def step(carry, x):
                outs = run_body(*consts, *carry, *x)
                return cast(outs[:nk], carry_avals), list(outs[nk:])

            carry, ys = lax.scan(step, cast(init, carry_avals), list(xs), length=p['length'],
                                 reverse=p['reverse'], unroll=p['unroll'])
            return cast(list(carry) + list(ys), out_avals)

        return splice(node, wrapper(fun, invars), invars, outvars)

    # -- hoist-states --------------------------------------------------------------------------

    def hoist(self, scope, node):
        body, = node.subgraphs
        found = hoist_body(body)
        if not found.order:
            return
        sig = self.signature(node)
        consts_at, carries_at = sig.operand_groups['consts'], sig.operand_groups['carries']
        nc, nk = consts_at.stop, carries_at.stop - carries_at.start
        written = found.written
        read_only = [s for s in found.read if s not in found.outputs]
        old = found.original_inputs
        const_in = leaves_of(found.inputs, read_only)
        carry_in = carry_inputs(body, found, written)
        order_inputs(body, old[consts_at] + const_in + old[carries_at] + carry_in +
                     old[carries_at.stop:])
        outs = body.outputs
        body.set_outputs(outs[:nk] + leaves_of(found.outputs, written) + outs[nk:])

        operands = node.inputs
        new_inputs = (operands[consts_at] + flat_values(scope, read_only, node) +
                      operands[carries_at] + flat_values(scope, written, node) +
                      operands[carries_at.stop:])
        results = node.outputs
        n_state = len(carry_in)
        avals = ([v.aval for v in results[:nk]] + state_avals(written) +
                 [v.aval for v in results[nk:]])
        params = dict(node.params, num_consts=nc + len(const_in), num_carry=nk + n_state)
        result_map = list(range(nk)) + [nk + n_state + i for i in range(len(results) - nk)]
        new = replace_region(scope, node, new_inputs, avals, params, result_map)
        set_results(scope, written, new.outputs[nk:nk + n_state])

    # -- batching ------------------------------------------------------------------------------

    def batching(self, node, flags, analyze):
        sig = self.signature(node)
        consts = flags[sig.operand_groups['consts']]
        carry = list(flags[sig.operand_groups['carries']])
        xs = flags[sig.operand_groups['xs']]
        nk = len(carry)
        body = node.subgraphs[0]
        while True:  # a carry is batched if it starts batched or the body makes it so
            outs = analyze(body, consts + carry + xs)
            new = [a or b for a, b in zip(carry, outs[:nk])]
            if new == carry:
                return carry + outs[nk:]
            carry = new


SCAN = register_region_kind(ScanKind())
