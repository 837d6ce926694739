"""The hoist-states pass: put a graph in canonical form, with states only at its edges.

* store-to-load forwarding: a read after a write takes the written value;
* one ``state_read`` per state at entry (right after the inputs), in order of first access;
* one ``state_write`` per written state at exit (right before the output), with the last value;
* regions made pure, innermost first: a region body gets the entry value of each state it
  touches as a new input and returns the final value of each state it writes as a new output.
  How those inputs and outputs attach to the region depends on its kind, by the rule registered
  in :data:`REGION_HOIST_RULES`:

  - loops (``scan``, ``while``): a state the body writes becomes a loop carry; one it only
    reads, a loop-invariant operand. A state written in a while loop's condition is an error.
  - branches (``cond``): every branch receives the states any branch touches and returns the
    states any branch writes; a branch that does not write one passes its value through.
  - ``checkpoint``: the states read become operands, the states written extra results.

Lowering needs this form: the entry reads become the jaxpr's leading inputs, the exit writes its
trailing outputs, and every region lowers to a pure ``lax`` control-flow primitive.

Before::

    graph run(%0:f32[10]) {
      %1:f32[10] = scan[length=10 num_carry=0 num_consts=0 ...] %0 {
        scan_body(%2:f32[]) {
          %3:f32[] = state_read @acc
          %4:f32[] = add %3 %2
          state_write @acc %4
          return
        }
      }
      return
    }

After (``acc`` is a loop carry)::

    graph run(%0:f32[10]) {
      %1:f32[] = state_read @acc
      %2:f32[] = scan[length=10 num_carry=1 num_consts=0 ...] %1 %0 {
        scan_body(%3:f32[] %4:f32[]) {
          %5:f32[] = add %3 %4
          return %5
        }
      }
      state_write @acc %2
      return
    }
"""

from __future__ import annotations

from typing import Callable

from .._errors import BrainStateError
from ..ir import Graph, Node

__all__ = ['hoist_states', 'REGION_HOIST_RULES', 'HoistScope', 'BodyStates', 'hoist_body']

# region name -> rule(scope: HoistScope, node: Node) -> None. The rule makes the bodies of
# `node` pure (with `hoist_body`), replaces `node` by a pure region node, takes the states'
# current values from `scope.value_of(state)` and records what the region writes with
# `scope.set_value(state, values)`.
REGION_HOIST_RULES: dict[str, Callable] = {}


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
        if state not in self.current:
            self.order.append(state)
        self.current[state] = list(values)
        self.written[state] = source_info if source_info is not None else \
            self.written.get(state)

    def run(self):
        """Forward reads from writes and make the regions of the graph pure, in program order.

        Reads of a state not seen yet are kept where they stand (the caller decides what its
        entry value is); every other state op is removed."""
        graph = self.graph
        for node in graph.nodes:
            kind = node.kind
            if kind == 'state_read':
                state = node.state
                if state in self.current:
                    for old, new in zip(node.outputs, self.current[state]):
                        old.replace_all_uses_with(new)
                    graph.erase_node(node)
                else:
                    self.first_read(node)
            elif kind == 'state_write':
                self.set_value(node.state, node.inputs, node.source_info)
                graph.erase_node(node)
            elif kind == 'region' and node.has_effect:
                rule = REGION_HOIST_RULES.get(node.op)
                if rule is None:
                    raise BrainStateError(
                        f'hoist-states has no rule for region {node.op!r}, whose body touches '
                        f'State {_first_state_label(node)}. Register one in '
                        f'brainstate.passes.REGION_HOIST_RULES.')
                rule(self, node)

    def first_read(self, node: Node):
        values = self._entry_value(node.state, node)
        self.current[node.state] = list(values)
        self.order.append(node.state)
        self.entry_reads.append(node.state)
        if values is not node.outputs:
            for old, new in zip(node.outputs, values):
                old.replace_all_uses_with(new)
            self.graph.erase_node(node)


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
    for old, index in zip(node.outputs, result_map):
        old.replace_all_uses_with(new.outputs[index])
    node.subgraphs = []
    scope.graph.erase_node(node)
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


def _region_state_sources(graph: Graph) -> tuple[dict, dict]:
    """The user's source lines of the state ops inside the graph's regions (first read, last
    write of each state), before hoisting removes them: the entry read and exit write that
    replace them keep these lines, so the state table and ``format(source=True)`` still point
    at the user's code inside loop and branch bodies."""
    first_read, last_write = {}, {}
    for node in graph.nodes:
        if node.kind != 'region' or not node.has_effect:
            continue
        for sub in node.subgraphs:
            for inner in sub.walk():
                if inner.source_info is None:
                    continue
                if inner.kind == 'state_read':
                    first_read.setdefault(inner.state, inner.source_info)
                elif inner.kind == 'state_write':
                    last_write[inner.state] = inner.source_info
    return first_read, last_write


# -- the pass ----------------------------------------------------------------------------------

def hoist_states(graph: Graph) -> Graph:
    """Rewrite ``graph`` in place into canonical form and return it.

    After it, no state operation stands inside a region, ``graph.meta['canonical']`` is True,
    ``graph.meta['read_states']`` lists the states read at entry and
    ``graph.meta['written_states']`` those written at exit, in the order of the graph's entry
    reads and exit writes.

    Raises:
      BrainStateError: a region cannot be made pure (e.g. a state written in a while loop's
        condition); the message names the state.
    """
    entry_nodes: dict = {}
    first_read_in_region, last_write_in_region = _region_state_sources(graph)

    def entry_value(state, before):
        if before is not None and before.kind == 'state_read' and before.state is state:
            node = before
        else:
            node = Node('state_read', state=state, output_avals=state.avals,
                        source_info=first_read_in_region.get(state))
            graph.insert_before(before, node)
        entry_nodes[state] = node
        return node.outputs

    scope = HoistScope(graph, entry_value)
    scope.run()
    entry_reads = [entry_nodes[s] for s in scope.entry_reads]
    for node in reversed(entry_reads):
        graph.move_to_entry(node)
    read_states = list(scope.entry_reads)
    read_set = set(read_states)
    written = scope.written
    # Written states that are also read come first, in read order, then write-only ones: so
    # (read states + write-only states) lists every state once, and the writes follow that order.
    written_states = ([s for s in read_states if s in written] +
                      [s for s in scope.order if s in written and s not in read_set])
    output = graph.output_node
    for state in written_states:
        graph.insert_before(output, Node('state_write', state=state,
                                         inputs=scope.current[state],
                                         source_info=written[state] if written[state]
                                         is not None else last_write_in_region.get(state)))
    graph.meta['canonical'] = True
    graph.meta['read_states'] = read_states
    graph.meta['written_states'] = written_states
    return graph
