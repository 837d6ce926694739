"""The hoist-states pass: put a graph in canonical form, with states only at its edges.

* store-to-load forwarding: a read after a write takes the written value;
* one ``state_read`` per state at entry (right after the inputs), in order of first access;
* one ``state_write`` per written state at exit (right before the output), with the last value;
* regions made pure, innermost first: a region body gets the entry value of each state it
  touches as a new input and returns the final value of each state it writes as a new output.
  How those inputs and outputs attach to the region depends on its kind: the pass calls
  ``kind.hoist`` of the region's :class:`~brainstate.ir.regions.RegionKind`:

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

from ..ir import Graph, Node
from ..ir.regions import BodyStates, HoistScope, hoist_body

__all__ = ['hoist_states', 'HoistScope', 'BodyStates', 'hoist_body']


def _region_state_sources(graph: Graph) -> tuple[dict, dict]:
    """The user's source lines of the state ops inside the graph's regions (first read, last
    write of each state), before hoisting removes them: the entry read and exit write that
    replace them keep these lines, so the state table and ``format(source=True)`` still point
    at the user's code inside loop and branch bodies."""
    first_read, last_write = {}, {}
    for node in graph.find_nodes('region', recursive=False):
        if not node.has_effect:
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
