"""The pass author's graph API: inputs at a position, clones with a value map, ownership and
type checks, and the edit counter the PassManager reads."""

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import ir

F32 = jax.core.ShapedArray((), jnp.float32)
V3 = jax.core.ShapedArray((3,), jnp.float32)


def run(graph, *args):
    """Evaluate a pure graph (no states) through lowering."""
    brainstate.passes.hoist_states(graph)
    lowered = ir.lower_to_jaxpr(graph)
    return jax.extend.core.jaxpr_as_fun(lowered.closed_jaxpr)(*args)


def test_insert_input_at_a_position_and_remove_it():
    graph = ir.trace(lambda x, y: x - y, jnp.ones(3), jnp.ones(3))
    x, y = graph.inputs
    z = graph.insert_input(1, F32, name='z')
    assert graph.inputs == [x, z, y]
    first = graph.insert_input(0, F32)
    assert graph.inputs == [first, x, z, y]
    graph.remove_input(first)
    graph.remove_input(1)  # z, by position
    assert graph.inputs == [x, y]
    graph.verify()
    np.testing.assert_allclose(run(graph, jnp.full(3, 5.), jnp.full(3, 2.))[0], np.full(3, 3.))


def test_removing_a_used_input_names_it_and_its_user():
    graph = ir.trace(lambda x, y: jnp.sin(x) + y, jnp.ones(3), jnp.ones(3))
    with pytest.raises(ir.GraphEditError, match=r'remove_input: input %0:f32\[3\] is still used '
                                                r'by `%2:f32\[3\] = sin %0`'):
        graph.remove_input(0)
    with pytest.raises(ir.GraphEditError, match='position 5 is not between 0 and 1'):
        graph.remove_input(5)
    with pytest.raises(ir.GraphEditError, match='position 7 is not between 0 and 2'):
        graph.insert_input(7, F32)
    assert len(graph.inputs) == 2


def test_clone_node_into_another_graph_keeps_params_and_source_info():
    def f(x):
        return jnp.sum(jax.lax.cumsum(x, reverse=True)) * 2.0

    source = ir.trace(f, jnp.arange(3.))
    target = ir.Graph('target')
    x = target.add_input(V3)
    value_map = {source.inputs[0]: x}
    clones = [target.clone_node(n, value_map) for n in source.nodes
              if n.kind == 'primitive']
    target.set_outputs([value_map[source.outputs[0]]])
    target.verify()
    for old, new in zip([n for n in source.nodes if n.kind == 'primitive'], clones):
        assert new.op is old.op and new.params == old.params
        assert new.params is not old.params
        assert new.source_info is old.source_info
        assert new.graph is target and old.graph is source
    source.verify()  # the source is untouched
    arg = jnp.array([1., 2., 3.])
    np.testing.assert_allclose(run(target, arg)[0], f(arg))


def test_clone_node_copies_region_bodies_deeply():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f(x):
        def body(i):
            s.value = s.value + x
        brainstate.transform.for_loop(body, jnp.arange(3))
        return x

    source = ir.trace(f, 1.0)
    region = source.find_nodes('region')[0]
    target = ir.Graph('target')
    x = target.add_input(F32)
    value_map = {source.inputs[0]: x}
    for node in source.nodes:
        if node.kind not in ('input', 'output'):
            target.clone_node(node, value_map)
    target.set_outputs([x])
    copy = target.find_nodes('region')[0]
    assert copy.subgraphs[0] is not region.subgraphs[0]
    assert copy.subgraphs[0].parent is copy
    assert [n.name for n in copy.subgraphs[0].nodes] == [n.name for n in region.subgraphs[0].nodes]
    assert not set(map(id, copy.subgraphs[0].nodes)) & set(map(id, region.subgraphs[0].nodes))
    target.verify()


def test_clone_node_names_an_unmapped_operand():
    source = ir.trace(lambda x: jnp.sin(x), jnp.ones(3))
    target = ir.Graph('target')
    target.add_input(V3)
    with pytest.raises(ir.GraphEditError, match=r"operand %0:f32\[3\] of `%1:f32\[3\] = sin %0` "
                                                r"in graph '<lambda>' is not a value of graph "
                                                r"'target'. Map it"):
        target.clone_node(source.nodes[1])


