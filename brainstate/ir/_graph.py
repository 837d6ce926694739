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
``insert_after``, ``clone_node``, ``move_before``, ``erase_node``, ``replace_node``,
``insert_input`` /
``remove_input``, ``Node.replace_input``, ``Value.replace_all_uses_with``. The editing methods
check what would corrupt the IR at once (a node of another graph, a replacement of another type,
removing a used input) and raise :class:`GraphEditError` naming the values by the ``%n`` of the
printed IR. Every edit through them bumps ``Graph.edit_count`` (of the graph and of every graph
enclosing it), which is how the PassManager knows whether a pass changed anything.
``node.meta`` is a free dict for analysis results (writing it is not an edit).
"""

from __future__ import annotations

import contextlib
from collections import deque
from itertools import compress, count, islice, repeat
from operator import attrgetter, is_
from typing import Any, Iterable, Iterator

import numpy as np

from .._errors import BrainStateError

__all__ = ['Graph', 'Node', 'Value', 'Literal', 'NODE_KINDS', 'GraphEditError']

NODE_KINDS = ('input', 'constant', 'state_read', 'state_write', 'primitive', 'region', 'output')
_KINDS_AT_EXIT = ('state_write', 'output')  # find_nodes looks for these from the end
# Up to this many nodes, find_nodes reads a graph with one plain loop: its early stops and scans
# in C pay off on large graphs, but their setup costs more than the whole loop on a small one
# (a loop body, most traced steps), which a trace reads many times, each time cold in the
# CPU's caches.
_SMALL_GRAPH = 64

_kind_of = attrgetter('kind')
_graph_of = attrgetter('graph')
_new_object = object.__new__


class GraphEditError(BrainStateError, ValueError):
    """An edit that would corrupt the IR: a node or value of another graph, a replacement of
    another shape or dtype, removing an input or node that is still used. The message names the
    values by the ``%n`` of the printed IR."""


def _name(value) -> str:
    from ._printer import value_name
    return value_name(value)


def _describe(node) -> str:
    from ._printer import describe_node
    return describe_node(node)


class Value:
    """An SSA value: defined once, by ``producer`` (its ``index``-th result), typed by ``aval``."""

    __slots__ = ('aval', 'producer', 'index', 'users', '__weakref__')

    def __init__(self, aval, producer: 'Node | None' = None, index: int = 0):
        self.aval = aval
        self.producer = producer
        self.index = index
        self.users: dict[Node, None] = {}  # an ordered set of the nodes using this value

    @property
    def uid(self) -> int:
        """A number identifying this value among the live ones (its ``id``)."""
        return id(self)

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    @property
    def graph(self) -> 'Graph | None':
        """The graph whose node defines this value (None for a value of no graph)."""
        producer = self.producer
        return producer.graph if producer is not None else None

    def replace_all_uses_with(self, new: 'Value | Literal'):
        """Make every node that uses this value use ``new`` instead.

        ``new`` must have the same shape and dtype (a weak type may differ); anything else
        raises :class:`GraphEditError` naming both values, since it would silently change the
        type of whatever uses this value (e.g. the shape a State is written with).
        """
        if new is self:
            return
        why = _replacement_error(self, new)
        if why is not None:
            raise GraphEditError(f'replace_all_uses_with: {why}')
        users = self.users
        if not users:
            return
        touched = None
        for node in users:  # each user's graph (and those enclosing it) counts an edit
            graph = node.graph
            if graph is not touched and graph is not None:
                graph._edits += 1
                if graph.parent is not None:
                    graph._touch_enclosing()
                touched = graph
        _move_uses(self, new)

    def __repr__(self):
        # The printed IR's name: costs a walk of the graph, fine for messages and debugging.
        graph = self.graph
        if graph is None:
            return f'Value({_name(self)})'
        return f"Value({_name(self)} of graph '{graph.name}')"


class Literal:
    """A scalar constant written inline as an operand (``1.0:f32[]``), as in a jaxpr.

    Two Literals are equal (and hash alike) when they hold the same constant: the same
    :meth:`key`. So an operation's operands, Values and Literals together, can key a dict
    (Values compare by identity), as cse and fold-constants do."""

    __slots__ = ('val', 'aval', '_key', '_hash')

    def __init__(self, val, aval):
        # The value must hold the type it is printed and lowered with: a NumPy / JAX value of
        # the aval's dtype and shape, or a Python scalar for a scalar aval. Anything else
        # (``Literal(1.0, f32[3])``, ``Literal(np.int32(1), f32[])``) would pass the type
        # checks, which read the aval, and fail in XLA with an error naming no value.
        dtype = getattr(val, 'dtype', None)
        if (aval.shape != () if dtype is None else
                (dtype != aval.dtype or getattr(val, 'shape', ()) != aval.shape)):
            from ._printer import short_type
            held = (f'is a Python {type(val).__name__} (a scalar)' if dtype is None else
                    f'has dtype {dtype} and shape {tuple(getattr(val, "shape", ()))}')
            raise GraphEditError(
                f'Literal({val!r}, {short_type(aval)}): the value {held}, not the type '
                f'{short_type(aval)}. Give a value of that dtype and shape '
                f'(np.asarray(value, dtype)[()] for a scalar); an array operand is a '
                f"'constant' node (or broadcast_in_dim of a scalar Literal).")
        self.val = val
        self.aval = aval
        self._key = None  # key(), computed once: a Literal is never changed after creation
        self._hash = None

    @classmethod
    def _of_jaxpr(cls, literal) -> 'Literal':
        """The Literal of a jaxpr's literal operand, which JAX made with a value of its type
        (no check: the jaxpr converter makes one per literal operand)."""
        made = _new_object(cls)
        made.val, made.aval, made._key, made._hash = literal.val, literal.aval, None, None
        return made

    def __eq__(self, other):
        # Asked often with a Value (list.count / index over a node's operands): answered first.
        if type(other) is not Literal:
            return NotImplemented
        if self is other:
            return True
        mine, theirs = self._key, other._key
        return (self.key() if mine is None else mine) == (other.key() if theirs is None
                                                          else theirs)

    def __hash__(self):
        value = self._hash
        if value is None:
            value = self._hash = hash(self.key())
        return value

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    def key(self):
        """A hashable identity of the constant: equal only when dtype, shape, weak type and
        bits are equal (so ``0.0`` and ``-0.0`` differ, and NaNs compare by bit pattern)."""
        key = self._key
        if key is None:
            aval, val = self.aval, self.val
            try:
                if isinstance(val, np.generic) and val.dtype == aval.dtype:
                    bits = val.tobytes()  # a NumPy scalar of the literal's dtype (the common case)
                else:
                    bits = np.asarray(val, dtype=aval.dtype).tobytes()
            except (TypeError, ValueError):  # a typed PRNG key or other extended dtype
                key = ('object', id(val))
            else:
                key = (aval.dtype, aval.shape, getattr(aval, 'weak_type', False), bits)
            self._key = key
        return key

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
      kind: the node kind (fixed once the node is in a graph: the graph counts its nodes by
        kind).
      op: the JAX primitive (``primitive`` nodes), the region's name (``region`` nodes), or None.
      inputs: operands, each a :class:`Value` or :class:`Literal`.
      outputs: the values this node defines.
      params: the primitive's parameters, or the region's options.
      state: the State a ``state_read`` / ``state_write`` refers to.
      subgraphs: the bodies of a region (an empty tuple for other nodes).
      meta: a free dict for analyses and passes (printed by ``Graph.format(meta=True)``).
      source_info: where in the user's code the operation was traced, when known.
    """

    __slots__ = ('kind', 'op', 'inputs', 'outputs', 'params', 'state', 'subgraphs', '_meta',
                 'source_info', 'graph', '_prev', '_next', 'extra', '_typed')

    def __init__(self, kind: str, *, op=None, inputs: Iterable = (), output_avals: Iterable = (),
                 params: dict | None = None, state=None, subgraphs: Iterable['Graph'] = (),
                 source_info=None, extra: dict | None = None):
        if kind not in NODE_KINDS:
            raise ValueError(f'Unknown node kind {kind!r}; expected one of {NODE_KINDS}.')
        self.kind = kind
        self.op = op
        self.outputs = [Value(aval, self, i) for i, aval in enumerate(output_avals)]
        self.params = dict(params or {})
        self.state = state
        subgraphs = list(subgraphs)
        self.subgraphs = subgraphs if subgraphs else ()  # (see _primitive)
        self._meta = None  # (see the meta property)
        self.source_info = source_info
        self.extra = dict(extra or {})  # what lowering needs that is not a param (effects, ctx)
        self.graph: Graph | None = None
        self._prev: Node | None = None
        self._next: Node | None = None
        self._typed = None  # the verifier's memo of the types it last checked (see _verifier)
        self.inputs = inputs = list(inputs)
        for value in inputs:
            if isinstance(value, Value):
                value.users[self] = None

    @classmethod
    def _primitive(cls, op, inputs: list, output_avals, params: dict, source_info,
                   extra: dict) -> 'Node':
        """A ``primitive`` node built without ``__init__``'s keyword handling and copies: the
        caller hands over ``inputs``, ``params`` and ``extra`` (fresh objects it does not keep
        editing). Same result as ``Node('primitive', op=..., ...)``; used by the jaxpr
        converter, which builds one node per equation."""
        node = _new_object(cls)
        node.kind = 'primitive'
        node.op = op
        node.outputs = outputs = []
        for i, aval in enumerate(output_avals):
            value = _new_object(Value)
            value.aval = aval
            value.producer = node
            value.index = i
            value.users = {}
            outputs.append(value)
        node.params = params
        node.state = None
        # No empty list and dict per node: the passes walk graphs of up to 10^5 nodes, and
        # two fewer objects a node make them ~8% faster there (fewer cache misses).
        node.subgraphs = ()
        node._meta = None
        node.source_info = source_info
        node.extra = extra
        node.graph = node._prev = node._next = node._typed = None
        node.inputs = inputs
        for value in inputs:
            if type(value) is Value:
                value.users[node] = None
        return node

    @property
    def meta(self) -> dict:
        """A free dict for analyses and passes (made on first use: most nodes never have one)."""
        meta = self._meta
        if meta is None:
            meta = self._meta = {}
        return meta

    @meta.setter
    def meta(self, value: dict):
        self._meta = value

    # -- operands ----------------------------------------------------------------------------

    def replace_input(self, old: 'Value | Literal', new: 'Value | Literal'):
        """Replace every use of ``old`` among this node's operands by ``new`` (no type check:
        a rewrite may retype a node in several steps; the verifier checks the result).

        ``old`` is a Value or a Literal operand (a Literal also matches an equal one: the same
        constant, see :meth:`Literal.key`). ``old`` not among the operands, or ``new`` neither a
        Value nor a Literal, raises :class:`GraphEditError` naming them, and changes nothing.
        """
        if not isinstance(new, (Value, Literal)):
            raise GraphEditError(
                f'replace_input: {_describe(self)}: an operand is replaced by a Value or a '
                f'Literal, not {new!r}.')
        literal = type(old) is Literal
        positions = [i for i, value in enumerate(self.inputs)
                     if value is old or (literal and type(value) is Literal and value == old)]
        if not positions:
            raise GraphEditError(
                f'replace_input: {_name(old)} is not an operand of {_describe(self)}; '
                f'nothing to replace.')
        for i in positions:
            self.inputs[i] = new
        if not literal:
            old.users.pop(self, None)
        if isinstance(new, Value):
            new.users[self] = None
        if self.graph is not None:
            self.graph._touch()

    def set_inputs(self, values: Iterable):
        """Replace all operands at once."""
        self._drop_inputs()
        self.inputs = inputs = list(values)
        for value in inputs:
            if isinstance(value, Value):
                value.users[self] = None
        if self.graph is not None:
            self.graph._touch()

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
    def sharding(self):
        """For a ``state_read`` / ``state_write``: the state's sharding (a
        ``jax.sharding.Sharding``, a pytree of them for a structured value, or None when JAX
        places it); None for other nodes. A pass can plan with it; the printer notes it on each
        state read."""
        if self.state is None:
            return None
        return getattr(self.state, 'sharding', None)

    @property
    def is_state_op(self) -> bool:
        return self.kind in ('state_read', 'state_write')

    @property
    def has_effect(self) -> bool:
        """Whether removing this node could change what the program does, beyond its results."""
        kind = self.kind
        if kind == 'primitive':  # the common case first: asked of many nodes by many passes
            return bool(self.extra.get('effects'))
        if kind in ('state_write', 'output', 'input'):
            return True
        if kind == 'region':
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
        self.names: dict = {}  # Value -> name (held: a live value keeps its name)
        self.state_labels: dict = {}  # State -> its label in this print
        self._label_owner: dict = {}  # label -> the State it names in this print

    def __call__(self, value) -> str:
        if isinstance(value, Literal):
            return repr(value)
        name = self.names.get(value)
        if name is None:
            name = self.names[value] = f'%{len(self.names)}'
        return name

    def state_label(self, state) -> str:
        """``state.label()``, made unique within one print: two distinct States of the same
        label (two instances of one Module class, two States named alike) print as
        ``@Net.V`` and ``@Net.V#2``, so the text (and a reproducer parsed back) keeps them
        apart."""
        label = self.state_labels.get(state)
        if label is None:
            base = label = state.label()
            serial = 1
            while label in self._label_owner:
                serial += 1
                label = f'{base}#{serial}'
            self._label_owner[label] = state
            self.state_labels[state] = label
        return label


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
        # How many nodes of each kind the graph holds (not its regions' bodies): lets
        # find_nodes stop reading as soon as it has found them all, and skip region bodies
        # when there are no regions.
        self._kind_counts = dict.fromkeys(NODE_KINDS, 0)
        # The nodes in order, kept between edits: appending at the end updates it, erasing a
        # node leaves it there (the next read filters erased nodes out: there are some when the
        # list is longer than the graph), any other insertion or move, or inserting a node
        # erased before, drops it (rebuilt from the linked list on the next read).
        self._nodes_cache: list | None = None
        self.meta: dict[str, Any] = {}
        self.in_tree = None
        self.out_tree = None
        self.parent: Node | None = None  # the region node owning this graph, if any
        self._insert_anchor = None
        self._edits = 0

    @property
    def edit_count(self) -> int:
        """How many edits this graph (and every region body in it) has had through the editing
        API: compare it before and after a step to know whether the step changed anything."""
        return self._edits

    def _touch(self):
        graph = self
        while graph is not None:
            graph._edits += 1
            parent = graph.parent
            graph = parent.graph if parent is not None else None

    def _touch_enclosing(self):
        """Count an edit in the graphs enclosing this region body (the hot paths count the
        edit of the graph itself inline: ``graph._edits += 1``)."""
        parent = self.parent
        if parent is not None and parent.graph is not None:
            parent.graph._touch()

    # -- iteration ---------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Node]:
        """The nodes in program order (a snapshot: editing while iterating it is safe)."""
        return list(self._node_list())

    def _node_list(self) -> list[Node]:
        """The kept node list itself (not a copy: not to be changed, nor held across edits)."""
        cached = self._nodes_cache
        if cached is None:
            cached = []
            root = self._root
            node = root._next
            while node is not root:
                cached.append(node)
                node = node._next
            self._nodes_cache = cached
        elif len(cached) != sum(self._kind_counts.values()):  # erased nodes to filter out
            cached = self._nodes_cache = list(compress(cached, map(is_, map(_graph_of, cached),
                                                                   repeat(self))))
        return cached

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self):
        return sum(self._kind_counts.values())

    def walk(self) -> Iterator[Node]:
        """Every node, in program order, descending into region bodies (a region before its
        body's nodes)."""
        if not self._kind_counts['region']:
            yield from self.nodes
            return
        for node in self.nodes:
            yield node
            if node.subgraphs:
                for sub in node.subgraphs:
                    yield from sub.walk()

    def find_nodes(self, kind: 'str | tuple | None' = None, name: str | None = None,
                   recursive: bool = True) -> list[Node]:
        """The nodes of a kind (or any of a tuple of kinds) and/or operation name, in program
        order.

        Cheap for the kinds that stand at a graph's edges: it stops reading as soon as it has
        found every node of the kinds asked for, reading state reads from the start and state
        writes from the end (where a canonical graph holds them)."""
        if kind is None:
            nodes = self.walk() if recursive else self.nodes
            return [n for n in nodes if name is None or n.name == name]
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        if recursive and self._kind_counts['region']:
            found = [n for n in self.walk() if n.kind in kinds]
        else:
            found = self._of_kinds(kinds)
        return found if name is None else [n for n in found if n.name == name]

    def _of_kinds(self, kinds: tuple) -> list[Node]:
        """This graph's nodes of ``kinds``, in order, reading no further than needed."""
        counts = self._kind_counts
        wanted = 0
        for kind in kinds:
            wanted += counts.get(kind, 0)
        if not wanted:
            return []
        nodes = self._node_list()
        if len(nodes) <= _SMALL_GRAPH:  # (a region body, a small step: one plain scan)
            return [node for node in nodes if node.kind in kinds]
        # Kinds found at the exit (state writes, the output) are read from the end, the others
        # from the start: each read stops once it has found all of its kinds, so for a
        # canonical graph only the entry and exit are read. (The scans run in C: map,
        # compress and islice over the node list.)
        at_exit = 0
        for kind in kinds:
            if kind in _KINDS_AT_EXIT:
                at_exit += counts.get(kind, 0)
        wanted_kind = frozenset(kinds).__contains__
        if not at_exit:
            return list(islice(compress(nodes, map(wanted_kind, map(_kind_of, nodes))), wanted))
        found = []
        if wanted > at_exit:  # from the start, up to the last node of the other kinds
            other_kind = frozenset(k for k in kinds if k not in _KINDS_AT_EXIT).__contains__
            positions = compress(count(), map(other_kind, map(_kind_of, nodes)))
            last = deque(islice(positions, wanted - at_exit), maxlen=1)[0]
            head = nodes[:last + 1]
            found = list(compress(head, map(wanted_kind, map(_kind_of, head))))
            if len(found) == wanted:
                return found
        # The exit kinds still missing all stand after the last node read from the start.
        tail = list(islice(compress(reversed(nodes), map(wanted_kind, map(_kind_of, reversed(
            nodes)))), wanted - len(found)))
        tail.reverse()
        return found + tail if found else tail

    @property
    def input_nodes(self) -> list[Node]:
        return self._of_kinds(('input',))

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
        counts = self._kind_counts
        if counts['state_read'] or counts['state_write']:
            return True
        for node in self._of_kinds(('primitive', 'region')):
            if node.has_effect:
                return True
        return False

    def states(self) -> list:
        """The states this graph reads or writes (regions included), in order of first use."""
        seen: dict = {}
        for node in self.find_nodes(('state_read', 'state_write')):
            seen.setdefault(node.state, None)
        return list(seen)

    # -- building and editing ----------------------------------------------------------------

    def _check_owned(self, node, what: str):
        if node.graph is not self:
            owner = (f"another graph (named '{node.graph.name}')" if node.graph is not None
                     else 'no graph')
            raise GraphEditError(
                f"{what}: {_describe(node)} belongs to {owner}, not to this graph "
                f"('{self.name}'). "
                f"Edit a node through the graph that holds it; to copy a node into another "
                f"graph use `graph.clone_node(node, value_map)`.")

    def _link_before(self, node: Node, anchor):
        if node.graph is not None:
            raise GraphEditError(
                f'{_describe(node)} already belongs to a graph; erase it first (or clone it with '
                f'`graph.clone_node`).')
        if anchor is not self._root and getattr(anchor, 'graph', self) is not self:
            self._check_owned(anchor, 'insert')
        erased = node._next is node  # erased from a graph (see erase_node)
        prev = anchor._prev
        node._prev, node._next = prev, anchor
        prev._next = node
        anchor._prev = node
        node.graph = self
        for sub in node.subgraphs:
            sub.parent = node
        self._kind_counts[node.kind] += 1
        cache = self._nodes_cache
        if cache is not None:
            if erased:  # the node list may still hold it where it was
                self._nodes_cache = None
            elif anchor is self._root:
                cache.append(node)
            elif cache and cache[-1] is anchor:  # before the output node: the common append
                cache.insert(len(cache) - 1, node)
            else:
                self._nodes_cache = None
        self._edits += 1
        if self.parent is not None:
            self._touch_enclosing()
        return node

    def _append_built(self, node: Node) -> Node:
        """Append a node just built (no graph, no subgraphs) at the very end of a graph being
        built (no output node, no insertion point): :meth:`append` without its checks. The
        jaxpr converter appends thousands of nodes this way (brainstate/ir/_from_jaxpr.py)."""
        root = self._root
        prev = root._prev
        node._prev, node._next = prev, root
        prev._next = node
        root._prev = node
        node.graph = self
        self._kind_counts[node.kind] += 1
        cache = self._nodes_cache
        if cache is not None:
            cache.append(node)  # a node just built was never erased (see _link_before)
        self._edits += 1
        if self.parent is not None:
            self._touch_enclosing()
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
        if node is not self._root:
            self._check_owned(node, 'inserting_before')
        previous, self._insert_anchor = self._insert_anchor, node
        try:
            yield
        finally:
            self._insert_anchor = previous

    @contextlib.contextmanager
    def inserting_after(self, node: Node):
        """Within the block, created nodes follow ``node`` (in creation order)."""
        self._check_owned(node, 'inserting_after')
        with self.inserting_before(node._next):
            yield

    def insert_before(self, anchor: Node, node: Node) -> Node:
        """Add ``node`` just before ``anchor``."""
        return self._link_before(node, anchor)

    def insert_after(self, anchor: Node, node: Node) -> Node:
        """Add ``node`` just after ``anchor``."""
        self._check_owned(anchor, 'insert_after')
        return self._link_before(node, anchor._next)

    def prepend(self, node: Node) -> Node:
        """Add ``node`` at the start, after the input nodes."""
        anchor = self._root._next
        while anchor is not self._root and anchor.kind == 'input':
            anchor = anchor._next
        return self._link_before(node, anchor)

    def move_before(self, anchor: Node, node: Node) -> Node:
        """Move a node of this graph so that it stands just before ``anchor`` (also of this
        graph). A node of another graph is an error: copy it with :meth:`clone_node`."""
        self._check_owned(node, 'move_before')
        self._check_owned(anchor, 'move_before (the anchor)')
        if anchor is node:
            return node
        self._unlink(node)
        return self._link_before(node, anchor)

    def move_after(self, anchor: Node, node: Node) -> Node:
        """Move a node of this graph so that it stands just after ``anchor`` (also of this
        graph)."""
        self._check_owned(node, 'move_after')
        self._check_owned(anchor, 'move_after (the anchor)')
        if anchor is node:
            return node
        self._unlink(node)
        return self._link_before(node, anchor._next)

    def move_to_entry(self, node: Node) -> Node:
        """Move a node of this graph to the start, right after the input nodes."""
        self._check_owned(node, 'move_to_entry')
        self._unlink(node)
        return self.prepend(node)

    def clone_node(self, node: Node, value_map: dict | None = None) -> Node:
        """Copy ``node`` (of this or any other graph) to this graph's insertion point.

        The copy keeps the node's kind, operation, params, state, source info, ``extra`` and
        (a copy of) ``meta``; region bodies are copied deeply. Each operand is looked up in
        ``value_map`` (old value -> value of this graph); an operand not in it must already be
        a value of this graph. ``value_map`` receives old result -> new result for every result,
        so cloning a sequence of nodes in order with one map rewires them to each other::

            value_map = dict(zip(body.inputs, outer_operands))
            for node in body.nodes[...]:
                graph.clone_node(node, value_map)

        Returns the new node. Raises :class:`GraphEditError` naming an operand that is neither
        mapped nor of this graph.
        """
        from ._copy import copy_graph
        if node.kind in ('input', 'output'):
            raise GraphEditError(
                f'clone_node: {_describe(node)} is an {node.kind} node; use insert_input / '
                f'set_outputs to change a graph\'s signature.')
        value_map = {} if value_map is None else value_map
        inputs = []
        for value in node.inputs:
            if isinstance(value, Value):
                mapped = value_map.get(value, value)
                if isinstance(mapped, Value) and mapped.graph is not self:
                    raise GraphEditError(
                        f"clone_node: operand {_name(value)} of {_describe(node)} is not a value "
                        f"of graph '{self.name}'. Map it to one in value_map "
                        f"(value_map[old] = new).")
                inputs.append(mapped)
            else:
                inputs.append(value)
        copy = Node(node.kind, op=node.op, inputs=inputs,
                    output_avals=[v.aval for v in node.outputs], params=node.params,
                    state=node.state, source_info=node.source_info, extra=node.extra,
                    subgraphs=[copy_graph(sub) for sub in node.subgraphs])
        if node._meta:
            copy.meta = dict(node._meta)
        for old, new in zip(node.outputs, copy.outputs):
            value_map[old] = new
        return self.append(copy)

    def create_node(self, kind: str, **kwargs) -> Node:
        """Create a node (arguments as for :class:`Node`) and append it."""
        return self.append(Node(kind, **kwargs))

    def insert_input(self, position: int, aval, name: str | None = None) -> Value:
        """Add a graph parameter at ``position`` among the inputs (0 is first,
        ``len(graph.inputs)`` is last); returns its value. For a region body, the region's
        operands must change to match (the region kinds' signature API does that)."""
        input_nodes = self.input_nodes
        if not isinstance(position, int) or not 0 <= position <= len(input_nodes):
            raise GraphEditError(
                f"insert_input: position {position!r} is not between 0 and {len(input_nodes)} "
                f"(graph '{self.name}' has {len(input_nodes)} inputs).")
        if position == len(input_nodes):
            return self.add_input(aval, name)
        node = Node('input', output_avals=[aval], params={'name': name} if name else None)
        self._link_before(node, input_nodes[position])
        return node.outputs[0]

    def remove_input(self, input: 'Value | int'):
        """Remove a graph parameter (given as its value or its position). It must be unused:
        a used input raises :class:`GraphEditError` naming its users."""
        input_nodes = self.input_nodes
        if isinstance(input, int):
            if not 0 <= input < len(input_nodes):
                raise GraphEditError(
                    f"remove_input: position {input} is not between 0 and "
                    f"{len(input_nodes) - 1} (graph '{self.name}' has {len(input_nodes)} "
                    f"inputs).")
            node = input_nodes[input]
        else:
            node = getattr(input, 'producer', None)
            if node is None or node.kind != 'input' or node.graph is not self:
                raise GraphEditError(
                    f"remove_input: {_name(input)} is not an input of graph '{self.name}'.")
        value = node.outputs[0]
        if value.users:
            users = '; '.join(_describe(u) for u in list(value.users)[:3])
            raise GraphEditError(
                f'remove_input: input {_name(value)} is still used by {users}. Replace its uses '
                f'first (value.replace_all_uses_with).')
        self._unlink(node)

    def add_input(self, aval, name: str | None = None) -> Value:
        """Add a graph parameter after the existing ones; returns its value."""
        node = Node('input', output_avals=[aval], params={'name': name} if name else None)
        inputs = self.input_nodes
        if not inputs:
            self._link_before(node, self._root._next)
        else:
            self.insert_after(inputs[-1], node)
        return node.outputs[0]

    def set_outputs(self, values: Iterable):
        """Set the graph's results (creating the output node if needed)."""
        out = self.output_node
        if out is None:
            out = self._link_before(Node('output'), self._root)
        out.set_inputs(values)
        return out

    def _unlink(self, node: Node):
        prev, next = node._prev, node._next
        prev._next = next
        next._prev = prev
        node._prev = node._next = node
        node.graph = None
        self._kind_counts[node.kind] -= 1
        self._nodes_cache = None  # a move: the node comes back elsewhere
        self._touch()

    def erase_node(self, node: Node):
        """Remove a node (of this graph) whose results are unused. Its operand list is emptied
        in place (a list held from ``node.inputs`` is emptied too)."""
        if node.graph is not self:
            self._check_owned(node, 'erase_node')
        for value in node.outputs:
            if value.users:
                users = '; '.join(_describe(u) for u in list(value.users)[:3])
                raise GraphEditError(
                    f'erase_node: cannot erase {_describe(node)}: its result {_name(value)} is '
                    f'still used by {users}.')
        self._remove(node)

    def replace_node(self, node: Node, values) -> None:
        """Replace the results of ``node`` (of this graph) by ``values`` in every use, and erase
        ``node``: what ``value.replace_all_uses_with`` for each result followed by
        :meth:`erase_node` does, in one edit.

        ``values`` holds one Value or Literal per result of ``node``, in order, each of the
        same shape and dtype as the result it replaces (a weak type may differ). Everything is
        checked before anything changes: on a :class:`GraphEditError` (naming the node) the
        graph is as it was. Errors: ``node`` is not of this graph, the number of values differs
        from the number of results, a value is not a Value or Literal or its type differs, a
        value is a result of ``node`` itself, or ``node`` uses its own result. Example (fold
        ``add 1.0 2.0`` into the literal ``3.0``)::

            graph.replace_node(node, [Literal(np.float32(3.0), node.outputs[0].aval)])
        """
        if node.graph is not self:
            self._check_owned(node, 'replace_node')
        outputs = node.outputs
        if type(values) is not list and type(values) is not tuple:
            values = list(values)
        if len(values) != len(outputs):
            raise GraphEditError(
                f'replace_node: {_describe(node)} has {len(outputs)} result(s) but '
                f'{len(values)} replacement value(s) were given; give one per result.')
        for old, new in zip(outputs, values):
            new_type = type(new)
            # The common case, answered inline (this is the most frequent edit of the passes):
            # a Value of another node, or a Literal, of the very same type.
            if not ((new_type is Literal or (new_type is Value and new.producer is not node))
                    and new.aval is old.aval):
                why = _replacement_error(old, new)
                if why is None and getattr(new, 'producer', None) is node:
                    why = (f'{_name(old)} cannot be replaced by {_name(new)}, a result of the '
                           f'node itself (the node is erased).')
                if why is not None:
                    raise GraphEditError(f'replace_node: {_describe(node)}: its result {why}')
            if node in old.users:
                raise GraphEditError(
                    f'replace_node: {_describe(node)} uses its own result {_name(old)}; it '
                    f'cannot be replaced.')
        # What value.replace_all_uses_with does, per result (the users are nodes of this graph:
        # regions are closed; the erasure below counts the edit), then what erase_node does.
        for old, new in zip(outputs, values):
            if old.users:
                _move_uses(old, new)
        self._remove(node)

    def _remove(self, node: Node):
        """Unlink a node whose results are unused (checked by the callers) and drop its uses of
        its operands."""
        inputs = node.inputs
        for value in inputs:
            if type(value) is not Literal:  # a Value (or a subclass): it lists its users
                value.users.pop(node, None)
        # Emptied in place, not replaced by a new list: a new list per erased node would be
        # a young object the cycle collector walks once the pipeline ends (60,000 of them at
        # 100k nodes: a 20-40 ms pause).
        inputs.clear()
        # self._unlink(node), inlined: erasing is the most frequent edit of the passes. The
        # erased node links to itself: inserting it again must not trust the node list.
        prev, next = node._prev, node._next
        prev._next = next
        next._prev = prev
        node._prev = node._next = node
        node.graph = None
        self._kind_counts[node.kind] -= 1
        self._edits += 1
        if self.parent is not None:
            self._touch_enclosing()

    # -- views ---------------------------------------------------------------------------------

    def format(self, meta: bool = True, source: bool = False, exact: bool = False) -> str:
        """The readable text form. Analysis results in ``node.meta`` are shown as comments
        (``meta=False`` hides them); ``source=True`` adds the user's file and line;
        ``exact=True`` writes every param in full, the form :func:`brainstate.ir.parse` reads
        back (reproducers use it)."""
        from ._printer import format_graph
        return format_graph(self, meta=meta, source=source, exact=exact)

    def __str__(self):
        return self.format()

    def __repr__(self):
        return f'<Graph {self.name}: {len(self)} nodes, {len(self.states())} states>'

    def verify(self, canonical: bool | None = None):
        """Check SSA form, types and where state operations stand; raise IRVerificationError."""
        from ._verifier import verify
        verify(self, canonical=canonical)
        return self

    def to_dot(self, before: 'Graph | None' = None, fold_progress_bar: bool = True) -> str:
        """The graph in Graphviz DOT: state reads and writes drawn apart from compute, regions
        as clusters, boxes named as the text IR names them. ``before``: another graph (e.g. the
        traced one) drawn beside this one; ``fold_progress_bar=False`` draws a loop's
        progress-bar bookkeeping node by node instead of as one box."""
        from ._export import to_dot
        return to_dot(self, before, fold_progress_bar)

    def to_svg(self, path: str | None = None, before: 'Graph | None' = None,
               fold_progress_bar: bool = True) -> str:
        """Render with Graphviz's ``dot`` program; returns the SVG text (and writes it to
        ``path`` if given). Raises a clear error when Graphviz is not installed. ``before`` and
        ``fold_progress_bar`` as for :meth:`to_dot`."""
        from ._export import to_svg
        return to_svg(self, path, before, fold_progress_bar)

    def to_html(self, path: str | None = None, before: 'Graph | None' = None,
                fold_progress_bar: bool = True) -> str:
        """A self-contained HTML page (no network): the IR, the state table and the picture
        (inline SVG with Graphviz, else its DOT text). Returns the HTML (and writes it to
        ``path`` if given). ``before`` (e.g. the graph as traced, this one optimized): its IR
        comes first, then this one's with the diff between them, and the picture draws the two
        side by side. ``brainstate-ir ... --html FILE`` adds every pass and its diff."""
        from ._html import Stage, html_report
        stages = [Stage(self.name, '', self.format())]
        if before is not None:
            stages.insert(0, Stage(f'{before.name} (before)', '', before.format()))
        page = html_report(self.name, stages, self, before=before,
                           fold_progress_bar=fold_progress_bar)
        if path is not None:
            with open(path, 'w') as f:
                f.write(page)
        return page

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


