"""The text form of the state IR: one line per node, regions indented under their node.

    graph step(%0:f32[3]) {
      %1:f32[] = state_read @Net.count
      %2:f32[] = add %1 1.0:f32[]
      state_write @Net.count %2
      ...
      return %6
    }
"""

from __future__ import annotations

import json
import re

import jax
import numpy as np
from jax.extend import source_info_util

__all__ = ['format_graph', 'format_node', 'source_location', 'value_name', 'describe_node',
           'root_graph', 'name_values']

_MAX_PARAM_CHARS = 60


def _typed(namer, value) -> str:
    from ._graph import Literal
    if isinstance(value, Literal):
        return repr(value)
    return f'{namer(value)}:{short_type(value.aval)}'


def short_type(aval) -> str:
    """``f32[3,2]``: the compact type notation of jaxprs."""
    try:
        return aval.str_short(short_dtypes=True)
    except TypeError:
        return aval.str_short()


# Arrays up to this many elements are written out in full by the exact form (reproducers);
# larger ones as ``array<float32[1000,1000]>``, which the parser reads back as zeros.
_MAX_EXACT_ELEMENTS = 4096


def _format_param(value, exact: bool = False) -> str:
    if hasattr(value, 'eqns') or hasattr(value, 'jaxpr'):
        return '{jaxpr}'
    if isinstance(value, (np.ndarray, jax.Array)):
        if exact and np.size(value) <= _MAX_EXACT_ELEMENTS and \
                not jax.dtypes.issubdtype(value.dtype, jax.dtypes.extended):
            return f'array({np.asarray(value).tolist()!r}, dtype={value.dtype})'
        return f'array<{value.dtype}{list(value.shape)}>'
    text = str(value)
    if isinstance(value, tuple) and not value:
        text = '()'
    text = ' '.join(text.split())
    if not exact and len(text) > _MAX_PARAM_CHARS:
        text = text[:_MAX_PARAM_CHARS - 3] + '...'
    return text


# A state label printed as it is: no spaces, brackets or quotes (a module path, ``Net.V#2``).
# Any other (``State(..., name='my state')``) is printed quoted, ``@"my state"``, so the text
# splits into tokens, and parses back, unambiguously.
_PLAIN_LABEL = re.compile(r'[^\s{}()\[\]"\']+')


def _state_label(state, namer=None) -> str:
    """``@Net.w`` (``@Net.V{['a'] ['b']}`` for a structured value, ``@"my state"`` for a label
    with spaces, brackets or quotes): the state as printed, its label made unique within the
    print by ``namer`` (see ``_Namer.state_label``)."""
    unique = getattr(namer, 'state_label', None)
    label = unique(state) if unique is not None else state.label()
    label = '@' + (label if _PLAIN_LABEL.fullmatch(label) else json.dumps(label))
    treedef = state.treedef
    if treedef.num_leaves != 1 or treedef.num_nodes != 1:
        paths, _ = jax.tree_util.tree_flatten_with_path(treedef.unflatten(range(treedef.num_leaves)))
        keys = ' '.join(jax.tree_util.keystr(p) for p, _ in paths)
        label += f'{{{keys}}}'
    return label


def source_location(node) -> str | None:
    """``file.py:12 (fn)`` for the user code that produced ``node``, when known."""
    if node.source_info is None:
        return None
    try:
        return source_info_util.summarize(node.source_info)
    except Exception:  # source info of foreign or hand-built nodes
        return None


def format_node(node, namer, meta: bool = False, source: bool = False,
                exact: bool = False) -> str:
    """One node as a line (a region's body is not included). ``exact`` writes every param (also
    those that are None), untruncated, and small arrays in full: the form
    :func:`brainstate.ir.parse` reads back."""
    outs = ' '.join(_typed(namer, v) for v in node.outputs)
    ins = ' '.join(namer(v) for v in node.inputs)
    if node.kind == 'input':
        return f'{outs} = input'
    if node.kind == 'output':
        text = f'return {ins}'
    elif node.kind == 'constant':
        text = f'{outs} = constant {_format_param(node.params["value"], exact)}'
    elif node.is_state_op:
        text = f'{node.kind} {_state_label(node.state, namer)}'
        if ins:
            text += f' {ins}'
        if outs:
            text = f'{outs} = {text}'
    else:
        # The ordinary form leaves out params that are None (and private ones); the exact form
        # keeps every one, since JAX's lowering rules need them all.
        if exact:
            params = node.params
        else:
            params = {k: v for k, v in node.params.items()
                      if not k.startswith('_') and v is not None}
        param_text = ' '.join(f'{k}={_format_param(v, exact)}' for k, v in sorted(params.items()))
        text = node.name + (f'[{param_text}]' if param_text else '')
        if ins:
            text += f' {ins}'
        if outs:
            text = f'{outs} = {text}'
    notes = []
    if node.kind == 'state_read' and getattr(node.state, '_shardings', None) is not None:
        # Where the state's value lies (a comment: the parser skips it).
        from .._state_sharding import spec_text
        notes.append('sharding=' + ' '.join(
            '-' if s is None else spec_text(s) for s in node.state._shardings))
    if meta and node.meta:
        # Flags read best bare: `# read_only donate`; false flags are left out.
        shown = [k if v is True else f'{k}={_format_param(v)}'
                 for k, v in node.meta.items() if v is not False]
        if shown:
            notes.append(' '.join(shown))
    if source:
        where = source_location(node)
        if where:
            notes.append(where)
    if notes:
        text += '    # ' + '; '.join(notes)
    return text


