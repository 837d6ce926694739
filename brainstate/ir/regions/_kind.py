"""What a region kind is: the named layout of a region node, and the rules passes ask it for.

A ``region`` node (``node.kind == 'region'``) is a loop or branch holding its bodies in
``node.subgraphs``. Its operands, results and each body's inputs and outputs are lists whose
meaning depends on the region's name (``node.op``): a scan's operands are its loop-invariant
constants, then the initial carries, then the arrays it loops over. A :class:`RegionKind` owns
that layout. Passes never slice ``node.inputs`` by hand; they ask::

    sig = brainstate.ir.region_kind(node).signature(node)
    sig.consts                 # the loop-invariant operands (Values)
    for carry in sig.carries:  # operand -> body input -> body output -> result
        carry.init, carry.body_input_values, carry.next_value, carry.final

and edit through the kind (:meth:`RegionKind.remove_operand`, :meth:`RegionKind.remove_result`,
:meth:`RegionKind.remove_carry`), which keeps the operands, bodies, results and params in step.

Besides its signature, each kind gives the rules of the pipeline stages: ``verify`` (the
verifier), ``lower`` (lowering to ``lax``), ``hoist`` (the hoist-states pass), ``batching``
(vmap's batching analysis) and ``dce`` (dead-code elimination). The built-in kinds live one per
file next to this one; :func:`register_region_kind` adds a new one.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from ..._errors import BrainStateError

__all__ = ['RegionKind', 'RegionSignature', 'BodySignature', 'Carry', 'REGION_KINDS',
           'region_kind', 'register_region_kind']


class Carry(NamedTuple):
    """One loop carry: where its value enters, flows and leaves.

    Attributes:
      operand: position in ``node.inputs`` of the initial value.
      body_inputs: per body, the position in ``body.inputs`` holding the current value (every
        body of a loop sees every carry: a while loop's condition and body both do).
      body: index (in ``node.subgraphs``) of the body that computes the next value.
      body_output: position in that body's outputs of the next value.
      result: position in ``node.outputs`` of the final value.
      signature: the :class:`RegionSignature` this carry belongs to.
    """
    operand: int
    body_inputs: tuple
    body: int
    body_output: int
    result: int
    signature: 'RegionSignature'

    @property
    def init(self):
        """The operand (Value or Literal) giving the initial value."""
        return self.signature.node.inputs[self.operand]

    @property
    def final(self):
        """The region's result holding the final value."""
        return self.signature.node.outputs[self.result]

    @property
    def body_input_values(self) -> list:
        """The body inputs holding the current value, one per body."""
        return [sub.inputs[i] for sub, i in zip(self.signature.node.subgraphs, self.body_inputs)]

    @property
    def next_value(self):
        """The body output giving the next iteration's value."""
        return self.signature.node.subgraphs[self.body].outputs[self.body_output]

    def __repr__(self):
        return (f'Carry(operand={self.operand}, body_inputs={self.body_inputs}, '
                f'body={self.body}, body_output={self.body_output}, result={self.result})')


class BodySignature(NamedTuple):
    """The layout of one body of a region.

    Attributes:
      graph: the body.
      input_groups: group name -> slice of ``graph.inputs``.
      output_groups: group name -> slice of ``graph.outputs``.
      input_operands: for each body input, the position in ``node.inputs`` of the operand that
        feeds it (a carry's body input is fed by its initial value first, then by the body's
        output, see :attr:`RegionSignature.carries`).
      output_results: for each body output, the position in ``node.outputs`` of the result it
        gives, or None (a while loop's condition gives a predicate, no result).
    """
    graph: object
    input_groups: dict
    output_groups: dict
    input_operands: list
    output_results: list

    def inputs(self, group: str | None = None) -> list:
        """The body's input Values (of one group, or all)."""
        values = self.graph.inputs
        return values if group is None else values[self.input_groups[group]]

    def outputs(self, group: str | None = None) -> list:
        """The body's outputs (of one group, or all)."""
        values = self.graph.outputs
        return values if group is None else values[self.output_groups[group]]


class RegionSignature:
    """The named layout of one region node, as its kind reads it from the node's params.

    Attributes:
      kind: the :class:`RegionKind`.
      node: the region node.
      operand_groups: group name -> slice of ``node.inputs``, in order (e.g. a scan's
        ``consts``, ``carries``, ``xs``).
      result_groups: group name -> slice of ``node.outputs`` (a scan's ``carries``, ``ys``).
      bodies: one :class:`BodySignature` per body, in ``node.subgraphs`` order.
      carries: the loop carries (:class:`Carry`), empty for branches and checkpoints.

    Any group name reads as an attribute giving its Values: ``sig.consts``, ``sig.xs``,
    ``sig.ys``, ``sig.index`` (operand groups first, then result groups). ``sig.carries`` is the
    list of :class:`Carry`; ``sig.operands`` and ``sig.results`` are every operand and result.
    """

    def __init__(self, kind: 'RegionKind', node, operand_groups: dict, result_groups: dict,
                 bodies: list, carry_layout: list = ()):
        self.kind = kind
        self.node = node
        self.operand_groups = operand_groups
        self.result_groups = result_groups
        self.bodies = bodies
        self.carries = [Carry(*layout, self) for layout in carry_layout]

    @property
    def operands(self) -> list:
        """Every operand, in order."""
        return list(self.node.inputs)

    @property
    def results(self) -> list:
        """Every result, in order."""
        return list(self.node.outputs)

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        groups = self.__dict__.get('operand_groups', {})
        if name in groups:
            return self.node.inputs[groups[name]]
        groups = self.__dict__.get('result_groups', {})
        if name in groups:
            return self.node.outputs[groups[name]]
        raise AttributeError(
            f'A {self.kind.name} region has no group {name!r}; its operand groups are '
            f'{list(self.operand_groups)} and its result groups {list(self.result_groups)}.')

    def operand_group(self, position: int) -> str:
        """The name of the operand group holding ``node.inputs[position]``."""
        return _group_of(self.operand_groups, position, len(self.node.inputs))

    def result_group(self, position: int) -> str:
        """The name of the result group holding ``node.outputs[position]``."""
        return _group_of(self.result_groups, position, len(self.node.outputs))

    def body_inputs_of(self, operand: int) -> list[tuple[int, int]]:
        """``(body index, input position)`` of every body input the operand feeds."""
        return [(b, k) for b, body in enumerate(self.bodies)
                for k, op in enumerate(body.input_operands) if op == operand]

    def body_outputs_of(self, result: int) -> list[tuple[int, int]]:
        """``(body index, output position)`` of every body output giving the result (each branch
        of a ``cond`` gives each result)."""
        return [(b, k) for b, body in enumerate(self.bodies)
                for k, res in enumerate(body.output_results) if res == result]

    def carry_of_operand(self, operand: int) -> Carry | None:
        """The carry whose initial value is ``node.inputs[operand]``, if any."""
        return next((c for c in self.carries if c.operand == operand), None)

    def carry_of_result(self, result: int) -> Carry | None:
        """The carry whose final value is ``node.outputs[result]``, if any."""
        return next((c for c in self.carries if c.result == result), None)

    def __repr__(self):
        def fmt(groups):
            return ', '.join(f'{k}[{s.start}:{s.stop}]' for k, s in groups.items())
        return (f'<{self.kind.name} signature: operands ({fmt(self.operand_groups)}), results '
                f'({fmt(self.result_groups)}), {len(self.carries)} carries>')


def _group_of(groups: dict, position: int, total: int) -> str:
    for name, s in groups.items():
        if s.start <= position < (s.stop if s.stop is not None else total):
            return name
    raise IndexError(f'Position {position} is in no group ({total} in all).')


def groups_from_sizes(sizes: list[tuple[str, int]]) -> dict:
    """``[('consts', 2), ('carries', 1)]`` -> ``{'consts': slice(0, 2), 'carries':
    slice(2, 3)}``."""
    out, start = {}, 0
    for name, size in sizes:
        out[name] = slice(start, start + size)
        start += size
    return out


class RegionKind:
    """A kind of region (``scan``, ``while``, ``cond``, ``checkpoint``): its layout and rules.

    Subclasses set :attr:`name` (the ``node.op`` of their regions), :attr:`summary` and
    :attr:`num_bodies`, and implement :meth:`signature`, :meth:`lower`, :meth:`hoist`,
    :meth:`batching`, and (for kinds with params counting groups) :meth:`update_params`. The
    base class derives :meth:`verify`, :meth:`dce` and the editing operations from the
    signature.
    """

    name: str = ''
    summary: str = ''
    num_bodies: int | None = None  # None: any number (one per branch), at least one

    # -- layout ------------------------------------------------------------------------------

    def signature(self, node) -> RegionSignature:
        """The named layout of ``node`` (a region of this kind)."""
        raise NotImplementedError

    def update_params(self, node, removed_operands: list, removed_results: list) -> dict:
        """``node.params`` after removing the operands / results at the given positions (of
        the signature before removal). The default keeps them: kinds whose params count
        groups (``num_consts``, ...) override it."""
        return dict(node.params)

    def grow_params(self, node, group: str, count: int) -> dict:
        """``node.params`` after adding ``count`` operands at the end of operand group
        ``group``. The default keeps them: kinds whose params count groups override it."""
        return dict(node.params)

    def operand_body_groups(self, signature: RegionSignature, group: str) -> list:
        """``(body index, body input group)`` of the bodies that receive the operands of
        ``group``. The default: every body with an input group of the same name."""
        return [(b, group) for b, body in enumerate(signature.bodies)
                if group in body.input_groups]

    # Operand groups insert_operand may grow (each operand feeds body inputs of its own type).
    insertable_groups: tuple = ()

    def removable_operand(self, signature: RegionSignature, position: int) -> bool:
        """Whether dce may remove the (non-carry) operand at ``position`` once the body inputs
        it feeds are unused. A ``cond``'s branch index is never removed."""
        return True

    # -- types the verifier expects ------------------------------------------------------------

    def body_input_aval(self, signature: RegionSignature, body: int, position: int,
                        operand_aval):
        """The type body ``body``'s input ``position`` must have, given the operand feeding it
        (None: not checked). The default: the operand's type."""
        return operand_aval

    def body_output_aval(self, signature: RegionSignature, body: int, position: int,
                         result_aval):
        """The type body ``body``'s output ``position`` must have, given the result it gives
        (None: not checked). The default: the result's type."""
        return result_aval

    def check_extra(self, signature: RegionSignature, fail: Callable, name_of: Callable):
        """Checks particular to the kind; call ``fail(message)`` on a violation."""

    # -- rules ---------------------------------------------------------------------------------

    def verify(self, node, name_of: Callable = repr) -> None:
        """Check that ``node``'s operands, bodies and results agree with its signature; raise
        :class:`~brainstate.ir.IRVerificationError`. ``name_of(value)`` names a value in
        messages (the verifier passes the printed IR's ``%n``)."""
        from ._verify import verify_region
        verify_region(self, node, name_of)

    def lower(self, node, invars: list, outvars: list) -> list:
        """The jaxpr equations computing ``node`` (a pure region: run hoist-states first) from
        the atoms ``invars`` into the variables ``outvars``."""
        raise NotImplementedError(f'Region kind {self.name!r} has no lowering rule.')

    def hoist(self, scope, node) -> None:
        """The hoist-states rule: make ``node``'s bodies pure (with
        :func:`~brainstate.ir.regions.hoist_body`), thread the states they touch through the
        node's operands and results, take their values from ``scope.value_of(state, node)``
        and record the ones it writes with ``scope.set_value``."""
        raise NotImplementedError(f'Region kind {self.name!r} has no hoist-states rule.')

    def batching(self, node, flags: list, analyze: Callable) -> list:
        """vmap's batching rule: given one flag per operand (batched or not), the flags of the
        results. ``analyze(body, input flags) -> output flags`` analyzes one body. The default:
        every result is batched when any operand is."""
        return [any(flags)] * len(node.outputs)

    def dce(self, node, dce_body: Callable, stats=None) -> bool:
        """Dead-code elimination of ``node``: drop results nobody uses, loop carries whose
        final value is unused and that no other live value depends on, and operands whose body
        inputs are unused, to a fixed point. ``dce_body(graph)`` cleans a body. Returns whether
        anything was removed."""
        from ._dce import prune_region
        return prune_region(self, node, dce_body, stats)

    # -- editing -------------------------------------------------------------------------------

    def insert_operand(self, node, group: str, value, name: str | None = None) -> list:
        """Add ``value`` as a new operand at the end of operand group ``group`` (e.g. a scan's
        ``'consts'``), with a new body input of its type in every body that receives the group;
        returns the new body inputs (Values), one per such body. ``name`` labels them in the
        printed IR."""
        from ._edit import insert_operand
        return insert_operand(self, node, group, value, name)

    def remove_operand(self, node, position: int) -> None:
        """Remove ``node.inputs[position]`` and the body inputs it feeds, which must be unused.
        The initial value of a carry goes with its carry (:meth:`remove_carry`)."""
        from ._edit import remove_operand
        remove_operand(self, node, position)

    def remove_result(self, node, position: int) -> None:
        """Remove ``node.outputs[position]`` (unused) and the body outputs giving it. A carry's
        final value goes with its carry (:meth:`remove_carry`)."""
        from ._edit import remove_result
        remove_result(self, node, position)

    def remove_carry(self, node, index: int) -> None:
        """Remove loop carry ``index`` (of ``signature(node).carries``): its initial value, body
        inputs, next value and final value. The final value must be unused, and no other body
        output or effect may depend on the carry's current value; the body computation that
        only fed its next value goes too."""
        from ._edit import remove_carry
        remove_carry(self, node, index)

    def __repr__(self):
        return f'<region kind {self.name}: {self.summary}>'


# name -> kind; filled by the built-in kinds' modules and register_region_kind.
REGION_KINDS: dict[str, RegionKind] = {}


def register_region_kind(kind: RegionKind, replace: bool = False) -> RegionKind:
    """Make ``kind`` the kind of every region node whose ``op`` is ``kind.name``.

    Registering a name that is taken is an error unless ``replace=True``."""
    if not isinstance(kind, RegionKind):
        raise TypeError(f'register_region_kind takes a RegionKind instance, got {kind!r}.')
    if not kind.name:
        raise ValueError(f'{type(kind).__name__} has no name.')
    if kind.name in REGION_KINDS and not replace:
        raise ValueError(f'A region kind named {kind.name!r} is already registered; pass '
                         f'replace=True to replace it.')
    REGION_KINDS[kind.name] = kind
    return kind


def region_kind(node_or_name) -> RegionKind:
    """The :class:`RegionKind` of a region node (or of a region name such as ``'scan'``)."""
    name = node_or_name if isinstance(node_or_name, str) else getattr(node_or_name, 'op', None)
    if not isinstance(node_or_name, str) and getattr(node_or_name, 'kind', None) != 'region':
        raise BrainStateError(f'{node_or_name!r} is not a region node.')
    kind = REGION_KINDS.get(name)
    if kind is None:
        raise BrainStateError(
            f'Unknown region kind {name!r}; known kinds: {", ".join(sorted(REGION_KINDS))}. '
            f'Register one with brainstate.ir.regions.register_region_kind.')
    return kind
