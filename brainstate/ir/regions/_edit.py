"""Editing a region node without breaking its layout: removing operands, results and carries.

Every operation keeps the four parts of a region in step (the node's operands, its bodies'
inputs and outputs, its results) and updates the params that count groups (a scan's
``num_consts`` / ``num_carry``, a while loop's ``cond_nconsts`` / ``body_nconsts``), through the
region's kind. Used by the dce rule, and public through :class:`RegionKind` and
:func:`remove_region_operand` / :func:`remove_region_result` / :func:`remove_region_carry`.
"""

from __future__ import annotations

__all__ = ['insert_operand', 'remove_operand', 'remove_result', 'remove_carry', 'live_body_inputs',
           'insert_region_operand', 'remove_region_operand', 'remove_region_result',
           'remove_region_carry']

from .._graph import GraphEditError

_PURE_KINDS = ('primitive', 'constant', 'state_read', 'region')


class BodyLiveness:
    """Which inputs of a body the chosen outputs and the body's effects depend on, grown
    output by output: each node is visited once however many times outputs are added, so a
    fixed point over many carries costs one walk of the body."""

    def __init__(self, graph):
        nodes = graph.nodes
        self.outputs = graph.outputs
        self.position = {}
        for node in nodes:
            if node.kind == 'input':
                self.position[node] = len(self.position)
        self.seen: set = set()
        self.live: set = set()  # input positions
        self._walk([v for node in nodes
                    if (node.kind in _PURE_KINDS and node.has_effect) or
                    node.kind == 'state_write' for v in node.inputs])

    def add_outputs(self, positions) -> list:
        """Mark the outputs at ``positions`` live; returns the input positions that became
        live (``self.live`` holds them all)."""
        return self._walk([self.outputs[i] for i in positions])

    def _walk(self, stack) -> list:
        seen, live, position = self.seen, self.live, self.position
        new = []
        while stack:
            producer = getattr(stack.pop(), 'producer', None)  # a Literal has none
            if producer is None or producer in seen:
                continue
            seen.add(producer)
            if producer.kind == 'input':
                live.add(position[producer])
                new.append(position[producer])
            else:
                stack.extend(producer.inputs)
        return new


def live_body_inputs(graph, output_positions) -> set:
    """Positions of ``graph``'s inputs that the outputs at ``output_positions``, or any node
    with an effect, depend on."""
    walk = BodyLiveness(graph)
    walk.add_outputs(output_positions)
    return walk.live


def erase_dead_nodes(graph) -> int:
    """Erase the pure nodes of ``graph`` whose results are unused (not recursing into
    regions); returns how many went."""
    removed = 0
    for node in reversed(graph.nodes):
        if node.kind in _PURE_KINDS and not any(v.users for v in node.outputs) \
                and not node.has_effect:
            graph.erase_node(node)
            removed += 1
    return removed


def drop_body_outputs(signature, results: set):
    """Remove, from every body, the outputs giving the results at positions ``results``."""
    if not results:
        return
    for body in signature.bodies:
        if any(r in results for r in body.output_results):
            outputs = body.graph.outputs
            body.graph.set_outputs([v for v, r in zip(outputs, body.output_results)
                                    if r not in results])


def finish_removal(kind, node, signature, operands: set, results: set):
    """Remove the operands and results at the given positions (of ``signature``, read before
    any edit), with the body inputs the operands feed; the body outputs giving the results must
    already be gone (:func:`drop_body_outputs`) and the body inputs be unused."""
    params = kind.update_params(node, sorted(operands), sorted(results))
    if operands:
        for body in signature.bodies:
            graph = body.graph
            inputs = graph.inputs
            for k, operand in enumerate(body.input_operands):
                if operand in operands:
                    graph.remove_input(inputs[k])
        kept = [v for i, v in enumerate(node.inputs) if i not in operands]
        node.set_inputs(kept)
    if results:
        outputs = [v for j, v in enumerate(node.outputs) if j not in results]
        for index, value in enumerate(outputs):
            value.index = index
        node.outputs = outputs
    node.params = params


def _name(value) -> str:
    """A value as the printed IR names it (``%3:f32[4]``)."""
    from .._printer import value_name
    return value_name(value)


def _describe(node) -> str:
    """A node as its printed line, with the printed IR's ``%n`` names (a node's repr names
    values afresh, unlike ``print(graph)``)."""
    from .._printer import describe_node
    return describe_node(node)