def _format_body(graph, namer, indent, lines, meta, source, exact=False):
    for node in graph.nodes:
        if node.kind == 'input':
            continue
        line = format_node(node, namer, meta, source, exact)
        if node.subgraphs:
            lines.append(f'{indent}{line} {{')
            for i, sub in enumerate(node.subgraphs):
                args = ' '.join(_typed(namer, v) for v in sub.inputs)
                lines.append(f'{indent}  {sub.name}({args}) {{')
                _format_body(sub, namer, indent + '    ', lines, meta, source, exact)
                lines.append(f'{indent}  }}')
            lines.append(f'{indent}}}')
        else:
            lines.append(indent + line)


def format_graph(graph, meta: bool = True, source: bool = False, exact: bool = False) -> str:
    """The whole graph as text. ``exact=True`` gives the form :func:`brainstate.ir.parse` reads
    back without loss (every param, untruncated; small arrays in full)."""
    from ._graph import _Namer
    namer = _Namer()
    args = ', '.join(_typed(namer, v) for v in graph.inputs)
    lines = [f'graph {graph.name}({args}) {{']
    _format_body(graph, namer, '  ', lines, meta, source, exact)
    lines.append('}')
    return '\n'.join(lines)


# -- %n names outside a full print (error messages) ------------------------------------------

def root_graph(graph):
    """The top-level graph holding ``graph`` (itself, unless it is a region body)."""
    while graph.parent is not None and graph.parent.graph is not None:
        graph = graph.parent.graph
    return graph


def name_values(graph):
    """A namer giving every value of ``graph`` (regions included) the ``%n`` name it has when
    ``graph`` is printed; only names, no text, so an error message costs one walk."""
    from ._graph import _Namer, Value
    namer = _Namer()

    def name(value):
        if isinstance(value, Value):
            namer(value)

    def body(g):
        for node in g.nodes:
            if node.kind == 'input':
                continue
            if node.state is not None:  # state labels too, in print order (see _Namer)
                namer.state_label(node.state)
            for v in node.outputs:
                name(v)
            for v in node.inputs:
                name(v)
            for sub in node.subgraphs:
                for v in sub.inputs:
                    name(v)
                body(sub)

    for v in graph.inputs:
        name(v)
    body(graph)
    return namer


def state_labels(graph) -> dict:
    """``{label: State}`` with the labels the printed IR of ``graph`` gives its states
    (``Net.V``, and ``Net.V#2`` for a second State of the same label): the ``states=``
    :func:`brainstate.ir.parse` takes to read a print of ``graph`` back onto the same States."""
    from ._graph import Graph
    if not isinstance(graph, Graph):
        raise TypeError(f'state_labels takes a brainstate.ir.Graph (the graph whose print is '
                        f'read back), not {type(graph).__name__}.')
    namer = name_values(root_graph(graph))
    return {label: state for state, label in namer.state_labels.items()}


def _graph_of(value):
    producer = getattr(value, 'producer', None)
    return producer.graph if producer is not None else None


def value_name(value, namer=None) -> str:
    """``%3:f32[5,8]``: a value as the printed IR of its top-level graph names it (a Literal
    prints as itself; a value of no graph as ``<detached f32[]>``)."""
    from ._graph import Literal
    if isinstance(value, Literal):
        return repr(value)
    graph = _graph_of(value)
    if namer is None:
        if graph is None:
            return f'<detached {short_type(value.aval)}>'
        namer = name_values(root_graph(graph))
    if value not in namer.names and graph is None:
        return f'<detached {short_type(value.aval)}>'
    return f'{namer(value)}:{short_type(value.aval)}'


def describe_node(node, namer=None) -> str:
    """```%3:f32[] = mul %1 %2`` in graph 'step'``: a node as its printed line, with the
    ``%n`` names of the printed IR of its top-level graph."""
    graph = node.graph
    if namer is None:
        from ._graph import _Namer
        namer = name_values(root_graph(graph)) if graph is not None else _Namer()
    try:
        line = format_node(node, namer)
    except Exception:  # a node broken beyond printing
        line = f'{node.kind} {node.name}'
    where = f" in graph '{graph.name}'" if graph is not None else ' (in no graph)'
    return f'`{line}`{where}'
