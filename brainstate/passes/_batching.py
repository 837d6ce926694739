"""batching-analysis: under ``vmap``, which values and states carry the batch axis.

``vmap`` traces its function once, on *per-lane* values (each argument without its mapped axis,
each declared-batched state without its batch axis), then runs the pure program under
``jax.vmap``. To call ``jax.vmap`` it must know, for every state the program reads, whether to
map it and on which axis, and for every state it writes, whether the written value differs per
lane. This pass answers that on the IR, before any JAX batching happens:

* **seeds**: the graph inputs mapped by ``in_axes``, the reads of states declared batched
  (``in_states``), and the reads of random states whose key ``vmap`` splits per lane;
* **propagation**: a primitive's results are batched when any operand is (``axis_index`` of the
  vmapped axis is batched with no operand; ``psum`` / ``pmax`` / ``pmin`` / ``all_gather`` over
  it are not); a region is analyzed through its bodies by its kind's batching rule
  (``brainstate.ir.region_kind(node).batching``; loop carries iterate to a fixed point);
* **checks**: a batched value written into a state that is not declared batched is a
  :class:`~brainstate.BatchAxisError` naming the state and showing how to declare it.

The configuration comes from ``graph.meta['batching_spec']`` (a :class:`BatchingSpec`, set by
``vmap``); without one the pass does nothing. Results go to ``node.meta`` (``batched``, and on
state operations ``axis=`` / ``shared`` / ``per_lane_key``), so ``graph.format()`` shows them,
and to ``graph.meta['batching']`` (a :class:`BatchingResult`).

Example of the printed IR (``x`` mapped, ``Net.w`` shared, ``Net.v`` declared batched)::

    %1:f32[3] = state_read @Net.v    # batched axis=0
    %2:f32[3] = state_read @Net.w    # shared
    %3:f32[3] = mul %0 %2            # batched
    %4:f32[3] = add %1 %3            # batched
    state_write @Net.v %4            # batched axis=0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .._errors import BatchAxisError
from ..ir import source_location
from ..ir.regions import REGION_KINDS
from ._pass import PassStatistics, register

__all__ = ['BatchingSpec', 'BatchingResult', 'analyze_batching', 'PRIMITIVE_BATCHING_RULES']


@dataclass
class BatchingSpec:
    """What ``vmap`` declares; the input of the analysis.

    Attributes:
      input_batched: one flag per graph input: mapped by ``in_axes``.
      read_axes: state -> the axis of its stored value that is mapped (declared ``in_states``).
      write_axes: state -> the axis its written value is stored with (``in_states``,
        ``out_states`` and, under ``vmap_new_states``, the new states).
      split_keys: random states whose key is split per lane: read batched, written values
        discarded (the key advances once per call, outside the mapped function).
      new_states: states created by the traced function (for the error message).
      axis_name: the ``axis_name`` of this vmap (for collectives).
      where: a description of the call for messages, e.g. ``'vmap of step'``.
      fun_name: the mapped function's name (for messages).
      on_batched_write: ``rule(node) -> axis`` for a per-lane value written into a state with
        no declared write axis (not split, not created by the function): the axis to store it
        with, or raise. None: such a write is a :class:`~brainstate.BatchAxisError`
        (``vmap``'s rule; ``vmap2`` decides by its ``unexpected_out_state_mapping`` policy).
    """
    input_batched: list = field(default_factory=list)
    read_axes: dict = field(default_factory=dict)
    write_axes: dict = field(default_factory=dict)
    split_keys: set = field(default_factory=set)
    new_states: set = field(default_factory=set)
    axis_name: object = None
    where: str = 'vmap'
    fun_name: str = 'f'
    on_batched_write: Callable | None = None


@dataclass
class BatchingResult:
    """The analysis of one graph.

    Attributes:
      output_batched: one flag per graph output.
      read_axes: state -> mapped axis, or None for a state read shared.
      write_axes: state -> axis the written value is stored with, or None (unbatched write).
    """
    output_batched: list
    read_axes: dict
    write_axes: dict


# -- primitive rules -----------------------------------------------------------------------------

def _reduction_collective(node, batched: list, spec: BatchingSpec) -> list:
    """psum / pmax / pmin / all_gather over the vmapped axis give every lane the same value."""
    axes = node.params.get('axes', node.params.get('axis_name', ()))
    if not isinstance(axes, (tuple, list)):
        axes = (axes,)
    if spec.axis_name is not None and spec.axis_name in axes:
        return [False] * len(node.outputs)
    return [any(batched)] * len(node.outputs)


def _axis_index(node, batched: list, spec: BatchingSpec) -> list:
    mine = spec.axis_name is not None and node.params.get('axis_name') == spec.axis_name
    return [mine or any(batched)] * len(node.outputs)


# primitive name -> rule(node, operand flags, spec) -> result flags. Unlisted primitives: a result
# is batched when any operand is (what JAX's batching rules do, or less precise: never more).
PRIMITIVE_BATCHING_RULES: dict[str, Callable] = {
    'psum': _reduction_collective,
    'pmax': _reduction_collective,
    'pmin': _reduction_collective,
    'all_gather': _reduction_collective,
    'axis_index': _axis_index,
}


# -- the analysis --------------------------------------------------------------------------------

class _Analysis:
    def __init__(self, spec: BatchingSpec, stats: PassStatistics):
        self.spec = spec
        self.stats = stats
        self.read_axes: dict = {}
        self.write_axes: dict = {}

    def flag(self, env, value) -> bool:
        return env.get(value, False)  # Literals and unknown values are unbatched

    def graph(self, graph, input_flags: list) -> list:
        env = dict(zip(graph.inputs, input_flags))
        for node in graph.nodes:
            kind = node.kind
            if kind == 'input':
                continue
            flags = [self.flag(env, v) for v in node.inputs]
            if kind == 'output':
                return flags
            if kind == 'constant':
                outs = [False]
            elif kind == 'state_read':
                outs = [self.read(node)] * len(node.outputs)
            elif kind == 'state_write':
                self.write(node, any(flags))
                continue
            elif kind == 'region':
                region = REGION_KINDS.get(node.op)
                if region is None:  # an unknown region: assume everything differs per lane
                    outs = [any(flags)] * len(node.outputs)
                else:
                    outs = region.batching(node, flags, self.graph)
            else:
                rule = PRIMITIVE_BATCHING_RULES.get(node.name)
                outs = rule(node, flags, self.spec) if rule else [any(flags)] * len(node.outputs)
            env.update(zip(node.outputs, outs))
            if kind != 'state_read':
                self.annotate(node, outs)
        return []

    def annotate(self, node, outs: list):
        node.meta.pop('batched', None)
        if outs and all(outs):
            node.meta['batched'] = True
            self.stats['batched values'] += len(outs)
        elif any(outs):
            node.meta['batched'] = tuple(i for i, b in enumerate(outs) if b)
            self.stats['batched values'] += sum(outs)

    def read(self, node) -> bool:
        state, spec = node.state, self.spec
        _clear(node)
        if state in spec.split_keys:
            self.read_axes[state] = 0
            node.meta.update(batched=True, per_lane_key=True)
            return True
        axis = spec.read_axes.get(state)
        self.read_axes[state] = axis
        if axis is None:
            node.meta['shared'] = True
            return False
        node.meta.update(batched=True, axis=axis)
        return True

    def write(self, node, batched: bool):
        state, spec = node.state, self.spec
        _clear(node)
        if state in spec.split_keys:
            node.meta.update(batched=True, per_lane_key=True, discarded=True)
            self.write_axes[state] = 0
            return
        axis = spec.write_axes.get(state)
        if axis is not None:
            node.meta.update(batched=True, axis=axis)
            self.write_axes[state] = axis
            return
        if batched:
            if spec.on_batched_write is not None and state not in spec.new_states:
                axis = spec.on_batched_write(node)
                node.meta.update(batched=True, axis=axis)
                self.write_axes[state] = axis
                return
            raise BatchAxisError(_shared_write_message(node, spec))
        node.meta['shared'] = True
        self.write_axes.setdefault(state, None)


_META_KEYS = ('batched', 'axis', 'shared', 'per_lane_key', 'discarded')


def _clear(node):
    for key in _META_KEYS:
        node.meta.pop(key, None)


def _shared_write_message(node, spec: BatchingSpec) -> str:
    state = node.state
    label = state.label()
    f = spec.fun_name
    where = source_location(node)
    at = f' (written at {where})' if where else ''
    if not where:  # a write the hoist-states pass moved: say where the value was computed
        for value in node.inputs:
            producer = getattr(value, 'producer', None)
            where = source_location(producer) if producer is not None else None
            if where:
                at = f' (computed at {where})'
                break
    if state in spec.new_states:
        return (
            f'{spec.where}: State {label} is created inside the mapped function and given a '
            f'value that differs per lane{at}, but `vmap` keeps states shared. Use '
            f'`brainstate.transform.vmap_new_states` to give new states the batch axis (one '
            f'value per lane), or create the state before calling the vmapped function. No '
            f'state was changed.')
    return (
        f'{spec.where}: State {label} is shared by all lanes (not declared batched), but the '
        f'function writes it a value that differs per lane{at}: the value depends on a mapped '
        f'argument, a batched state or per-lane random numbers. Declare {label} batched:\n'
        f'  * `vmap({f}, in_states=<{label}>)` if its stored value already has the batch axis '
        f'(each lane reads and writes its own slice; `in_states={{1: <{label}>}}` for axis '
        f'1);\n'
        f'  * `vmap({f}, out_states=<{label}>)` if it is read shared and should come out with a '
        f'batch axis (its stored shape changes);\n'
        f'or write a value that is the same for every lane (e.g. `jax.lax.pmean(x, "batch")` '
        f'with `axis_name="batch"` given to vmap). No state was changed.')


@register('batching-analysis')
def analyze_batching(graph, stats=None):
    """Under vmap: propagate the batch axis from in_axes and declared states through the IR and
    check that no batched value is written into a shared state."""
    stats = PassStatistics() if stats is None else stats
    spec = graph.meta.get('batching_spec')
    if spec is None:
        return graph
    if callable(spec):  # vmap's declarations, resolved against the canonical graph
        spec = graph.meta['batching_spec'] = spec(graph)
    analysis = _Analysis(spec, stats)
    inputs = list(spec.input_batched) + [False] * (len(graph.inputs) - len(spec.input_batched))
    outputs = analysis.graph(graph, inputs)
    graph.meta['batching'] = BatchingResult(outputs, analysis.read_axes, analysis.write_axes)
    return graph
