"""The IR verifier: SSA form, types, and where state operations may stand.

Passes run it after every step (the PassManager's verify-after-each), so a broken edit is caught
at the pass that made it rather than deep inside JAX. It checks:

* SSA: every operand is defined earlier in the same graph (regions are closed), use lists agree
  with operands, results point back to their node;
* types: every ``primitive`` node's result types are inferred again from its operands' types and
  its params by the primitive's own abstract evaluation (``primitive.abstract_eval``, cached per
  primitive, params and operand types) and must equal its results' shapes and dtypes; state
  operations carry the types their State holds; constants the type of their array;
* regions: each region node is checked by its kind (``brainstate.ir.region_kind(node).verify``:
  operand groups, body inputs, carries and results against the kind's signature), and its
  bodies recursively;
* canonical form (on request): state operations only at the top level's entry and exit.

Messages name values and nodes as the printed IR does (``%3:f32[5,8]``), so an error can be read
next to ``print(graph)``.
"""

from __future__ import annotations

from .._errors import BrainStateError
from ._printer import short_type

__all__ = ['verify', 'IRVerificationError', 'infer_result_types']


class IRVerificationError(BrainStateError):
    """The graph breaks an invariant of the IR; the message names the node."""




def _same_type(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


class _Location:
    """'graph, node 3 (`%3:f32[] = mul %1 %2`)', formatted only when a message needs it, with
    the %n names of the printed top-level graph."""

    def __init__(self, names, where, position, node):
        self.names, self.where, self.position, self.node = names, where, position, node

    def __format__(self, spec):
        from ._printer import format_node
        namer = self.names()
        try:
            line = format_node(self.node, namer)
        except Exception:  # a node broken beyond printing
            line = f'{self.node.kind} {self.node.name}'
        return f'{self.where}, node {self.position} (`{line}`)'


class _Names:
    """The printed IR's %n names of the graph being verified, computed on the first error."""

    def __init__(self, graph):
        self.graph, self.namer = graph, None

    def __call__(self):
        if self.namer is None:
            from ._printer import name_values
            self.namer = name_values(self.graph)
        return self.namer

    def value(self, value) -> str:
        from ._printer import value_name
        return value_name(value, self())

    def reshaped_states(self) -> frozenset:
        """States the traced program writes with new avals on purpose (vmap's out_states
        give a state its batch axis): ``meta['reshaped_states']`` of any graph of the tree."""
        found = getattr(self, '_reshaped', None)
        if found is None:
            found = set()
            graphs = [self.graph]
            while graphs:
                graph = graphs.pop()
                found.update(graph.meta.get('reshaped_states', ()))
                graphs.extend(sub for node in graph.nodes for sub in node.subgraphs)
            found = self._reshaped = frozenset(found)
        return found


# (primitive, params, operand avals) -> result avals, or an exception's message. Bounded: a
# program's distinct operations number in the thousands.
_INFERRED: dict = {}
_INFERRED_LIMIT = 50_000
_UNCHECKABLE = object()


def _abstract_eval(op, avals, params):
    try:
        result = op.abstract_eval(*avals, **params)
    except (TypeError, ValueError) as error:  # the operands do not fit the primitive
        return str(error) or type(error).__name__
    except Exception:  # needs a context we do not have (an unbound axis name, ...)
        return _UNCHECKABLE
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], (set, frozenset)):
        result = result[0]  # (avals, effects)
    if not op.multiple_results:
        result = [result]
    return tuple(result)


def infer_result_types(node, avals=None):
    """The result types of a ``primitive`` node, inferred from its operands' types and params
    by the primitive's abstract evaluation: a tuple of avals, a string saying why the operands
    do not fit, or None when the primitive cannot be evaluated out of context."""
    if avals is None:
        avals = tuple([v.aval for v in node.inputs])
    params = node.params
    try:
        key = (node.op, tuple(params.items()), avals)
        hash(key)
    except TypeError:  # an unhashable param (an array): evaluate without caching
        key = None
    if key is not None:
        found = _INFERRED.get(key)
        if found is not None:
            return None if found is _UNCHECKABLE else found
    result = _abstract_eval(node.op, avals, params)
    if key is not None:
        if len(_INFERRED) >= _INFERRED_LIMIT:
            _INFERRED.clear()
        _INFERRED[key] = result
    return None if result is _UNCHECKABLE else result


