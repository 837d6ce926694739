"""The state IR: tracing into a Graph, printing, verifying, editing, hoisting and lowering."""

import jax
import jax.extend
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

import brainstate
from brainstate import ir
from brainstate.passes import hoist_states


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.count = brainstate.ShortTermState(jnp.zeros(()))
        self.w = brainstate.ParamState({'weight': jnp.ones((3, 2)), 'bias': jnp.zeros(2)})


def step_fn(net):
    def step(x):
        net.count.value = net.count.value + 1
        return x @ net.w.value['weight'] + net.w.value['bias']
    return step


def test_trace_records_state_ops_in_program_order():
    net = Net()
    graph = ir.trace(step_fn(net), jnp.ones(3))
    kinds = [(n.kind, n.state.label() if n.state is not None else n.name) for n in graph
             if n.kind != 'input']
    assert kinds == [
        ('state_read', 'Net.count'), ('primitive', 'add'), ('state_write', 'Net.count'),
        ('state_read', 'Net.w'), ('primitive', 'dot_general'), ('state_read', 'Net.w'),
        ('primitive', 'add'), ('output', 'output')]
    graph.verify()


def test_printed_ir_names_states_by_path():
    net = Net()
    text = str(ir.trace(step_fn(net), jnp.ones(3)))
    lines = text.splitlines()
    assert lines[0] == 'graph step(%0:f32[3]) {'
    assert lines[1] == '  %1:f32[] = state_read @Net.count'
    assert lines[2] == '  %2:f32[] = add %1 1.0:f32[]'
    assert lines[3] == '  state_write @Net.count %2'
    assert "state_read @Net.w{['bias'] ['weight']}" in lines[4]
    assert lines[-2] == '  return %8' and lines[-1] == '}'


def test_raw_jax_jit_helpers_are_inlined_and_their_states_seen():
    s = brainstate.State(jnp.ones(3), name='scale')

    @jax.jit
    def helper(x):
        return x * s.value

    def f(x):
        return helper(x) + 1

    graph = ir.trace(f, jnp.ones(3))
    assert [n.kind for n in graph.find_nodes('state_read')] == ['state_read']
    assert not graph.find_nodes(name='jit')


def test_state_op_inside_a_raw_lax_loop_is_an_error():
    s = brainstate.State(jnp.ones(()), name='acc')

    def f(x):
        def body(c, _):
            return c + s.value, None
        return jax.lax.scan(body, x, None, length=3)[0]

    with pytest.raises(brainstate.BrainStateError, match='State acc.*raw `scan`'):
        ir.trace(f, jnp.ones(()))


def test_hoist_states_gives_canonical_form():
    net = Net()
    graph = hoist_states(ir.trace(step_fn(net), jnp.ones(3)))
    graph.verify(canonical=True)
    body = [n.kind for n in graph if n.kind != 'input']
    assert body == ['state_read', 'state_read', 'primitive', 'primitive', 'primitive',
                    'state_write', 'output']
    assert graph.meta['read_states'] == [net.count, net.w]
    assert graph.meta['written_states'] == [net.count]


def test_hoist_forwards_a_read_after_a_write():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f():
        s.value = s.value + 1
        s.value = s.value * 2
        return s.value

    graph = hoist_states(ir.trace(f))
    reads = graph.find_nodes('state_read')
    writes = graph.find_nodes('state_write')
    assert len(reads) == 1 and len(writes) == 1
    mul = graph.find_nodes(name='mul')[0]
    assert writes[0].inputs[0] is mul.outputs[0]
    assert graph.outputs[0] is mul.outputs[0]


def test_write_only_state_is_written_not_read():
    s = brainstate.State(jnp.zeros(2), name='out')

    def f(x):
        s.value = x * 2

    graph = hoist_states(ir.trace(f, jnp.ones(2)))
    assert graph.meta['read_states'] == [] and graph.meta['written_states'] == [s]


def test_lowered_jaxpr_matches_pure_jax():
    net = Net()
    graph = hoist_states(ir.trace(step_fn(net), jnp.ones(3)))
    lowered = ir.lower_to_jaxpr(graph)
    x = jnp.arange(3.0)
    w = {'weight': jnp.arange(6.0).reshape(3, 2), 'bias': jnp.array([1.0, -1.0])}
    # inputs: count, w leaves (bias, weight: sorted dict keys), x
    out = jax.extend.core.jaxpr_as_fun(lowered.closed_jaxpr)(jnp.float32(4), w['bias'], w['weight'], x)
    result, new_count = out
    np.testing.assert_allclose(result, x @ w['weight'] + w['bias'], rtol=1e-6)
    np.testing.assert_allclose(new_count, 5.0)
    assert lowered.read_states == [net.count, net.w] and lowered.written_states == [net.count]


