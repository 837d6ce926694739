"""The IR verifier: SSA form, types, and where state operations may stand.

Passes run it after every step (the PassManager's verify-after-each), so a broken edit is caught
at the pass that made it rather than deep inside JAX.
"""

from __future__ import annotations

from .._errors import BrainStateError

__all__ = ['verify', 'IRVerificationError']


class IRVerificationError(BrainStateError):
    """The graph breaks an invariant of the IR; the message names the node."""


def _same_type(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


class _Location:
    """'graph, node 3 (<Node ...>)', formatted only when an error message needs it."""

    def __init__(self, where, position, node):
        self.where, self.position, self.node = where, position, node

    def __format__(self, spec):
        return f'{self.where}, node {self.position} ({self.node!r})'


def _check_graph(graph, where: str):
    from ._graph import Literal, Value
    defined: set[int] = set()
    nodes = graph.nodes
    seen_non_input = False
    for position, node in enumerate(nodes):
        # Formatting a node is costly: build the message only when there is an error.
        at = _Location(where, position, node)
        if node.graph is not graph:
            raise IRVerificationError(f'{at}: the node does not point back to its graph.')
        if node.kind == 'input':
            if seen_non_input:
                raise IRVerificationError(f'{at}: input nodes must come first.')
        else:
            seen_non_input = True
        if node.kind == 'output' and position != len(nodes) - 1:
            raise IRVerificationError(f'{at}: the output node must be the last node.')
        for value in node.inputs:
            if isinstance(value, Literal):
                continue
            if not isinstance(value, Value):
                raise IRVerificationError(f'{at}: operand {value!r} is not a Value or Literal.')
            if value.uid not in defined:
                raise IRVerificationError(
                    f'{at}: uses {value!r} before it is defined in this graph (SSA violation; '
                    f'a region body must receive outer values through its inputs).')
            if node not in value.users:
                raise IRVerificationError(f'{at}: the use of {value!r} is not in its users.')
        for index, value in enumerate(node.outputs):
            if value.producer is not node or value.index != index:
                raise IRVerificationError(f'{at}: result {index} does not point back to it.')
            if value.uid in defined:
                raise IRVerificationError(f'{at}: {value!r} is defined twice.')
            defined.add(value.uid)
        if node.is_state_op:
            if node.state is None:
                raise IRVerificationError(f'{at}: a state operation without a state.')
            values = node.outputs if node.kind == 'state_read' else node.inputs
            avals = node.state.avals
            if len(values) != len(avals) or not all(
                    _same_type(v.aval, a) for v, a in zip(values, avals)):
                got = ', '.join(v.aval.str_short() for v in values)
                want = ', '.join(a.str_short() for a in avals)
                raise IRVerificationError(
                    f'{at}: State {node.state.label()} holds ({want}) but the {node.kind} has '
                    f'({got}).')
        if node.kind == 'region':
            _check_region(node, where)
        for i, sub in enumerate(node.subgraphs):
            _check_graph(sub, f'{where} > {node.name} body {i}')
    if not nodes or nodes[-1].kind != 'output':
        raise IRVerificationError(f'{where}: the graph has no output node.')


def _check_region(node, where: str):
    """The region's kind checks its operands, bodies and results against its signature."""
    from .regions import REGION_KINDS
    from .regions._verify import PrintedNames
    kind = REGION_KINDS.get(node.op)
    if kind is None:
        raise IRVerificationError(
            f'{where}: region {node.op!r} has no registered kind (known: '
            f'{", ".join(sorted(REGION_KINDS))}); register one with '
            f'brainstate.ir.regions.register_region_kind.')
    try:
        kind.verify(node, PrintedNames(node))
    except IRVerificationError as error:
        raise IRVerificationError(f'{where}: {error}') from None


def _check_canonical(graph):
    """States stand only at the edges: reads at entry, one write per state at exit."""
    phase = 'entry'  # entry -> body -> exit
    read, written = set(), set()
    for node in graph.nodes:
        if node.kind in ('input', 'output'):
            continue
        if node.kind == 'state_read':
            if phase != 'entry':
                raise IRVerificationError(
                    f'Canonical form: {node!r} reads State {node.state.label()} after the entry '
                    f'block; run the hoist-states pass.')
            if node.state in read:
                raise IRVerificationError(
                    f'Canonical form: State {node.state.label()} is read twice.')
            read.add(node.state)
        elif node.kind == 'state_write':
            phase = 'exit'
            if node.state in written:
                raise IRVerificationError(
                    f'Canonical form: State {node.state.label()} is written twice.')
            written.add(node.state)
        else:
            if phase == 'exit':
                raise IRVerificationError(
                    f'Canonical form: {node!r} stands after the exit writes.')
            phase = 'body'
            for sub in node.subgraphs:
                for inner in sub.walk():
                    if inner.is_state_op:
                        raise IRVerificationError(
                            f'Canonical form: {inner!r} inside region {node.name} touches State '
                            f'{inner.state.label()}; run the hoist-states pass.')


def verify(graph, canonical: bool | None = None):
    """Raise :class:`IRVerificationError` if ``graph`` is malformed.

    Args:
      graph: the Graph.
      canonical: also check the canonical form lowering needs (state ops only at the top
        level's entry and exit). ``None`` checks it when ``graph.meta['canonical']`` is set.
    """
    _check_graph(graph, graph.name)
    if canonical is None:
        canonical = bool(graph.meta.get('canonical'))
    if canonical:
        _check_canonical(graph)
    return graph
