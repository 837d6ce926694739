"""The state IR: a Graph of Nodes in program order, connected by SSA Values.

A node's ``kind`` is one of:

* ``input``: a graph parameter (one node per input value);
* ``constant``: an array the traced function closed over (``node.params['value']``);
* ``state_read``: reads a State; no operands, one result per leaf of its value;
* ``state_write``: writes a State; one operand per leaf, no results;
* ``primitive``: a JAX primitive (``node.op``) with its ``params``;
* ``region``: a loop or branch (``node.op`` names it) holding sub-graphs in ``node.subgraphs``;
  regions are closed: the values a body uses come in through its own ``input`` nodes;
* ``output``: the graph's results (last node, one per graph).

Passes edit graphs through the methods here: ``Graph.create_node``, ``insert_before`` /
``insert_after``, ``Node.replace_input``, ``Value.replace_all_uses_with``, ``Graph.erase_node``.
``node.meta`` is a free dict for analysis results.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterable, Iterator

import numpy as np

__all__ = ['Graph', 'Node', 'Value', 'Literal', 'NODE_KINDS']

NODE_KINDS = ('input', 'constant', 'state_read', 'state_write', 'primitive', 'region', 'output')

_value_ids = itertools.count()


class Value:
    """An SSA value: defined once, by ``producer`` (its ``index``-th result), typed by ``aval``."""

    __slots__ = ('aval', 'producer', 'index', 'users', 'uid', '__weakref__')

    def __init__(self, aval, producer: 'Node | None' = None, index: int = 0):
        self.aval = aval
        self.producer = producer
        self.index = index
        self.users: dict[Node, None] = {}  # an ordered set of the nodes using this value
        self.uid = next(_value_ids)

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    def replace_all_uses_with(self, new: 'Value | Literal'):
        """Make every node that uses this value use ``new`` instead."""
        for node in list(self.users):
            node.replace_input(self, new)

    def __repr__(self):
        from ._printer import short_type
        return f'Value({short_type(self.aval)}, uid={self.uid})'


class Literal:
    """A scalar constant written inline as an operand (``1.0:f32[]``), as in a jaxpr."""

    __slots__ = ('val', 'aval')

    def __init__(self, val, aval):
        self.val = val
        self.aval = aval

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    def key(self):
        """A hashable identity of the constant: equal only when dtype, shape, weak type and
        bits are equal (so ``0.0`` and ``-0.0`` differ, and NaNs compare by bit pattern)."""
        aval = self.aval
        try:
            bits = np.asarray(self.val, dtype=aval.dtype).tobytes()
        except (TypeError, ValueError):  # a typed PRNG key or other extended dtype
            return ('object', id(self.val))
        return (aval.dtype, aval.shape, getattr(aval, 'weak_type', False), bits)

    def __repr__(self):
        from ._printer import short_type
        return f'{_format_literal(self.val)}:{short_type(self.aval)}'


def _format_literal(val):
    try:
        return str(np.asarray(val).item())
    except (TypeError, ValueError):  # a typed PRNG key or other extended dtype
        return str(val)


class Node:
    """One operation of a Graph. See the module docstring for the kinds.

    Attributes:
      kind: the node kind.
      op: the JAX primitive (``primitive`` nodes), the region's name (``region`` nodes), or None.
      inputs: operands, each a :class:`Value` or :class:`Literal`.
      outputs: the values this node defines.
      params: the primitive's parameters, or the region's options.
      state: the State a ``state_read`` / ``state_write`` refers to.
      subgraphs: the bodies of a region.
      meta: a free dict for analyses and passes (printed by ``Graph.format(meta=True)``).
      source_info: where in the user's code the operation was traced, when known.
    """

    __slots__ = ('kind', 'op', 'inputs', 'outputs', 'params', 'state', 'subgraphs', 'meta',
                 'source_info', 'graph', '_prev', '_next', 'extra')

    def __init__(self, kind: str, *, op=None, inputs: Iterable = (), output_avals: Iterable = (),
                 params: dict | None = None, state=None, subgraphs: Iterable['Graph'] = (),
                 source_info=None, extra: dict | None = None):
        if kind not in NODE_KINDS:
            raise ValueError(f'Unknown node kind {kind!r}; expected one of {NODE_KINDS}.')
        self.kind = kind
        self.op = op
        self.inputs: list = []
        self.outputs = [Value(aval, self, i) for i, aval in enumerate(output_avals)]
        self.params = dict(params or {})
        self.state = state
        self.subgraphs = list(subgraphs)
        self.meta: dict[str, Any] = {}
        self.source_info = source_info
        self.extra = dict(extra or {})  # what lowering needs that is not a param (effects, ctx)
        self.graph: Graph | None = None
        self._prev: Node | None = None
        self._next: Node | None = None
        for value in inputs:
            self._add_input(value)

    # -- operands ----------------------------------------------------------------------------

    def _add_input(self, value):
        self.inputs.append(value)
        if isinstance(value, Value):
            value.users[self] = None

    def replace_input(self, old: Value, new: 'Value | Literal'):
        """Replace every use of ``old`` among this node's operands by ``new``."""
        for i, value in enumerate(self.inputs):
            if value is old:
                self.inputs[i] = new
        old.users.pop(self, None)
        if isinstance(new, Value):
            new.users[self] = None

    def set_inputs(self, values: Iterable):
        """Replace all operands at once."""
        self._drop_inputs()
        for value in values:
            self._add_input(value)

    def _drop_inputs(self):
        for value in self.inputs:
            if isinstance(value, Value):
                value.users.pop(self, None)
        self.inputs = []

    # -- description -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The operation's name as printed: the primitive name, region name, or the kind."""
        if self.kind == 'primitive':
            return self.op.name
        if self.kind == 'region':
            return str(self.op)
        return self.kind

    @property
    def is_state_op(self) -> bool:
        return self.kind in ('state_read', 'state_write')

    @property
    def has_effect(self) -> bool:
        """Whether removing this node could change what the program does, beyond its results."""
        if self.kind in ('state_write', 'output', 'input'):
            return True
        if self.kind == 'primitive':
            return bool(self.extra.get('effects'))
        if self.kind == 'region':
            return any(g.has_effects() for g in self.subgraphs)
        return False

    def users(self) -> list['Node']:
        """The nodes using any result of this node, in no particular order, each once."""
        seen: dict[Node, None] = {}
        for value in self.outputs:
            seen.update(value.users)
        return list(seen)

    def __repr__(self):
        from ._printer import format_node
        return f'<Node {format_node(self, _Namer())}>'


