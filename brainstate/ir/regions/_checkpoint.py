"""The ``checkpoint`` region: ``brainstate.transform.checkpoint`` / ``remat`` (a body whose
intermediates are recomputed for the backward pass instead of stored).

Signature (params ``prevent_cse``, ``policy``)::

    operands  args[...]
    body      args -> results
    results   results[...]

Operand ``i`` feeds body input ``i``; body output ``j`` gives result ``j``. Lowers to
``jax.checkpoint``.

hoist-states: the states the body reads become operands (after the args), the states it
writes extra results (after the results).
"""

from __future__ import annotations

import jax

from ._hoisting import flat_values, hoist_body, order_inputs, replace_region, set_results, \
    state_avals
from ._kind import BodySignature, RegionKind, RegionSignature, register_region_kind
from ._lowering import as_fun, cast, lower_body, splice, wrapper
from ._scan import leaves_of

__all__ = ['CheckpointKind', 'CHECKPOINT']


class CheckpointKind(RegionKind):
    """A body recomputed in the backward pass (rematerialization)."""

    name = 'checkpoint'
    summary = 'a body recomputed for the backward pass (jax.checkpoint)'
    num_bodies = 1

    insertable_groups = ('args',)

    def signature(self, node) -> RegionSignature:
        n_in, n_out = len(node.inputs), len(node.outputs)
        operands = {'args': slice(0, n_in)}
        results = {'results': slice(0, n_out)}
        body = BodySignature(node.subgraphs[0], operands, results, list(range(n_in)),
                             list(range(n_out)))
        return RegionSignature(self, node, operands, results, [body])

    def lower(self, node, invars, outvars):
        run = as_fun(lower_body(node.subgraphs[0]))
        p = node.params
        out_avals = [v.aval for v in node.outputs]
        inner = jax.checkpoint(lambda *ops: cast(run(*ops), out_avals),
                               prevent_cse=p.get('prevent_cse', True), policy=p.get('policy'))
        return splice(node, wrapper(lambda *ops: inner(*ops), invars), invars, outvars)

    def hoist(self, scope, node):
        body, = node.subgraphs
        found = hoist_body(body)
        if not found.order:
            return
        read, written = found.read, found.written
        order_inputs(body, found.original_inputs + leaves_of(found.inputs, read))
        body.set_outputs(body.outputs + leaves_of(found.outputs, written))
        results = node.outputs
        new_inputs = node.inputs + flat_values(scope, read, node)
        avals = [v.aval for v in results] + state_avals(written)
        new = replace_region(scope, node, new_inputs, avals, dict(node.params),
                             list(range(len(results))))
        set_results(scope, written, new.outputs[len(results):])

    def batching(self, node, flags, analyze):
        return analyze(node.subgraphs[0], flags)


CHECKPOINT = register_region_kind(CheckpointKind())