def _check_primitive(node, at, names):
    # A node whose operation, params dict and operand and result types are those it had when
    # last found well typed needs no inference (the PassManager verifies after every pass, and
    # most nodes survive a pass untouched). Params are compared by identity: the dict and each
    # of its values (a pass should assign a new dict, ``node.params = {...}``, but one that
    # sets ``node.params['axes'] = ...`` in place is checked too).
    in_avals = tuple([v.aval for v in node.inputs])
    out_avals = tuple([v.aval for v in node.outputs])
    memo = node._typed
    params = node.params
    if memo is not None and memo[0] is node.op and memo[1] is params and \
            memo[2] == in_avals and memo[3] == out_avals:
        try:
            same = tuple(params.values()) == memo[4]  # (identical values compare at once)
        except Exception:  # a changed value whose == is not a bool (an array)
            same = False
        if same:
            return
    inferred = infer_result_types(node, in_avals)
    if inferred is None:
        return
    if isinstance(inferred, str):
        operands = ', '.join(names.value(v) for v in node.inputs)
        raise IRVerificationError(
            f'{at}: the operands ({operands}) do not fit {node.name}: {inferred}')
    if len(inferred) != len(node.outputs) or not all(
            _same_type(v.aval, a) for v, a in zip(node.outputs, inferred)):
        have = ', '.join(names.value(v) for v in node.outputs)
        want = ', '.join(short_type(a) for a in inferred)
        raise IRVerificationError(
            f'{at}: the results are typed ({have}) but {node.name} of these operands gives '
            f'({want}). A rewrite changed an operand\'s type (a value replaced by one of another '
            f'shape or dtype?) or the node\'s params.')
    node._typed = (node.op, params, in_avals, out_avals, tuple(params.values()))


def _check_graph(graph, where: str, names: _Names):
    from ._graph import Literal, Value
    defined: set[int] = set()
    nodes = graph.nodes
    seen_non_input = False
    for position, node in enumerate(nodes):
        # Formatting a node is costly: build the message only when there is an error.
        at = _Location(names, where, position, node)
        if node.graph is not graph:
            owner = f"graph '{node.graph.name}'" if node.graph is not None else 'no graph'
            raise IRVerificationError(
                f'{at}: the node stands in this graph but says it belongs to {owner} (moved '
                f'between graphs by hand? use graph.clone_node).')
        kind = node.kind
        if kind == 'input':
            if seen_non_input:
                raise IRVerificationError(f'{at}: input nodes must come first.')
        else:
            seen_non_input = True
        if kind == 'output' and position != len(nodes) - 1:
            raise IRVerificationError(f'{at}: the output node must be the last node.')
        for value in node.inputs:
            if type(value) is Literal:
                continue
            if not isinstance(value, Value):
                raise IRVerificationError(f'{at}: operand {value!r} is not a Value or Literal.')
            if value not in defined:
                other = value.graph
                if other is not None and other is not graph:
                    raise IRVerificationError(
                        f"{at}: uses {names.value(value)}, a value of graph '{other.name}' "
                        f"(regions are closed: a body receives outer values through its inputs; "
                        f"a node copied from another graph needs its operands mapped, see "
                        f"graph.clone_node).")
                raise IRVerificationError(
                    f'{at}: uses {names.value(value)} before it is defined (SSA violation).')
            if node not in value.users:
                raise IRVerificationError(
                    f'{at}: the use of {names.value(value)} is not in its users.')
        for index, value in enumerate(node.outputs):
            if value.producer is not node or value.index != index:
                raise IRVerificationError(f'{at}: result {index} does not point back to it.')
            if value in defined:
                raise IRVerificationError(f'{at}: {names.value(value)} is defined twice.')
            defined.add(value)
        if kind == 'primitive':
            _check_primitive(node, at, names)
        elif kind == 'state_read' or kind == 'state_write':
            if node.state is None:
                raise IRVerificationError(f'{at}: a state operation without a state.')
            values = node.outputs if kind == 'state_read' else node.inputs
            avals = node.state.avals
            if kind == 'state_write' and len(values) == len(avals) and \
                    node.state in names.reshaped_states():
                pass  # a write that gives the state new avals (vmap's out_states)
            elif len(values) != len(avals) or not all(
                    _same_type(v.aval, a) for v, a in zip(values, avals)):
                got = ', '.join(names.value(v) for v in values)
                want = ', '.join(short_type(a) for a in avals)
                raise IRVerificationError(
                    f'{at}: State {node.state.label()} holds ({want}) but the {kind} has '
                    f'({got}).')
        elif kind == 'constant':
            value = node.params.get('value')
            aval = node.outputs[0].aval if len(node.outputs) == 1 else None
            if aval is None or getattr(value, 'shape', None) != aval.shape or \
                    getattr(value, 'dtype', None) != aval.dtype:
                raise IRVerificationError(
                    f'{at}: a constant must have one result typed as its array '
                    f'({getattr(value, "dtype", "?")}{list(getattr(value, "shape", ()))}).')
        elif kind == 'region':
            _check_region(node, where, names)
        for i, sub in enumerate(node.subgraphs):
            if sub.parent is not node:
                raise IRVerificationError(f'{at}: body {i} does not point back to its region.')
            _check_graph(sub, f'{where} > {node.name} body {i}', names)
    if not nodes or nodes[-1].kind != 'output':
        raise IRVerificationError(f'{where}: the graph has no output node.')