def test_moving_or_erasing_a_node_of_another_graph_is_an_error():
    a = ir.trace(lambda x: jnp.sin(x) * 2, jnp.ones(3))
    b = ir.trace(lambda x: jnp.cos(x) * 3, jnp.ones(3))
    sin, cos = a.nodes[1], b.nodes[1]
    text_a, text_b = a.format(), b.format()
    for move in (a.move_before, a.move_after):
        with pytest.raises(ir.GraphEditError, match=r"`%1:f32\[3\] = cos %0` in graph "
                                                    r"'<lambda>' belongs to another graph"):
            move(sin, cos)
    with pytest.raises(ir.GraphEditError, match=r'belongs to another graph.*clone_node'):
        a.erase_node(cos)
    with pytest.raises(ir.GraphEditError, match=r'the anchor'):
        a.move_before(cos, sin)
    assert a.format() == text_a and b.format() == text_b
    a.verify(), b.verify()


def test_move_after_within_a_graph():
    graph = ir.trace(lambda x: (jnp.sin(x), jnp.cos(x)), jnp.ones(3))
    sin, cos = graph.nodes[1], graph.nodes[2]
    graph.move_after(cos, sin)
    assert graph.nodes[1:3] == [cos, sin]
    graph.verify()


def test_replace_all_uses_with_checks_types_and_names_both_values():
    graph = ir.trace(lambda x, y: (jnp.sum(x) + 1.0, y * 2), jnp.ones((5, 8)), jnp.ones(3))
    total = graph.find_nodes(name='reduce_sum')[0].outputs[0]
    with pytest.raises(ir.GraphEditError,
                       match=r'%2:f32\[\] cannot be replaced by %0:f32\[5,8\]: the types differ'):
        total.replace_all_uses_with(graph.inputs[0])
    with pytest.raises(ir.GraphEditError, match=r'cannot be replaced by %1:f32\[3\]'):
        total.replace_all_uses_with(graph.inputs[1])
    int_literal = ir.Literal(np.int32(0), jax.core.ShapedArray((), jnp.int32))
    with pytest.raises(ir.GraphEditError, match='the types differ'):
        total.replace_all_uses_with(int_literal)
    assert total.users  # nothing was rewired
    total.replace_all_uses_with(ir.Literal(np.float32(4.0), F32))  # same type: fine
    graph.verify()


def test_edit_count_grows_with_every_edit_including_region_bodies():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f(x):
        def body(i):
            s.value = s.value + x * 1.0
        brainstate.transform.for_loop(body, jnp.arange(3))
        return x

    graph = ir.trace(f, 1.0)
    start = graph.edit_count
    graph.nodes[0].meta['note'] = 'analysis'  # meta is not an edit
    graph.verify()
    graph.format()
    assert graph.edit_count == start
    body = graph.find_nodes('region')[0].subgraphs[0]
    mul = body.find_nodes(name='mul')[0]
    mul.outputs[0].replace_all_uses_with(mul.inputs[0])
    assert graph.edit_count > start
    before = graph.edit_count
    body.erase_node(mul)
    assert graph.edit_count > before


def test_pass_records_say_whether_each_pass_changed_the_graph():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f(x):
        s.value = s.value + jnp.sin(x) + jnp.sin(x)
        return x

    manager = brainstate.passes.PassManager('read-only-states,cse,cse,hoist-states',
                                            verify=False)
    manager.run(ir.trace(f, 1.0))
    changed = {(i, r.name): r.changed for i, r in enumerate(manager.records)}
    assert changed == {(0, 'read-only-states'): False, (1, 'cse'): True, (2, 'cse'): False,
                       (3, 'hoist-states'): True}
    assert all(type(r.changed) is bool for r in manager.records)
    assert '(no change)' in manager.report()