def insert_operand(kind, node, group, value, name=None) -> list:
    if group not in kind.insertable_groups:
        raise GraphEditError(
            f'Cannot insert an operand into group {group!r} of a {kind.name} region; the groups '
            f'that take new operands are {list(kind.insertable_groups)}.')
    sig = kind.signature(node)
    position = sig.operand_groups[group].stop
    new_inputs = []
    for b, body_group in kind.operand_body_groups(sig, group):
        graph = sig.bodies[b].graph
        at = sig.bodies[b].input_groups[body_group].stop
        new_inputs.append(graph.insert_input(at, value.aval, name))
    params = kind.grow_params(node, group, 1)
    operands = list(node.inputs)
    operands.insert(position, value)
    node.set_inputs(operands)
    node.params = params
    return new_inputs


def remove_operand(kind, node, position: int):
    sig = kind.signature(node)
    _check_position(node.inputs, position, 'operand', node)
    carry = sig.carry_of_operand(position)
    if carry is not None:
        raise GraphEditError(
            f'Operand {position} of {_describe(node)} is the initial value of loop carry '
            f'{sig.carries.index(carry)}; remove the whole carry with remove_carry.')
    if not kind.removable_operand(sig, position):
        raise GraphEditError(f'Operand {position} ({sig.operand_group(position)}) of a '
                             f'{kind.name} region cannot be removed.')
    for b, k in sig.body_inputs_of(position):
        value = node.subgraphs[b].inputs[k]
        if value.users:
            raise GraphEditError(
                f'Cannot remove operand {position} of {_describe(node)}: body {b} still uses '
                f'the input it feeds ({_name(value)}), e.g. in '
                f'{_describe(next(iter(value.users)))}. Replace those uses first.')
    finish_removal(kind, node, sig, {position}, set())


def remove_result(kind, node, position: int):
    sig = kind.signature(node)
    _check_position(node.outputs, position, 'result', node)
    carry = sig.carry_of_result(position)
    if carry is not None:
        raise GraphEditError(
            f'Result {position} of {_describe(node)} is the final value of loop carry '
            f'{sig.carries.index(carry)}; remove the whole carry with remove_carry.')
    value = node.outputs[position]
    if value.users:
        raise GraphEditError(f'Cannot remove result {position} of {_describe(node)}: it is '
                             f'still used by {_describe(next(iter(value.users)))}.')
    drop_body_outputs(sig, {position})
    for body in node.subgraphs:
        erase_dead_nodes(body)
    finish_removal(kind, node, sig, set(), {position})


def remove_carry(kind, node, index: int):
    sig = kind.signature(node)
    if not 0 <= index < len(sig.carries):
        raise IndexError(f'{_describe(node)} has {len(sig.carries)} loop carries, no carry '
                         f'{index}.')
    carry = sig.carries[index]
    if carry.final.users:
        raise GraphEditError(f'Cannot remove carry {index} of {_describe(node)}: its final '
                             f'value is used by {_describe(next(iter(carry.final.users)))}.')
    for b, (body, k) in enumerate(zip(sig.bodies, carry.body_inputs)):
        keep = [i for i, r in enumerate(body.output_results) if r != carry.result]
        if k in live_body_inputs(body.graph, keep):
            raise GraphEditError(
                f'Cannot remove carry {index} of {_describe(node)}: in body {b} '
                f'({body.graph.name}) '
                f'another output or an effect depends on its current value '
                f'({_name(body.graph.inputs[k])}).')
    drop_body_outputs(sig, {carry.result})
    for body in node.subgraphs:
        erase_dead_nodes(body)
    finish_removal(kind, node, sig, {carry.operand}, {carry.result})


def _check_position(values, position, what, node):
    if not isinstance(position, int) or not 0 <= position < len(values):
        raise IndexError(f'{_describe(node)} has {len(values)} {what}s, no {what} '
                         f'{position!r}.')


# -- the same, from the node --------------------------------------------------------------------

def remove_region_operand(node, position: int):
    """Remove operand ``position`` of region ``node`` and the body inputs it feeds (which
    must be unused), keeping the region's params in step. See :meth:`RegionKind.remove_operand`.
    """
    from ._kind import region_kind
    region_kind(node).remove_operand(node, position)


def remove_region_result(node, position: int):
    """Remove the unused result ``position`` of region ``node`` and the body outputs giving
    it. See :meth:`RegionKind.remove_result`."""
    from ._kind import region_kind
    region_kind(node).remove_result(node, position)


def remove_region_carry(node, index: int):
    """Remove loop carry ``index`` of region ``node`` (its final value unused, nothing else
    depending on it). See :meth:`RegionKind.remove_carry`."""
    from ._kind import region_kind
    region_kind(node).remove_carry(node, index)


def insert_region_operand(node, group: str, value, name: str | None = None) -> list:
    """Add ``value`` as an operand at the end of operand group ``group`` of region ``node``,
    with a new body input in each body that receives the group; returns those body inputs.
    See :meth:`RegionKind.insert_operand`."""
    from ._kind import region_kind
    return region_kind(node).insert_operand(node, group, value, name)
