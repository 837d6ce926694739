"""The typed verifier: every primitive re-typed by its abstract evaluation, messages in the
printed IR's %n names, and failures attributed to the pass that caused them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import ir, passes


@pytest.fixture
def state():
    return brainstate.State(jnp.zeros(()), name='total')


def step_of(state):
    def step(x):
        y = jnp.sin(x) * 2.0
        state.value = state.value + jnp.sum(y)
        return y
    return step


def test_traced_programs_verify(state):
    def f(x, i):
        a = jnp.dot(x, x.T) + jnp.float32(1)
        b = jax.lax.broadcast_in_dim(jnp.sum(a, axis=0), (2, 4), (1,))
        c = b.astype(jnp.int32) // 3
        d = jnp.where(c > 0, jnp.exp(b), -b)
        state.value = state.value + d.max() + i
        return jnp.cumsum(d, axis=1), jnp.argmax(d), jax.random.normal(jax.random.key(0), (2,))

    graph = ir.trace(f, jnp.ones((4, 3)), 1)
    graph.verify()
    passes.PassManager(passes.DEFAULT_PIPELINE, verify=True).run(graph)


def test_inferred_types_match_the_recorded_ones(state):
    graph = ir.trace(step_of(state), jnp.ones((5, 8)))
    for node in graph.find_nodes('primitive'):
        inferred = ir.infer_result_types(node)
        assert [(a.shape, a.dtype) for a in inferred] == \
            [(v.aval.shape, v.aval.dtype) for v in node.outputs]


@passes.register('widen-a-sum')
def widen_a_sum(graph):
    """Deliberately wrong: add the f32[5,8] input where the f32[] sum was used."""
    total = graph.find_nodes(name='reduce_sum')[0].outputs[0]
    for user in list(total.users):
        user.replace_input(total, graph.inputs[0])  # no type check here: the verifier's job


def test_verifier_rejects_a_shape_changing_replacement_naming_the_value_and_the_pass(
        state, tmp_path):
    graph = ir.trace(step_of(state), jnp.ones((5, 8)))
    manager = passes.PassManager('cse,widen-a-sum,dce', reproducer_dir=str(tmp_path))
    with pytest.raises(passes.PassFailure) as info:
        manager.run(graph)
    message = str(info.value)
    assert "Pass 'widen-a-sum' failed: it left a graph the verifier rejects" in message
    assert '(`%5:f32[] = add %3 %0`): the results are typed (%5:f32[]) but add of these ' \
        'operands gives (f32[5,8])' in message
    assert info.value.pass_name == 'widen-a-sum'
    assert open(info.value.reproducer).read().startswith('// brainstate pass reproducer')


def test_replacement_of_another_shape_is_refused_inside_a_pass(state, tmp_path):
    def replace_total_by_input(graph):
        total = graph.find_nodes(name='reduce_sum')[0].outputs[0]
        total.replace_all_uses_with(graph.inputs[0])   # f32[] by f32[5,8]

    graph = ir.trace(step_of(state), jnp.ones((5, 8)))
    manager = passes.PassManager([replace_total_by_input], reproducer_dir=str(tmp_path))
    with pytest.raises(ir.GraphEditError, match=r'%4:f32\[\] cannot be replaced by '
                                                r'%0:f32\[5,8\]') as info:
        manager.run(graph)
    assert info.value.pass_name == 'replace-total-by-input'
    assert "Raised in pass 'replace-total-by-input'" in info.value.__notes__[0]


def test_under_jit_a_shape_changing_pass_never_changes_a_state(state, tmp_path, monkeypatch):
    def bad(graph):
        write = graph.find_nodes('state_write')[0]
        write.replace_input(write.inputs[0], graph.inputs[0])  # f32[] state gets f32[5,8]

    monkeypatch.setitem(passes._default_pipeline._settings, 'verify', True)
    with pytest.raises(passes.PassFailure, match=r"Pass 'bad' failed.*State total holds \(f32\[\]\) "
                                                  r"but the state_write has \(%0:f32\[5,8\]\)"):
        brainstate.transform.jit(step_of(state), passes=[bad])(jnp.ones((5, 8)))
    assert state.value.shape == () and float(state.value) == 0.0


def test_a_node_moved_from_another_graph_is_rejected_naming_it_and_the_pass(state, tmp_path):
    other = ir.trace(lambda x: jnp.cos(x), jnp.ones((5, 8)))

    def steal(graph):
        graph.move_before(graph.nodes[1], other.nodes[1])

    graph = ir.trace(step_of(state), jnp.ones((5, 8)))
    with pytest.raises(ir.GraphEditError,
                       match=r"move_before: `%1:f32\[5,8\] = cos %0` in graph '<lambda>' belongs "
                             r"to another graph") as info:
        passes.PassManager([steal], reproducer_dir=str(tmp_path)).run(graph)
    assert info.value.pass_name == 'steal'

    def borrow(graph):  # a new node using a value of another graph
        with graph.inserting_before(graph.nodes[1]):
            graph.create_node('primitive', op=jax.lax.cos_p, inputs=[other.inputs[0]],
                              output_avals=[other.inputs[0].aval])

    with pytest.raises(passes.PassFailure,
                       match=r"Pass 'borrow' failed.*`%1:f32\[5,8\] = cos %2`.*uses "
                             r"%2:f32\[5,8\], a value of graph '<lambda>'"):
        passes.PassManager([borrow], reproducer_dir=str(tmp_path)).run(graph)


def test_operands_that_do_not_fit_the_primitive():
    graph = ir.trace(lambda x, y: (jnp.sin(x) * x, y), jnp.ones(3), jnp.ones(4))
    mul = graph.find_nodes(name='mul')[0]
    mul.replace_input(mul.inputs[1], graph.inputs[1])
    with pytest.raises(ir.IRVerificationError,
                       match=r'the operands \(%2:f32\[3\], %1:f32\[4\]\) do not fit mul') as info:
        graph.verify()
    assert "node 3 (`%3:f32[3] = mul %2 %1`)" in str(info.value)


def test_the_region_kind_verifies_its_node_with_printed_names(monkeypatch):
    seen = []

    def verify(self, node, name_of):
        seen.append(node.op)
        raise ir.IRVerificationError(f'{name_of(node.inputs[0])} is wrong here.')

    monkeypatch.setattr(type(ir.regions.SCAN), 'verify', verify)
    s = brainstate.State(jnp.zeros(()))

    def f(x):
        brainstate.transform.for_loop(lambda i: setattr(s, 'value', s.value + x), jnp.arange(3))
        return x

    graph = ir.trace(f, 1.0)
    with pytest.raises(ir.IRVerificationError, match=r'%0 is wrong here.'):
        graph.verify()
    assert seen == ['scan']


def test_lowering_failure_after_unverified_passes_names_them(state):
    other = ir.trace(lambda x: x, jnp.ones((5, 8)))

    def corrupt(graph):
        sin = graph.find_nodes(name='sin')[0]
        sin.replace_input(sin.inputs[0], other.inputs[0])

    with pytest.raises(ir.LoweringError, match=r"Passes changed graph 'step' without "
                                               r"verification.*\(corrupt, hoist-states;.*"
                                               r"set_pass_options\(verify=True\)"):
        brainstate.transform.jit(step_of(state), passes=[corrupt])(jnp.ones((5, 8)))
    assert float(state.value) == 0.0


def test_verification_is_memoized_per_node(state):
    graph = ir.trace(step_of(state), jnp.ones((5, 8)))
    graph.verify()
    calls = []
    original = jax.lax.sin_p.abstract_eval
    try:
        jax.lax.sin_p.abstract_eval = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
        graph.verify()
        graph.copy().verify()
    finally:
        jax.lax.sin_p.abstract_eval = original
    assert calls == []
    np.testing.assert_equal(len(graph.find_nodes(name='sin')), 1)