def _mixed_graph(pattern):
    """A straight-line graph whose nodes follow ``pattern``: r (state read), w (state write of
    the last value), p (a primitive), in that order."""
    aval = jax.core.ShapedArray((2,), jnp.float32)
    state = brainstate.State(jnp.zeros(2), name='s')
    graph = ir.Graph('mixed')
    last = graph.add_input(aval)
    for letter in pattern:
        if letter == 'r':
            last = graph.create_node('state_read', state=state, output_avals=[aval]).outputs[0]
        elif letter == 'w':
            graph.create_node('state_write', state=state, inputs=[last])
        else:
            last = graph.create_node('primitive', op=jax.lax.sin_p, inputs=[last],
                                     output_avals=[aval]).outputs[0]
    graph.set_outputs([last])
    return graph


@pytest.mark.parametrize('pattern', ['', 'rpw', 'wpr', 'rwrwpw', 'pwwrp', 'wrrw', 'ppp',
                                     'rrpppww', 'wpwpwr'])
def test_find_nodes_is_every_node_of_the_kinds_in_order(pattern):
    graph = _mixed_graph(pattern)
    nodes = graph.nodes
    for kinds in [('state_read',), ('state_write',), ('state_read', 'state_write'),
                  ('state_write', 'output'), ('state_read', 'state_write', 'output'),
                  ('input', 'state_write'), ('primitive', 'state_write'), ('region',)]:
        expected = [n for n in nodes if n.kind in kinds]
        assert graph.find_nodes(kinds) == expected, (pattern, kinds)
        assert graph.find_nodes(kinds, recursive=False) == expected, (pattern, kinds)
    # After erasing some nodes, the node list and find_nodes see only the others.
    for node in graph.find_nodes('state_write'):
        graph.erase_node(node)
    assert graph.find_nodes(('state_read', 'state_write')) == [
        n for n in graph.nodes if n.kind == 'state_read']
    assert all(n.graph is graph for n in graph.nodes)
    assert len(graph.nodes) == len(graph)


def test_node_list_after_erasing_appending_and_inserting_an_erased_node_again():
    graph = _mixed_graph('rpp')
    read, first, second = graph.nodes[1:4]
    second.outputs[0].replace_all_uses_with(first.outputs[0])
    graph.erase_node(second)
    appended = graph.create_node('primitive', op=jax.lax.cos_p, inputs=[first.outputs[0]],
                                 output_avals=[first.outputs[0].aval])
    assert graph.nodes == [graph.nodes[0], read, first, appended, graph.output_node]
    # An erased node may be inserted again (elsewhere): it is listed once, where it now is.
    second.set_inputs([read.outputs[0]])
    graph.insert_before(first, second)
    assert graph.nodes == [graph.nodes[0], read, second, first, appended, graph.output_node]
    graph.erase_node(appended)
    graph.append(appended)
    assert graph.nodes == [graph.nodes[0], read, second, first, appended, graph.output_node]
    assert len(graph.nodes) == len(graph) == 6


@pytest.mark.parametrize('layers', [3, 12, 13, 60])
def test_find_nodes_gives_every_node_of_the_kinds_in_order_small_or_large(layers):
    # find_nodes reads small graphs with one plain loop and large ones with early stops from
    # both ends: both give exactly the nodes a plain walk gives, also after edits.
    states = [brainstate.State(jnp.ones(3)) for _ in range(3)]

    def f(x):
        for i in range(layers):
            s = states[i % 3]
            s.value = jnp.tanh(s.value * x + i)
        return states[0].value + 1.

    graph = ir.trace(f, jnp.ones(3))
    graph.erase_node(graph.find_nodes('state_write')[0])  # an erased node in the kept list
    kinds_to_ask = [('state_read',), ('state_write',), ('input',), ('output',),
                    ('state_read', 'state_write'), ('state_write', 'output'),
                    ('input', 'state_read', 'state_write', 'output', 'primitive'),
                    ('region',), ('constant', 'state_write')]
    nodes = graph.nodes
    assert (len(nodes) <= 64) == (layers <= 12)  # both ways of reading are exercised
    for kinds in kinds_to_ask:
        expected = [n for n in nodes if n.kind in kinds]
        assert graph.find_nodes(kinds, recursive=False) == expected, kinds
    assert graph.input_nodes == [n for n in nodes if n.kind == 'input']
