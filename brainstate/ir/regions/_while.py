"""The ``while`` region: ``brainstate.transform.while_loop`` (a loop until a condition fails).

Signature (params ``cond_nconsts``, ``body_nconsts``)::

    operands  cond_consts[cond_nconsts]  body_consts[body_nconsts]  carries[n]
    cond      cond_consts                carries    -> pred (bool[])
    body      body_consts                carries    -> carries
    results   carries[n]

Carry ``j`` is operand ``cond_nconsts + body_nconsts + j``, input ``cond_nconsts + j`` of the
condition, input ``body_nconsts + j`` of the body, body output ``j`` and result ``j``; the number
of carries is the number of results. Lowers to ``lax.while_loop``.

hoist-states: a state the body writes becomes a carry; the states the condition or the body
only read become their consts. A state written in the condition is an error. Batching: when the
predicate is batched, lanes stop at different iterations and every carry is batched.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from ..._errors import StateValueError
from ._hoisting import flat_values, hoist_body, order_inputs, replace_region, set_results, \
    state_avals
from ._kind import BodySignature, RegionKind, RegionSignature, register_region_kind
from ._lowering import as_fun, cast, lower_body, splice, wrapper
from ._scan import carry_inputs, leaves_of

__all__ = ['WhileKind', 'WHILE']


class WhileKind(RegionKind):
    """A loop while a condition holds: a condition body and a loop body over shared carries."""

    name = 'while'
    summary = 'a loop while a condition holds (lax.while_loop)'
    num_bodies = 2

    def signature(self, node) -> RegionSignature:
        cn, bn = node.params['cond_nconsts'], node.params['body_nconsts']
        n = len(node.outputs)
        first = cn + bn
        operands = {'cond_consts': slice(0, cn), 'body_consts': slice(cn, first),
                    'carries': slice(first, first + n)}
        results = {'carries': slice(0, n)}
        carry_ops = list(range(first, first + n))
        cond = BodySignature(node.subgraphs[0],
                             {'consts': slice(0, cn), 'carries': slice(cn, cn + n)},
                             {'pred': slice(0, 1)}, list(range(cn)) + carry_ops, [None])
        body = BodySignature(node.subgraphs[1],
                             {'consts': slice(0, bn), 'carries': slice(bn, bn + n)},
                             {'carries': slice(0, n)}, list(range(cn, first)) + carry_ops,
                             list(range(n)))
        carries = [(first + j, (cn + j, bn + j), 1, j, j) for j in range(n)]
        return RegionSignature(self, node, operands, results, [cond, body], carries)

    insertable_groups = ('cond_consts', 'body_consts')

    def grow_params(self, node, group, count):
        key = 'cond_nconsts' if group == 'cond_consts' else 'body_nconsts'
        return dict(node.params, **{key: node.params[key] + count})

    def operand_body_groups(self, signature, group):
        return [(0, 'consts')] if group == 'cond_consts' else [(1, 'consts')]

    def update_params(self, node, removed_operands, removed_results):
        cn, bn = node.params['cond_nconsts'], node.params['body_nconsts']
        return dict(node.params,
                    cond_nconsts=cn - sum(1 for i in removed_operands if i < cn),
                    body_nconsts=bn - sum(1 for i in removed_operands if cn <= i < cn + bn))

    def check_extra(self, signature, fail, name_of):
        pred = signature.bodies[0].graph.outputs
        if len(pred) == 1 and (pred[0].aval.shape != () or pred[0].aval.dtype != jnp.bool_):
            fail(f'the condition must return one bool[] value, it returns '
                 f'{name_of(pred[0])}:{pred[0].aval.str_short()}.')

    def lower(self, node, invars, outvars):
        cond_body, loop_body = (lower_body(g) for g in node.subgraphs)
        p = node.params
        cn, bn = p['cond_nconsts'], p['body_nconsts']
        out_avals = [v.aval for v in node.outputs]
        run_cond, run_body = as_fun(cond_body), as_fun(loop_body)

        def fun(*ops):
            cond_consts, body_consts, init = ops[:cn], ops[cn:cn + bn], ops[cn + bn:]

            def cond(carry):
                pred, = run_cond(*cond_consts, *carry)
                return pred

            def body(carry):
                return cast(run_body(*body_consts, *carry), out_avals)

            return cast(lax.while_loop(cond, body, cast(init, out_avals)), out_avals)

        return splice(node, wrapper(fun, invars), invars, outvars)

    def hoist(self, scope, node):
        cond_body, loop_body = node.subgraphs
        in_cond = hoist_body(cond_body)
        if in_cond.outputs:
            state = in_cond.written[0]
            raise StateValueError(
                f'State {state.label()} is written inside the condition function of a '
                f'while_loop. The condition must only read states: move the update into the '
                f'loop body.')
        in_body = hoist_body(loop_body)
        if not in_cond.order and not in_body.order:
            return
        sig = self.signature(node)
        cond_at, body_at = sig.operand_groups['cond_consts'], sig.operand_groups['body_consts']
        cn, bn = cond_at.stop, body_at.stop - body_at.start
        written = in_body.written
        written_set = set(written)
        cond_reads = [s for s in in_cond.read if s not in written_set]
        body_reads = [s for s in in_body.read if s not in written_set]

        old = in_cond.original_inputs
        cond_consts = leaves_of(in_cond.inputs, cond_reads)
        order_inputs(cond_body, old[:cn] + cond_consts + old[cn:] +
                     carry_inputs(cond_body, in_cond, written))
        old = in_body.original_inputs
        body_consts = leaves_of(in_body.inputs, body_reads)
        carry_in = carry_inputs(loop_body, in_body, written)
        order_inputs(loop_body, old[:bn] + body_consts + old[bn:] + carry_in)
        loop_body.set_outputs(loop_body.outputs + leaves_of(in_body.outputs, written))

        operands = node.inputs
        new_inputs = (operands[cond_at] + flat_values(scope, cond_reads, node) +
                      operands[body_at] + flat_values(scope, body_reads, node) +
                      operands[body_at.stop:] + flat_values(scope, written, node))
        results = node.outputs
        avals = [v.aval for v in results] + state_avals(written)
        params = dict(node.params, cond_nconsts=cn + len(cond_consts),
                      body_nconsts=bn + len(body_consts))
        new = replace_region(scope, node, new_inputs, avals, params, list(range(len(results))))
        set_results(scope, written, new.outputs[len(results):])

    def batching(self, node, flags, analyze):
        sig = self.signature(node)
        cond_consts = flags[sig.operand_groups['cond_consts']]
        body_consts = flags[sig.operand_groups['body_consts']]
        carry = list(flags[sig.operand_groups['carries']])
        cond_body, loop_body = node.subgraphs
        while True:
            outs = analyze(loop_body, body_consts + carry)
            new = [a or b for a, b in zip(carry, outs)]
            if analyze(cond_body, cond_consts + new)[0]:
                # Lanes stop at different iterations: every carry differs per lane.
                new = [True] * len(new)
            if new == carry:
                return carry
            carry = new


WHILE = register_region_kind(WhileKind())