class _Namer:
    """Gives values short sequential names (%0, %1, ...) in the order a printer meets them."""

    def __init__(self):
        self.names: dict[int, str] = {}

    def __call__(self, value) -> str:
        if isinstance(value, Literal):
            return repr(value)
        name = self.names.get(value.uid)
        if name is None:
            name = self.names[value.uid] = f'%{len(self.names)}'
        return name


class Graph:
    """A sequence of Nodes in program order, ending with one ``output`` node.

    Build one with :func:`brainstate.ir.trace` (from a Python function) or by hand with
    :meth:`add_input`, :meth:`create_node` and :meth:`set_outputs`.

    Attributes:
      meta: a free dict (``meta['canonical']`` is set once states stand only at the edges).
      in_tree / out_tree: the pytree structures of the traced function's arguments and results.
      name: a label used in printing.
    """

    def __init__(self, name: str = 'graph'):
        self.name = name
        self._root = _Sentinel()
        self._root._prev = self._root._next = self._root
        self._len = 0
        self._nodes_cache: list | None = None
        self.meta: dict[str, Any] = {}
        self.in_tree = None
        self.out_tree = None
        self.parent: Node | None = None  # the region node owning this graph, if any
        self._insert_anchor = None

    # -- iteration ---------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        """The nodes in program order (a snapshot: editing while iterating it is safe)."""
        cached = self._nodes_cache
        if cached is None:
            cached = []
            node = self._root._next
            while node is not self._root:
                cached.append(node)
                node = node._next
            self._nodes_cache = cached  # kept until the next insertion or removal
        return list(cached)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self):
        return self._len

    def walk(self) -> Iterator[Node]:
        """Every node, in program order, descending into region bodies (a region before its
        body's nodes)."""
        for node in self.nodes:
            yield node
            for sub in node.subgraphs:
                yield from sub.walk()

    def find_nodes(self, kind: str | None = None, name: str | None = None,
                   recursive: bool = True) -> list[Node]:
        """The nodes of a kind and/or operation name, in program order."""
        nodes = self.walk() if recursive else self.nodes
        return [n for n in nodes
                if (kind is None or n.kind == kind) and (name is None or n.name == name)]

    @property
    def input_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == 'input']

    @property
    def inputs(self) -> list[Value]:
        """The graph's parameters, in order."""
        return [n.outputs[0] for n in self.input_nodes]

    @property
    def output_node(self) -> Node | None:
        last = self._root._prev
        return last if last is not self._root and last.kind == 'output' else None

    @property
    def outputs(self) -> list:
        """The graph's results (Values or Literals), in order."""
        out = self.output_node
        return list(out.inputs) if out is not None else []

    def has_effects(self) -> bool:
        """Whether the graph (or any region in it) reads or writes a state or has a JAX
        effect."""
        return any(n.is_state_op or (n.kind == 'primitive' and n.extra.get('effects'))
                   for n in self.walk())

    def states(self) -> list:
        """The states this graph reads or writes (regions included), in order of first use."""
        seen: dict = {}
        for node in self.walk():
            if node.is_state_op:
                seen.setdefault(node.state, None)
        return list(seen)

    # -- building and editing ----------------------------------------------------------------

    def _link_before(self, node: Node, anchor):
        if node.graph is not None:
            raise ValueError('The node already belongs to a graph; erase it first.')
        prev = anchor._prev
        node._prev, node._next = prev, anchor
        prev._next = node
        anchor._prev = node
        node.graph = self
        for sub in node.subgraphs:
            sub.parent = node
        self._len += 1
        self._nodes_cache = None
        return node

    def append(self, node: Node) -> Node:
        """Add ``node`` at the insertion point: the end (before the output node if there is
        one), or where an ``inserting_before`` / ``inserting_after`` block says."""
        anchor = self._insert_anchor
        if anchor is None:
            anchor = self.output_node or self._root
        return self._link_before(node, anchor)

    @contextlib.contextmanager
    def inserting_before(self, node: Node):
        """Within the block, ``create_node`` / ``append`` insert just before ``node``."""
        previous, self._insert_anchor = self._insert_anchor, node
        try:
            yield
        finally:
            self._insert_anchor = previous

    @contextlib.contextmanager
    def inserting_after(self, node: Node):
        """Within the block, created nodes follow ``node`` (in creation order)."""
        with self.inserting_before(node._next):
            yield

    def insert_before(self, anchor: Node, node: Node) -> Node:
        """Add ``node`` just before ``anchor``."""
        return self._link_before(node, anchor)

    def insert_after(self, anchor: Node, node: Node) -> Node:
        """Add ``node`` just after ``anchor``."""
        return self._link_before(node, anchor._next)

    def prepend(self, node: Node) -> Node:
        """Add ``node`` at the start, after the input nodes."""
        anchor = self._root._next
        while anchor is not self._root and anchor.kind == 'input':
            anchor = anchor._next
        return self._link_before(node, anchor)

    def move_before(self, anchor: Node, node: Node) -> Node:
        """Move a node of this graph so that it stands just before ``anchor``."""
        self._unlink(node)
        return self._link_before(node, anchor)

    def move_to_entry(self, node: Node) -> Node:
        """Move a node of this graph to the start, right after the input nodes."""
        self._unlink(node)
        return self.prepend(node)

    def create_node(self, kind: str, **kwargs) -> Node:
        """Create a node (arguments as for :class:`Node`) and append it."""
        return self.append(Node(kind, **kwargs))

    def add_input(self, aval, name: str | None = None) -> Value:
        """Add a graph parameter after the existing ones; returns its value."""
        node = Node('input', output_avals=[aval], params={'name': name} if name else None)
        last_input = None
        for n in self.nodes:
            if n.kind == 'input':
                last_input = n
        if last_input is None:
            self._link_before(node, self._root._next)
        else:
            self.insert_after(last_input, node)
        return node.outputs[0]

    def set_outputs(self, values: Iterable):
        """Set the graph's results (creating the output node if needed)."""
        out = self.output_node
        if out is None:
            out = self._link_before(Node('output'), self._root)
        out.set_inputs(values)
        return out

    def _unlink(self, node: Node):
        node._prev._next = node._next
        node._next._prev = node._prev
        node._prev = node._next = None
        node.graph = None
        self._len -= 1
        self._nodes_cache = None

    def erase_node(self, node: Node):
        """Remove a node whose results are unused."""
        if node.graph is not self:
            raise ValueError(f'{node!r} is not in this graph.')
        for value in node.outputs:
            if value.users:
                users = ', '.join(repr(u) for u in list(value.users)[:3])
                raise ValueError(f'Cannot erase {node!r}: its result is still used by {users}.')
        node._drop_inputs()
        self._unlink(node)

    # -- views ---------------------------------------------------------------------------------

    def format(self, meta: bool = True, source: bool = False) -> str:
        """The readable text form. Analysis results in ``node.meta`` are shown as comments
        (``meta=False`` hides them); ``source=True`` adds the user's file and line."""
        from ._printer import format_graph
        return format_graph(self, meta=meta, source=source)

    def __str__(self):
        return self.format()

    def __repr__(self):
        return f'<Graph {self.name}: {len(self)} nodes, {len(self.states())} states>'

    def verify(self, canonical: bool | None = None):
        """Check SSA form, types and where state operations stand; raise IRVerificationError."""
        from ._verifier import verify
        verify(self, canonical=canonical)
        return self

    def to_dot(self) -> str:
        """The graph in Graphviz DOT: state reads and writes drawn apart from compute, regions
        as clusters."""
        from ._export import to_dot
        return to_dot(self)

    def to_svg(self, path: str | None = None) -> str:
        """Render with Graphviz's ``dot`` program; returns the SVG text (and writes it to
        ``path`` if given). Raises a clear error when Graphviz is not installed."""
        from ._export import to_svg
        return to_svg(self, path)

    def state_table(self) -> str:
        """A table with one row per state: where it is read and written (with the user's
        source file and line), and whether it is read-only."""
        from ._export import state_table
        return state_table(self)

    def diff(self, other: 'Graph', context: int = 3) -> str:
        """A unified diff of this graph's text against ``other``'s (e.g. before/after a pass)."""
        from ._export import diff
        return diff(self, other, context)

    def to_networkx(self):
        """A ``networkx.MultiDiGraph`` of the nodes, edges carrying values (regions as nested
        node attributes)."""
        from ._export import to_networkx
        return to_networkx(self)

    def copy(self) -> 'Graph':
        """A deep copy of the graph structure (states, primitives and params are shared)."""
        from ._copy import copy_graph
        return copy_graph(self)


class _Sentinel:
    __slots__ = ('_prev', '_next', 'kind')

    def __init__(self):
        self.kind = None
