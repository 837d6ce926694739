"""Views of a Graph: networkx for analysis, Graphviz DOT/SVG for pictures, a per-state table,
and text diffs for before/after comparisons."""

from __future__ import annotations

import difflib
import html
import shutil
import subprocess

from .._errors import BrainStateError

__all__ = ['to_networkx', 'to_dot', 'to_svg', 'state_table', 'diff']


def to_networkx(graph):
    """A ``networkx.MultiDiGraph``: one vertex per node (attributes ``kind``, ``name``,
    ``state``, ``node``), one edge per use of a value (attributes ``value``, ``aval``).

    Region bodies become their own MultiDiGraphs, stored in the region vertex's ``subgraphs``.
    """
    import networkx as nx
    from ._graph import Value
    g = nx.MultiDiGraph(name=graph.name)
    ids = {}
    for i, node in enumerate(graph.nodes):
        ids[node] = i
        g.add_node(i, kind=node.kind, name=node.name, node=node,
                   state=node.state.label() if node.state is not None else None,
                   subgraphs=[to_networkx(sub) for sub in node.subgraphs])
    for node in graph.nodes:
        for slot, value in enumerate(node.inputs):
            if isinstance(value, Value) and value.producer in ids:
                g.add_edge(ids[value.producer], ids[node], value=value, slot=slot,
                           aval=value.aval.str_short())
    return g


_STYLE = {
    'input': 'shape=oval style=filled fillcolor="#eeeeee"',
    'output': 'shape=oval style=filled fillcolor="#eeeeee"',
    'constant': 'shape=note',
    'state_read': 'shape=box style="filled,rounded" fillcolor="#cfe5ff" penwidth=1.5',
    'state_write': 'shape=box style="filled,rounded" fillcolor="#ffd9cc" penwidth=1.5',
    'primitive': 'shape=box',
    'region': 'shape=box3d style=filled fillcolor="#f3f0d8"',
}


_ROLES = {'consts': 'invariant', 'carries': 'carry', 'xs': 'slice'}


def _body_input_roles(node, index, namer) -> dict:
    """``{value uid: 'carry of @Net.V'}`` for the inputs of body ``index`` of a region: the role
    its kind gives each input and the state (or value) the matching operand holds."""
    try:
        from .regions import region_kind
        body = region_kind(node).signature(node).bodies[index]
        inputs = node.subgraphs[index].inputs
        roles = {}
        for group, positions in body.input_groups.items():
            for k in range(*positions.indices(len(inputs))):
                position = body.input_operands[k]
                operand = node.inputs[position] if position is not None else None
                producer = getattr(operand, 'producer', None)
                if producer is not None and producer.kind == 'state_read':
                    source = f'@{producer.state.label()}'
                elif operand is not None:
                    source = namer(operand)
                else:
                    source = None
                role = _ROLES.get(group, group)
                roles[inputs[k]] = f'{role} of {source}' if source else role
        return roles
    except Exception:  # a region kind without a signature: no roles, the picture still draws
        return {}


def _label(node, namer, roles=None) -> str:
    from ._graph import Literal
    from ._printer import short_type
    if node.kind == 'input' and roles:  # a region body's inputs: one line each, with its role
        text = 'input\\n' + '\\n'.join(
            f'{namer(v)}:{short_type(v.aval)} {roles.get(v, "")}'.rstrip()
            for v in node.outputs)
        return html.escape(text, quote=True).replace('&#x27;', "'")
    if node.is_state_op:
        text = f'{node.kind}\\n@{node.state.label()}'
    elif node.kind in ('input', 'output', 'constant'):
        text = node.kind
    else:
        text = node.name
    if node.outputs:  # %3:f32[4] = add
        text = ' '.join(f'{namer(v)}:{short_type(v.aval)}' for v in node.outputs) + ' = ' + text
    if node.inputs:   # its operands as the text IR names them, literals included
        operands = [f'{v!r}' if isinstance(v, Literal) else namer(v) for v in node.inputs]
        text += '\\n' + ' '.join(operands)
    if node.meta:
        text += '\\n' + ' '.join(f'{k}={v}' for k, v in node.meta.items())
    return html.escape(text, quote=True).replace('&#x27;', "'")


_FOLDED_STYLE = 'shape=box style="filled,dashed" fillcolor="#eeeeee" fontcolor="#555555"'


def _folded_label(nodes, namer) -> str:
    names = [namer(v) for node in nodes for v in node.outputs]
    span = f' ({names[0]}..{names[-1]})' if len(names) > 1 else f' ({names[0]})' if names else ''
    text = (f'progress bar\\n{len(nodes)} nodes folded{span}\\n'
            f'counter, host callbacks: unfold to see them')
    return html.escape(text, quote=True)