def test_make_jaxpr_returns_jaxpr_and_states():
    net = Net()
    jaxpr, states = brainstate.transform.make_jaxpr(step_fn(net))(jnp.ones(3))
    assert states == (net.count, net.w)
    # the published layout: the arguments, then every state; the result, then every state
    assert [str(v.aval.str_short()) for v in jaxpr.jaxpr.invars] == [
        'float32[3]', 'float32[]', 'float32[2]', 'float32[3,2]']
    assert len(jaxpr.jaxpr.outvars) == 4  # the result, the new count, then w's leaves passed through
    assert 'state_read' not in str(jaxpr)


def test_closed_over_arrays_become_constant_nodes():
    table = jnp.arange(4.0)
    graph = ir.trace(lambda x: x + table, jnp.ones(4))
    constants = graph.find_nodes('constant')
    assert len(constants) == 1
    np.testing.assert_allclose(constants[0].params['value'], np.arange(4.0))


def test_to_networkx():
    net = Net()
    g = ir.trace(step_fn(net), jnp.ones(3)).to_networkx()
    assert isinstance(g, nx.MultiDiGraph)
    kinds = nx.get_node_attributes(g, 'kind')
    assert sum(k == 'state_read' for k in kinds.values()) == 3
    states = {d['state'] for _, d in g.nodes(data=True) if d['state']}
    assert states == {'Net.count', 'Net.w'}
    assert nx.is_directed_acyclic_graph(g)


def test_hand_built_graph_and_editing_api():
    aval = jax.core.ShapedArray((2,), jnp.float32)
    g = ir.Graph('hand')
    x = g.add_input(aval)
    add = g.create_node('primitive', op=jax.lax.add_p, inputs=[x, x], output_avals=[aval])
    mul = g.create_node('primitive', op=jax.lax.mul_p, inputs=[add.outputs[0], x],
                        output_avals=[aval])
    g.set_outputs([mul.outputs[0]])
    g.verify()
    assert add.users() == [mul]
    # Replace the add with x itself and erase it.
    add.outputs[0].replace_all_uses_with(x)
    g.erase_node(add)
    g.verify()
    assert mul.inputs == [x, x]
    assert [n.name for n in g] == ['input', 'mul', 'output']


def test_verifier_catches_use_before_definition():
    aval = jax.core.ShapedArray((), jnp.float32)
    g = ir.Graph('bad')
    x = g.add_input(aval)
    first = g.create_node('primitive', op=jax.lax.neg_p, inputs=[x], output_avals=[aval])
    second = g.create_node('primitive', op=jax.lax.neg_p, inputs=[first.outputs[0]],
                           output_avals=[aval])
    g.set_outputs([second.outputs[0]])
    g.move_before(first, second)  # now `second` uses `first`'s result before it exists
    with pytest.raises(ir.IRVerificationError, match='before it is defined'):
        g.verify()


def test_verifier_checks_state_types_and_canonical_form():
    s = brainstate.State(jnp.zeros(3), name='s')
    g = ir.Graph('bad')
    x = g.add_input(jax.core.ShapedArray((4,), jnp.float32))
    g.create_node('state_write', state=s, inputs=[x])
    g.set_outputs([])
    with pytest.raises(ir.IRVerificationError, match='State s holds'):
        g.verify()
    g2 = ir.trace(lambda: s.value + s.value)
    with pytest.raises(ir.IRVerificationError, match='read twice'):
        g2.verify(canonical=True)


def test_erasing_a_used_node_is_refused():
    g = ir.trace(lambda x: -(-x), jnp.ones(2))
    with pytest.raises(ValueError, match='still used'):
        g.erase_node(g.find_nodes(name='neg')[0])


def test_graph_copy_is_independent():
    net = Net()
    g = ir.trace(step_fn(net), jnp.ones(3))
    before = str(g)
    c = g.copy()
    hoist_states(c)
    assert str(g) == before
    assert str(c) != before
    c.verify(canonical=True)


def test_source_locations_point_at_user_code():
    net = Net()
    g = ir.trace(step_fn(net), jnp.ones(3))
    text = g.format(source=True)
    assert 'test_ir.py' in text.splitlines()[1]
