"""The dce rule every region kind shares: shrink a region to what its users need.

Repeated until nothing changes (a fixed point):

1. a result nobody uses goes, with the body outputs giving it (every branch of a ``cond``);
2. a loop carry goes when its final value is unused and no live value depends on it: a carry is
   live if its final value is used, or if the body input holding its current value feeds a
   live body output, a while loop's condition or an effect; liveness is propagated through the
   bodies until it stops growing, so two carries feeding only each other both go;
3. the bodies are cleaned (``dce_body``, the dce pass itself: nested regions shrink too);
4. an operand goes when every body input it feeds is unused (a ``cond``'s index stays).

A region whose results are all unused and whose bodies have no effect is removed whole by the
dce pass, not here.
"""

from __future__ import annotations

from ._edit import BodyLiveness, drop_body_outputs, finish_removal

__all__ = ['prune_region', 'dead_carries']


def dead_carries(signature, dead_results: set) -> list:
    """The carries of ``signature`` that can go, given the non-carry results that go."""
    carries = signature.carries
    if not carries or all(c.final.users for c in carries):
        return []  # every carry's final value is used: all live, no walk needed
    carry_results = {c.result for c in carries}
    live = {c.result for c in carries if c.final.users}
    bodies = signature.bodies
    # per body: input position -> the carry it holds; result -> the outputs giving it
    carry_at = [{c.body_inputs[b]: c for c in carries} for b in range(len(bodies))]
    outputs_of = []
    for body in bodies:
        by_result = {}
        for k, r in enumerate(body.output_results):
            by_result.setdefault(r, []).append(k)
        outputs_of.append(by_result)
    walks, pending = [], []
    for b, body in enumerate(bodies):
        walk = BodyLiveness(body.graph)
        roots = [k for k, r in enumerate(body.output_results)
                 if r is None or r in live or (r not in dead_results and r not in carry_results)]
        pending.extend(carry_at[b][k] for k in walk.add_outputs(roots) + sorted(walk.live)
                       if k in carry_at[b])
        walks.append(walk)
    pending.extend(c for c in carries if c.result in live)
    done = set()
    while pending:  # a live carry's next value is live, and what that depends on
        carry = pending.pop()
        if carry.result in done:
            continue
        done.add(carry.result)
        live.add(carry.result)
        for b, walk in enumerate(walks):
            for k in walk.add_outputs(outputs_of[b].get(carry.result, ())):
                if k in carry_at[b]:
                    pending.append(carry_at[b][k])
    return [c for c in carries if c.result not in live]


def prune_region(kind, node, dce_body, stats=None) -> bool:
    """Shrink ``node`` as the module docstring says; returns whether it removed anything."""
    changed = False
    first = True
    while True:
        sig = kind.signature(node)
        carry_results = {c.result for c in sig.carries}
        carry_operands = {c.operand for c in sig.carries}
        dead_results = {j for j, value in enumerate(node.outputs)
                        if not value.users and j not in carry_results}
        carries = dead_carries(sig, dead_results)
        results = dead_results | {c.result for c in carries}
        operands = {c.operand for c in carries}
        drop_body_outputs(sig, results)
        if results or first:
            for body in node.subgraphs:
                dce_body(body)
        first = False
        uses = {}
        for b, body in enumerate(sig.bodies):
            inputs = body.graph.inputs
            for k, operand in enumerate(body.input_operands):
                uses.setdefault(operand, []).append(inputs[k])
        for i in range(len(node.inputs)):
            if i in operands or i in carry_operands or \
                    not kind.removable_operand(sig, i):
                continue
            if not any(value.users for value in uses.get(i, ())):
                operands.add(i)
        if not results and not operands:
            return changed
        finish_removal(kind, node, sig, operands, results)
        changed = True
        if stats is not None:
            for key, count in (('region results removed', len(dead_results)),
                               ('loop carries removed', len(carries)),
                               ('region operands removed', len(operands) - len(carries))):
                if count:
                    stats[key] += count
