"""The hoist-states rules of the built-in regions (see :mod:`brainstate.ir._region`).

Each rule makes the bodies of one region pure with :func:`hoist_body` and replaces the region
node by a pure one whose operands and results carry the states:

* ``scan``: written states become carries (after the user's carries), read-only states
  loop-invariant operands (after the user's consts);
* ``while``: the same, with the condition's and the body's read-only states as their own consts;
  a state written in the condition is an error;
* ``cond``: every branch takes the states any branch touches (after the operands) and returns
  the states any branch writes (after the results), passing through those it does not write;
* ``checkpoint``: the states read become operands, the states written extra results.
"""

from __future__ import annotations

from .._errors import BrainStateError
from ._hoist_states import (REGION_HOIST_RULES, HoistScope, add_state_input, flat_values,
                            hoist_body, order_inputs, replace_region, set_results, state_avals)

__all__ = []


def _leaves(mapping: dict, states: list) -> list:
    return [v for s in states for v in mapping[s]]


def _carry_inputs(body, found, states) -> list:
    """The body inputs of ``states`` as carries: the entry value when the body used it, else a
    fresh (unused) input."""
    out = []
    for state in states:
        out.extend(found.inputs[state] if state in found.inputs else add_state_input(body, state))
    return out


def hoist_scan(scope: HoistScope, node):
    body, = node.subgraphs
    found = hoist_body(body)
    if not found.order:
        return
    written = found.written
    read_only = [s for s in found.read if s not in found.outputs]
    nc, nk = node.params['num_consts'], node.params['num_carry']
    old = found.original_inputs
    const_in = _leaves(found.inputs, read_only)
    carry_in = _carry_inputs(body, found, written)
    order_inputs(body, old[:nc] + const_in + old[nc:nc + nk] + carry_in + old[nc + nk:])
    outs = body.outputs
    body.set_outputs(outs[:nk] + _leaves(found.outputs, written) + outs[nk:])

    operands = node.inputs
    new_inputs = (operands[:nc] + flat_values(scope, read_only, node) + operands[nc:nc + nk] +
                  flat_values(scope, written, node) + operands[nc + nk:])
    results = node.outputs
    n_state = len(carry_in)
    avals = ([v.aval for v in results[:nk]] + state_avals(written) +
             [v.aval for v in results[nk:]])
    params = dict(node.params, num_consts=nc + len(const_in), num_carry=nk + n_state)
    result_map = list(range(nk)) + [nk + n_state + i for i in range(len(results) - nk)]
    new = replace_region(scope, node, new_inputs, avals, params, result_map)
    set_results(scope, written, new.outputs[nk:nk + n_state])


def hoist_while(scope: HoistScope, node):
    cond_body, loop_body = node.subgraphs
    in_cond = hoist_body(cond_body)
    if in_cond.outputs:
        state = in_cond.written[0]
        raise BrainStateError(
            f'State {state.label()} is written inside the condition function of a while_loop. '
            f'The condition must only read states: move the update into the loop body.')
    in_body = hoist_body(loop_body)
    if not in_cond.order and not in_body.order:
        return
    written = in_body.written
    written_set = set(written)
    cond_reads = [s for s in in_cond.read if s not in written_set]
    body_reads = [s for s in in_body.read if s not in written_set]
    cn, bn = node.params['cond_nconsts'], node.params['body_nconsts']

    old = in_cond.original_inputs
    cond_consts = _leaves(in_cond.inputs, cond_reads)
    order_inputs(cond_body, old[:cn] + cond_consts + old[cn:] +
                 _carry_inputs(cond_body, in_cond, written))
    old = in_body.original_inputs
    body_consts = _leaves(in_body.inputs, body_reads)
    carry_in = _carry_inputs(loop_body, in_body, written)
    order_inputs(loop_body, old[:bn] + body_consts + old[bn:] + carry_in)
    loop_body.set_outputs(loop_body.outputs + _leaves(in_body.outputs, written))

    operands = node.inputs
    new_inputs = (operands[:cn] + flat_values(scope, cond_reads, node) +
                  operands[cn:cn + bn] + flat_values(scope, body_reads, node) +
                  operands[cn + bn:] + flat_values(scope, written, node))
    results = node.outputs
    avals = [v.aval for v in results] + state_avals(written)
    params = dict(node.params, cond_nconsts=cn + len(cond_consts),
                  body_nconsts=bn + len(body_consts))
    new = replace_region(scope, node, new_inputs, avals, params, list(range(len(results))))
    set_results(scope, written, new.outputs[len(results):])


def hoist_cond(scope: HoistScope, node):
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
        order_inputs(branch, f.original_inputs + _leaves(state_in, touched_list))
        finals = [v for s in written_list
                  for v in (f.outputs[s] if s in f.outputs else state_in[s])]
        branch.set_outputs(branch.outputs + finals)
    results = node.outputs
    new_inputs = node.inputs + flat_values(scope, touched_list, node)
    avals = [v.aval for v in results] + state_avals(written_list)
    new = replace_region(scope, node, new_inputs, avals, dict(node.params),
                         list(range(len(results))))
    set_results(scope, written_list, new.outputs[len(results):])


def hoist_checkpoint(scope: HoistScope, node):
    body, = node.subgraphs
    found = hoist_body(body)
    if not found.order:
        return
    read, written = found.read, found.written
    order_inputs(body, found.original_inputs + _leaves(found.inputs, read))
    body.set_outputs(body.outputs + _leaves(found.outputs, written))
    results = node.outputs
    new_inputs = node.inputs + flat_values(scope, read, node)
    avals = [v.aval for v in results] + state_avals(written)
    new = replace_region(scope, node, new_inputs, avals, dict(node.params),
                         list(range(len(results))))
    set_results(scope, written, new.outputs[len(results):])


REGION_HOIST_RULES.update({
    'scan': hoist_scan,
    'while': hoist_while,
    'cond': hoist_cond,
    'checkpoint': hoist_checkpoint,
})
