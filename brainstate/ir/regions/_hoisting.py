"""Making region bodies pure: the machinery the hoist-states rules of the region kinds share.

The hoist-states pass (:mod:`brainstate.passes._hoist_states`) walks a graph with a
:class:`HoistScope`, forwarding reads from writes; at each region that touches states it asks
the region's kind (``kind.hoist(scope, node)``). The kind makes each body pure with
:func:`hoist_body` (which recurses: nested regions first), then threads the states through the
node with the helpers below: new body inputs for the entry values (:func:`add_state_input`,
moved where the kind's layout wants them by :func:`order_inputs`), new body outputs for the
final values, and a new region node in place of the old one (:func:`replace_region`).
"""

from __future__ import annotations

from typing import Callable

from ..._errors import BrainStateError
from .._graph import Graph, Node
from ._kind import REGION_KINDS

__all__ = ['HoistScope', 'BodyStates', 'hoist_body', 'add_state_input', 'order_inputs',
           'replace_region', 'flat_values', 'state_avals', 'set_results']


class HoistScope:
    """The state bookkeeping of one graph while it is being made pure.

    Attributes:
      graph: the graph.
      current: state -> the Values holding its leaves at the point being processed.
      order: the states in order of first access.
      entry_reads: the states whose value on entry to the graph is used, in order.
      written: the states written (an ordered set).
    """

    def __init__(self, graph: Graph, entry_value: Callable):
        self.graph = graph
        self.current: dict = {}
        self.order: list = []
        self.entry_reads: list = []
        self.written: dict = {}
        self._entry_value = entry_value

    def value_of(self, state, before: Node) -> list:
        """The Values holding ``state``'s leaves just before ``before``, fetching its entry value
        if it was not touched yet."""
        values = self.current.get(state)
        if values is None:
            values = self.current[state] = list(self._entry_value(state, before))
            self.order.append(state)
            self.entry_reads.append(state)
        return values

    def set_value(self, state, values, source_info=None):
        """Record that ``state`` now holds ``values`` (a write, made at ``source_info``: the
        exit write keeps the user's line of the last write, for the printed IR and tables)."""
        current = self.current
        if state not in current:
            self.order.append(state)
        current[state] = list(values)
        if source_info is not None or state not in self.written:
            self.written[state] = source_info

    def run(self):
        """Forward reads from writes and make the regions of the graph pure, in program order.

        Reads of a state not seen yet are kept where they stand (the caller decides what its
        entry value is); every other state op is removed."""
        graph = self.graph
        current = self.current
        # Only state operations and regions matter (find_nodes scans for them in C).
        for node in graph.find_nodes(('state_read', 'state_write', 'region'), recursive=False):
            kind = node.kind
            if kind == 'state_read':
                values = current.get(node.state)
                if values is not None:
                    graph.replace_node(node, values)
                else:
                    self.first_read(node)
            elif kind == 'state_write':
                self.set_value(node.state, node.inputs, node.source_info)
                graph.erase_node(node)
            elif kind == 'region' and node.has_effect:
                kind = REGION_KINDS.get(node.op)
                if kind is None:
                    raise BrainStateError(
                        f'hoist-states knows no region kind {node.op!r}, whose body touches '
                        f'State {_first_state_label(node)}. Register one with '
                        f'brainstate.ir.regions.register_region_kind.')
                kind.hoist(self, node)

    def first_read(self, node: Node):
        values = self._entry_value(node.state, node)
        self.current[node.state] = list(values)
        self.order.append(node.state)
        self.entry_reads.append(node.state)
        if values is not node.outputs:
            self.graph.replace_node(node, values)


def _first_state_label(node) -> str:
    for sub in node.subgraphs:
        for inner in sub.walk():
            if inner.is_state_op:
                return inner.state.label()
    return '(none)'


class BodyStates:
    """What a region body did with states, once :func:`hoist_body` made it pure.

    Attributes:
      inputs: state -> the body inputs (one per leaf) holding its value on entry, for the
        states whose entry value the body uses. They are new inputs at the end of the body's
        input list; rules move them where the region kind wants them (:func:`order_inputs`).
      outputs: state -> the Values (one per leaf) holding its final value, for the states the
        body writes. Rules add them to the body's outputs.
      order: every state the body touches, in order of first access.
      original_inputs: the body's input values before the pass.
    """

    def __init__(self, inputs, outputs, order, original_inputs):
        self.inputs = inputs
        self.outputs = outputs
        self.order = order
        self.original_inputs = original_inputs

    @property
    def read(self) -> list:
        return [s for s in self.order if s in self.inputs]

    @property
    def written(self) -> list:
        return [s for s in self.order if s in self.outputs]


def hoist_body(body: Graph) -> BodyStates:
    """Make a region body pure (nested regions first); see :class:`BodyStates`."""
    original = list(body.inputs)
    inputs: dict = {}

    def entry_value(state, before):
        values = inputs[state] = add_state_input(body, state)
        return values

    scope = HoistScope(body, entry_value)
    scope.run()
    outputs = {s: scope.current[s] for s in scope.written}
    return BodyStates(inputs, outputs, list(scope.order), original)


# -- helpers for the rules -------------------------------------------------------------------

def add_state_input(body: Graph, state) -> list:
    """New (unused) body inputs for ``state``'s leaves."""
    return [body.add_input(aval, state.label()) for aval in state.avals]


def order_inputs(body: Graph, values: list):
    """Reorder the body's input nodes to follow ``values`` (every input, once each)."""
    assert len(values) == len(body.inputs), 'order_inputs needs every input exactly once'
    first_other = next(n for n in body.nodes if n.kind != 'input')
    for value in values:
        body.move_before(first_other, value.producer)


def replace_region(scope: HoistScope, node: Node, inputs: list, output_avals: list,
                   params: dict, result_map: list) -> Node:
    """Put a new region node in place of ``node``; ``result_map[i]`` is the index of the new
    node's result that replaces ``node``'s i-th result."""
    new = Node('region', op=node.op, inputs=inputs, output_avals=output_avals, params=params,
               subgraphs=node.subgraphs, source_info=node.source_info, extra=node.extra)
    new.meta = dict(node.meta)
    scope.graph.insert_before(node, new)
    scope.graph.replace_node(node, [new.outputs[index] for index in result_map])
    node.subgraphs = []  # the bodies are the new node's now
    return new


def flat_values(scope: HoistScope, states: list, before: Node) -> list:
    """The current leaves of ``states``, concatenated."""
    out = []
    for state in states:
        out.extend(scope.value_of(state, before))
    return out


def state_avals(states: list) -> list:
    return [aval for state in states for aval in state.avals]


def set_results(scope: HoistScope, states: list, values: list):
    """Record that ``states`` now hold ``values`` (their leaves, concatenated)."""
    offset = 0
    for state in states:
        count = len(state.avals)
        scope.set_value(state, values[offset:offset + count])
        offset += count