def _check_region(node, where: str, names: _Names):
    """The region's kind checks its operands, bodies and results against its signature."""
    from ._graph import Literal
    from .regions import REGION_KINDS

    def name_of(value) -> str:  # '%n' as printed (the kind adds the type where it helps)
        return repr(value) if isinstance(value, Literal) else names()(value)

    kind = REGION_KINDS.get(node.op)
    if kind is None:
        raise IRVerificationError(
            f'{where}: region {node.op!r} has no registered kind (known: '
            f'{", ".join(sorted(REGION_KINDS))}); register one with '
            f'brainstate.ir.regions.register_region_kind.')
    try:
        kind.verify(node, name_of)
    except IRVerificationError as error:
        raise IRVerificationError(f'{where}: {error}') from None


def _check_canonical(graph, names: _Names):
    """States stand only at the edges: reads at entry, one write per state at exit."""
    from ._printer import describe_node
    phase = 'entry'  # entry -> body -> exit
    read, written = set(), set()
    for node in graph.nodes:
        if node.kind in ('input', 'output'):
            continue
        if node.kind == 'state_read':
            if phase != 'entry':
                raise IRVerificationError(
                    f'Canonical form: {describe_node(node, names())} reads State '
                    f'{node.state.label()} after the entry block; run the hoist-states pass.')
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
                    f'Canonical form: {describe_node(node, names())} stands after the exit '
                    f'writes.')
            phase = 'body'
            for sub in node.subgraphs:
                for inner in sub.walk():
                    if inner.is_state_op:
                        raise IRVerificationError(
                            f'Canonical form: {describe_node(inner, names())} inside region '
                            f'{node.name} touches State {inner.state.label()}; run the '
                            f'hoist-states pass.')


def verify(graph, canonical: bool | None = None):
    """Raise :class:`IRVerificationError` if ``graph`` is malformed.

    Args:
      graph: the Graph.
      canonical: also check the canonical form lowering needs (state ops only at the top
        level's entry and exit). ``None`` checks it when ``graph.meta['canonical']`` is set.
    """
    from ._printer import root_graph
    names = _Names(root_graph(graph))
    _check_graph(graph, graph.name, names)
    if canonical is None:
        canonical = bool(graph.meta.get('canonical'))
    if canonical:
        _check_canonical(graph, names)
    return graph
