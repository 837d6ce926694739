"""The ``cond`` region: ``brainstate.transform.cond`` / ``switch`` / ``ifelse`` (one body per
branch).

Signature (no params)::

    operands  index (i32[], clamped to the branches)  args[...]
    branch k  args -> results              (every branch has the same signature)
    results   results[...]

Operand ``1 + i`` feeds input ``i`` of every branch; output ``j`` of every branch gives result
``j``. Lowers to ``lax.switch`` (the body itself when there is one branch).

hoist-states: every branch receives the states any branch touches (after the args) and
returns the states any branch writes (after the results), passing through those it does not
write. Batching: a batched index makes every result batched (lanes take different branches).
dce: an unused result goes from every branch; an arg goes when no branch uses it; the index
stays.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from ._hoisting import add_state_input, flat_values, hoist_body, order_inputs, \
    replace_region, set_results, state_avals
from ._kind import BodySignature, RegionKind, RegionSignature, register_region_kind
from ._lowering import as_fun, cast, lower_body, splice, wrapper
from ._scan import leaves_of

__all__ = ['CondKind', 'COND']


class CondKind(RegionKind):
    """A choice between branches by an integer index; every branch has the same signature."""

    name = 'cond'
    summary = 'a choice between branches by an integer index (lax.switch)'
    num_bodies = None  # one per branch

    insertable_groups = ('args',)

    def signature(self, node) -> RegionSignature:
        n_in, n_out = len(node.inputs), len(node.outputs)
        operands = {'index': slice(0, 1), 'args': slice(1, max(n_in, 1))}
        results = {'results': slice(0, n_out)}
        bodies = [BodySignature(g, {'args': slice(0, n_in - 1)}, {'results': slice(0, n_out)},
                                list(range(1, n_in)), list(range(n_out)))
                  for g in node.subgraphs]
        return RegionSignature(self, node, operands, results, bodies)

    def removable_operand(self, signature, position):
        return position != 0

    def check_extra(self, signature, fail, name_of):
        if not signature.node.inputs:
            fail('a cond region needs its branch index as first operand.')
        index = signature.node.inputs[0]
        if index.aval.shape != () or not jnp.issubdtype(index.aval.dtype, jnp.integer):
            fail(f'the branch index {name_of(index)}:{index.aval.str_short()} must be an '
                 f'integer scalar.')

    def lower(self, node, invars, outvars):
        branches = [as_fun(lower_body(g)) for g in node.subgraphs]
        out_avals = [v.aval for v in node.outputs]

        def make(run):
            return lambda *ops: cast(run(*ops), out_avals)

        def fun(index, *ops):
            if len(branches) == 1:
                return make(branches[0])(*ops)
            return lax.switch(index, [make(b) for b in branches], *ops)

        return splice(node, wrapper(fun, invars), invars, outvars)

    def hoist(self, scope, node):
        branches = node.subgraphs
        found = [hoist_body(b) for b in branches]
        touched: dict = {}
        written: dict = {}
        for f in found:
            touched.update(dict.fromkeys(f.order))
            written.update(dict.fromkeys(f.written))
        if not touched:
            return
        touched_list, written_list = list(touched), list(written)
        for branch, f in zip(branches, found):
            state_in = {}
            for state in touched_list:
                state_in[state] = (f.inputs[state] if state in f.inputs
                                   else add_state_input(branch, state))
            order_inputs(branch, f.original_inputs + leaves_of(state_in, touched_list))
            finals = [v for s in written_list
                      for v in (f.outputs[s] if s in f.outputs else state_in[s])]
            branch.set_outputs(branch.outputs + finals)
        results = node.outputs
        new_inputs = node.inputs + flat_values(scope, touched_list, node)
        avals = [v.aval for v in results] + state_avals(written_list)
        new = replace_region(scope, node, new_inputs, avals, dict(node.params),
                             list(range(len(results))))
        set_results(scope, written_list, new.outputs[len(results):])

    def batching(self, node, flags, analyze):
        index, operands = flags[0], flags[1:]
        results = [False] * len(node.outputs)
        for branch in node.subgraphs:
            results = [a or b for a, b in zip(results, analyze(branch, operands))]
        if index:  # lanes take different branches
            results = [True] * len(results)
        return results


COND = register_region_kind(CondKind())
