"""pack-states: read and write packed states through their one buffer.

For states stored in a pack (:func:`brainstate.pack_states`), the canonical graph's entry reads
and exit writes of the members become one read of the pack's buffer, a ``slice`` (and
``reshape``) per member read, a ``dynamic_update_slice`` of the buffer per member written, and
one write of the buffer. The compiled program then takes and returns one array per pack instead
of one per state, and the buffer is donated (updated in place) like any written state.

Before::

    %0:f32[4] = state_read @net.a
    %1:f32[4] = state_read @net.b
    %2:f32[4] = add %0 %1
    state_write @net.a %2

After (``net.a`` and ``net.b`` packed into ``pack.float32``)::

    %0:f32[8] = state_read @pack.float32    # donate
    %1:f32[4] = slice[limit_indices=(4,) start_indices=(0,)] %0    # packed=net.a
    %2:f32[4] = slice[limit_indices=(8,) start_indices=(4,)] %0    # packed=net.b
    %3:f32[4] = add %1 %2
    %4:f32[8] = dynamic_update_slice %0 %3 0:i32[]
    state_write @pack.float32 %4

Runs on canonical graphs only (after hoist-states), at the top level: ``jit`` (and the eager
runner, through it) requests it while any pack exists. Slices and updates move bits, so results
are bit for bit those of the unpacked program.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

from .._errors import StateValueError
from .._state_pack import packed_slots
from ..ir import Literal, Node
from ._pass import PassStatistics, register

__all__ = ['pack_packed_states']

_RESHAPE_PARAMS: dict = {}
_INDEX_AVAL = jax.core.ShapedArray((), np.int32)


def _reshape_params(new_sizes) -> dict:
    """reshape's params for this JAX version (learned once from a traced reshape)."""
    if not _RESHAPE_PARAMS:
        eqn = jax.make_jaxpr(lambda x: x.reshape(2, 2))(jax.ShapeDtypeStruct((4,), 'float32'))
        _RESHAPE_PARAMS.update(eqn.eqns[0].params)
    return dict(_RESHAPE_PARAMS, new_sizes=tuple(new_sizes))


def _aval(shape, dtype):
    return jax.core.ShapedArray(tuple(shape), dtype)


def _insert(graph, anchor, op, inputs, shape, dtype, params, meta=None):
    node = Node('primitive', op=op, inputs=inputs, output_avals=[_aval(shape, dtype)],
                params=params)
    if meta:
        node.meta.update(meta)
    graph.insert_before(anchor, node)
    return node.outputs[0]


def _slice(graph, anchor, buffer_value, start, size, dtype, meta=None):
    return _insert(graph, anchor, lax.slice_p, [buffer_value], (size,), dtype,
                   dict(start_indices=(start,), limit_indices=(start + size,), strides=None),
                   meta)


def _reshape(graph, anchor, value, shape, dtype):
    if tuple(value.aval.shape) == tuple(shape):
        return value
    return _insert(graph, anchor, lax.reshape_p, [value], shape, dtype, _reshape_params(shape))


def _first_body_node(graph):
    """The first node after the entry block (inputs and entry reads)."""
    for node in graph.nodes:
        if node.kind not in ('input', 'state_read'):
            return node
    return graph.output_node


@register('pack-states')
def pack_packed_states(graph, stats=None):
    """Read and write states stored in a pack (brainstate.pack_states) through their one buffer:
    one buffer read, a slice per member read, a dynamic_update_slice per member written and one
    buffer write."""
    stats = PassStatistics() if stats is None else stats
    if not graph.meta.get('canonical'):
        return graph
    reads, writes = {}, {}  # group -> {slot index: (slot, the leaf's Value / where it is)}
    first_read = {}  # group -> the first entry read of one of its states
    packed_ops = []
    reshaped = graph.meta.get('reshaped_states', ())
    for node in graph.nodes:
        if not node.is_state_op:
            continue
        slots = packed_slots(node.state)
        if slots is None:
            continue
        if node.state in reshaped:
            if slots[0].group.pack.automatic:
                # Packed by jit itself: read and written on its own; storing its new shape
                # takes it out of the pack (brainstate/_state_pack.py).
                continue
            raise StateValueError(
                f'State {node.state.label()} is packed into buffer {slots[0].buffer.label()} '
                f'(brainstate.pack_states), so its shape is fixed, but this program gives it a '
                f'new shape (vmap out_states). Unpack it first (`pack.unpack()`).')
        packed_ops.append(node)
        if node.kind == 'state_read':
            for slot, value in zip(slots, node.outputs):
                reads.setdefault(slot.group, {})[slot.index] = (slot, value)
                first_read.setdefault(slot.group, node)
        else:
            for position, slot in enumerate(slots):
                # (The node and position, not the Value: rewriting the reads may replace it.)
                writes.setdefault(slot.group, {})[slot.index] = (slot, (node, position))
    if not packed_ops:
        return graph
    body_anchor = _first_body_node(graph)
    exit_anchor = next((n for n in graph.nodes if n.kind == 'state_write'), graph.output_node)
    groups = list(dict.fromkeys(list(reads) + list(writes)))
    buffer_values = {}
    for group in groups:  # every read first: a written value may be another state's read
        buffer = group.buffer
        dtype = buffer._avals[0].dtype
        read = Node('state_read', state=buffer, output_avals=buffer.avals)
        read.meta['donate'] = group in writes
        if group in first_read:
            graph.insert_before(first_read[group], read)
        else:
            graph.prepend(read)  # (the entry block, before any body node)
        buffer_values[group] = read.outputs[0]
        for index, (slot, value) in sorted(reads.get(group, {}).items()):
            piece = _slice(graph, body_anchor, read.outputs[0], slot.offset, slot.size, dtype,
                           {'packed': _leaf_label(group, slot)})
            value.replace_all_uses_with(_reshape(graph, body_anchor, piece, slot.shape, dtype))
            stats['packed reads'] += 1
        stats['buffers'] += 1
    buffer_writes = []
    for group in groups:
        group_writes = writes.get(group)
        if not group_writes:
            continue
        # One dynamic_update_slice per written leaf into the buffer just read: XLA updates the
        # (donated) buffer in place; a many-way concatenate compiles to a much slower loop on
        # CPU.
        buffer = group.buffer
        dtype = buffer._avals[0].dtype
        new = buffer_values[group]
        for index, (slot, (node, position)) in sorted(group_writes.items()):
            piece = _reshape(graph, exit_anchor, node.inputs[position], (slot.size,), dtype)
            new = _insert(graph, exit_anchor, lax.dynamic_update_slice_p,
                          [new, piece, Literal(np.int32(slot.offset), _INDEX_AVAL)],
                          buffer._avals[0].shape, dtype, {})
        buffer_writes.append(Node('state_write', state=buffer, inputs=[new]))
        stats['packed writes'] += len(group_writes)
    for node in buffer_writes:  # after every pack's computation: the exit block
        graph.insert_before(exit_anchor, node)
    for node in packed_ops:
        graph.erase_node(node)
    top = graph.nodes
    graph.meta['read_states'] = [n.state for n in top if n.kind == 'state_read']
    graph.meta['written_states'] = [n.state for n in top if n.kind == 'state_write']
    return graph


def _leaf_label(group, slot) -> str:
    state = group.owners[slot.index]
    if state._treedef.num_leaves == 1:
        return state.label()
    paths = [jax.tree_util.keystr(path) for path, _ in
             jax.tree_util.tree_flatten_with_path(state._treedef.unflatten(
                 [0] * state._treedef.num_leaves))[0]]
    return state.label() + paths[state.__dict__['_pack_slots'].index(slot)]