def _replacement_error(old, new) -> str | None:
    """Why ``new`` cannot take the place of the value ``old`` in its uses (None: it can): it
    must be a Value or a Literal of the same shape and dtype (a weak type may differ). The one
    check of ``replace_all_uses_with`` and ``Graph.replace_node``."""
    new_type = type(new)
    if new_type is not Value and new_type is not Literal and \
            not isinstance(new, (Value, Literal)):
        return f'{_name(old)} can only be replaced by a Value or a Literal, not {new!r}.'
    aval, new_aval = old.aval, new.aval
    if new_aval is not aval and (new_aval is None or new_aval.shape != aval.shape or
                                 new_aval.dtype != aval.dtype):
        return (f'{_name(old)} cannot be replaced by {_name(new)}: the types differ. A '
                f'replacement must have the same shape and dtype; insert a reshape, '
                f'broadcast_in_dim or convert_element_type node to make one.')
    return None


def _move_uses(old, new) -> None:
    """Make every node using the value ``old`` use ``new`` instead (checked by the callers;
    counting the edit is theirs), in as few steps as possible: the most frequent edit of the
    passes, with erasing a node."""
    users = old.users
    for node in users:
        inputs = node.inputs
        # By identity (list.index and count would call Literal.__eq__ on literal operands).
        if len(inputs) == 1:
            inputs[0] = new
        elif len(inputs) == 2:
            first, second = inputs
            if first is old:
                inputs[0] = new
            if second is old:
                inputs[1] = new
        else:
            inputs[:] = [new if value is old else value for value in inputs]
    if type(new) is not Literal:  # a Value (or a subclass): it lists its users
        new.users.update(users)
    users.clear()