def _emit(graph, lines, ids, prefix, indent, namer, roles=None, fold=True):
    from ._graph import Value
    from ._printer import short_type
    from ._scopes import PROGRESS_BAR_SCOPE, in_scope
    folded = [node for node in graph.nodes if in_scope(node, PROGRESS_BAR_SCOPE)] if fold else []
    if folded and roles is not None:  # a body input only the bookkeeping uses: the counter
        folded_set = set(folded)
        for node in graph.nodes:
            if node.kind == 'input':
                for value in node.outputs:
                    if value.users and all(u in folded_set for u in value.users):
                        roles[value] = 'progress bar counter'
    reads, writes = [], []
    for node in graph.nodes:
        if node in ids:  # folded into the box already drawn
            continue
        if folded and node is folded[0]:  # the progress bar's bookkeeping: one box for all
            box = f'{prefix}n{len(ids)}'
            lines.append(f'{indent}{box} [label="{_folded_label(folded, namer)}" '
                         f'{_FOLDED_STYLE}];')
            for each in folded:
                ids[each] = box
            continue
        name = f'{prefix}n{len(ids)}'
        ids[node] = name
        lines.append(f'{indent}{name} [label="{_label(node, namer, roles)}" {_STYLE[node.kind]}];')
        if node.kind == 'state_read':
            reads.append(name)
        elif node.kind == 'state_write':
            writes.append(name)
        for i, sub in enumerate(node.subgraphs):
            cluster = f'{name}_body{i}'
            lines.append(f'{indent}subgraph cluster_{cluster} {{')
            lines.append(f'{indent}  label="{node.name}: {sub.name}"; style=dashed;')
            _emit(sub, lines, ids, cluster + '_', indent + '  ', namer,
                  _body_input_roles(node, i, namer), fold)
            lines.append(f'{indent}}}')
            body_ids = [ids[n] for n in sub.nodes]
            if body_ids:
                lines.append(f'{indent}{name} -> {body_ids[0]} [style=dotted arrowhead=none '
                             f'lhead=cluster_{cluster}];')
    drawn = set()
    for node in graph.nodes:
        for value in node.inputs:
            if isinstance(value, Value) and value.producer in ids:
                edge = (ids[value.producer], ids[node], value.uid)
                if edge[0] == edge[1] or edge in drawn:  # inside the folded box, or drawn
                    continue
                drawn.add(edge)
                lines.append(f'{indent}{edge[0]} -> {edge[1]} '
                             f'[label="{namer(value)}:{short_type(value.aval)}"];')
    # State traffic apart from compute: reads on top, writes at the bottom.
    if reads:
        lines.append(f'{indent}{{rank=same; {"; ".join(reads)};}}')
    if writes:
        lines.append(f'{indent}{{rank=same; {"; ".join(writes)};}}')


def to_dot(graph, before=None, fold_progress_bar: bool = True) -> str:
    """Graphviz DOT text: state reads (blue) and writes (red) apart from compute, regions as
    dashed clusters holding their bodies. Each box and edge carries the ``%n`` names of the
    printed IR (``print(graph)``), and literal operands are shown in the box that uses them.

    Args:
      graph: the graph to draw.
      before: another graph (e.g. the traced one, ``graph`` being it after the passes) drawn
        beside ``graph``, on its left, each in a frame with its name; each keeps its own
        ``%n`` names, as each prints.
      fold_progress_bar: draw a loop's progress-bar bookkeeping (``pbar=``: the iteration
        counter, the host callbacks; see :func:`brainstate.ir.progress_bar_nodes`) as one
        box; False draws its nodes one by one.
    """
    from ._printer import name_values
    lines = [f'digraph "{graph.name}" {{',
             '  compound=true; rankdir=TB;',
             '  node [fontname="monospace" fontsize=10]; edge [fontname="monospace" fontsize=8];']
    if before is None:
        _emit(graph, lines, {}, '', '  ', name_values(graph), fold=fold_progress_bar)
    else:
        ids = {}
        for side, g in (('before', before), ('after', graph)):
            lines.append(f'  subgraph cluster_{side} {{')
            lines.append(f'    label="{side}: {html.escape(g.name, quote=True)}"; '
                         f'labeljust=l; style=solid; color="#999999";')
            _emit(g, lines, ids, f'{side}_', '    ', name_values(g), fold=fold_progress_bar)
            lines.append('  }')
    lines.append('}')
    return '\n'.join(lines)


def to_svg(graph, path: str | None = None, before=None, fold_progress_bar: bool = True) -> str:
    """Render the graph to SVG with Graphviz's ``dot`` program (``before`` and
    ``fold_progress_bar`` as for :func:`to_dot`); writes it to ``path`` when given."""
    dot = shutil.which('dot')
    if dot is None:
        raise BrainStateError(
            "Drawing a graph needs Graphviz's `dot` program, which is not installed. Install "
            "it (Debian/Ubuntu: `apt-get install graphviz`, macOS: `brew install graphviz`, "
            "conda: `conda install graphviz`), or save `graph.to_dot()` to a .dot file and "
            "render it elsewhere.")
    result = subprocess.run([dot, '-Tsvg'], input=to_dot(graph, before, fold_progress_bar),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrainStateError(f'Graphviz failed to render the graph: {result.stderr.strip()}')
    if path is not None:
        with open(path, 'w') as f:
            f.write(result.stdout)
    return result.stdout


def state_table(graph) -> str:
    """One row per state: its class and type, how often and where it is read and written."""
    from ._printer import short_type, source_location
    rows = {}
    for node in graph.walk():
        if not node.is_state_op:
            continue
        row = rows.setdefault(node.state, {'read': [], 'write': []})
        where = source_location(node) or '?'
        row['read' if node.kind == 'state_read' else 'write'].append(where)
    header = ('state', 'class', 'type', 'reads', 'writes', 'read at', 'written at')
    table = [header]
    for state, row in rows.items():
        types = ' '.join(short_type(a) for a in state.avals)
        table.append((state.label(), type(state).__name__, types, str(len(row['read'])),
                      str(len(row['write'])), ', '.join(dict.fromkeys(row['read'])) or '-',
                      ', '.join(dict.fromkeys(row['write'])) or '-'))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def diff(before, after, context: int = 3) -> str:
    """A unified diff between two graphs' texts (empty when they print the same)."""
    return '\n'.join(difflib.unified_diff(
        before.format().splitlines(), after.format().splitlines(),
        fromfile=f'{before.name} (before)', tofile=f'{after.name} (after)', lineterm='',
        n=context))
