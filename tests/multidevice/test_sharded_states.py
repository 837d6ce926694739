"""Sharded states under jit on 8 CPU devices: placement, kept shardings, donation, errors, the
IR's notes, checked against raw JAX with the same shardings."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import brainstate

assert jax.device_count() == 8, 'run with XLA_FLAGS=--xla_force_host_platform_device_count=8'

MESH = Mesh(np.array(jax.devices()), ('x',))
MESH2 = Mesh(np.array(jax.devices()).reshape(2, 4), ('data', 'model'))
SPLIT = NamedSharding(MESH, P('x'))
REPL = NamedSharding(MESH, P())


def same(a, b):
    return a.is_equivalent_to(b, 2)


def test_state_is_placed_in_its_sharding_and_reports_it():
    w = brainstate.ParamState(jnp.arange(16.), sharding=SPLIT)
    assert w.sharding == SPLIT
    assert w.value.sharding.is_equivalent_to(SPLIT, 1)
    assert len(w.value.addressable_shards) == 8
    assert w.value.addressable_shards[0].data.shape == (2,)
    np.testing.assert_array_equal(w.value, np.arange(16.))


def test_a_value_already_sharded_is_adopted():
    s = brainstate.State(jax.device_put(jnp.ones((8, 4)), SPLIT))
    assert s.sharding.is_equivalent_to(SPLIT, 2)
    plain = brainstate.State(jnp.ones(3))
    assert plain.sharding is None


def test_structured_value_takes_a_tree_of_shardings():
    s = brainstate.ParamState({'w': jnp.ones((4, 8)), 'b': jnp.zeros(8)},
                              sharding={'w': NamedSharding(MESH, P(None, 'x')), 'b': SPLIT})
    assert s.value['w'].sharding.spec == P(None, 'x')
    assert s.sharding['b'] == SPLIT


def test_setter_moves_the_value_and_none_forgets():
    s = brainstate.State(jnp.arange(8.))
    s.sharding = SPLIT
    assert s.value.sharding.is_equivalent_to(SPLIT, 1)
    s.sharding = REPL
    assert s.value.sharding.is_equivalent_to(REPL, 1)
    s.sharding = None
    assert s.sharding is None
    np.testing.assert_array_equal(s.value, np.arange(8.))


def test_a_partition_spec_without_a_mesh_is_refused_with_the_fix():
    with pytest.raises(brainstate.StateValueError, match='NamedSharding'):
        brainstate.State(jnp.ones(8), sharding=P('x'))


def test_indivisible_shape_names_the_state():
    s = brainstate.State(jnp.ones(6), name='odd')
    with pytest.raises(brainstate.StateValueError, match='odd'):
        s.sharding = SPLIT


def test_explicit_mesh_axes_are_refused_clearly():
    mesh = jax.make_mesh((8,), ('x',), axis_types=(jax.sharding.AxisType.Explicit,))
    with pytest.raises(brainstate.ArgumentValueError, match='AxisType.Auto'):
        brainstate.State(jnp.ones(8), sharding=NamedSharding(mesh, P('x')))


def test_eager_write_is_placed_but_another_sharding_is_an_error_naming_the_state():
    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = brainstate.ParamState(jnp.zeros(16), sharding=SPLIT)

    net = Net()
    net.w.value = jnp.ones(16)                 # one device: placed into the sharding
    assert net.w.value.sharding.is_equivalent_to(SPLIT, 1)
    before = net.w.value
    with pytest.raises(brainstate.StateValueError, match=r'\bw\b.*sharded as P\(\'x\'\)'):
        net.w.value = jax.device_put(jnp.full(16, 5.), REPL)
    assert net.w.value is before


def test_jit_step_matches_raw_jax_and_keeps_shardings():
    w0 = np.random.RandomState(0).normal(size=(16, 8)).astype(np.float32)
    w = brainstate.ParamState(jnp.asarray(w0), sharding=NamedSharding(MESH2, P(None, 'model')))
    count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))
    x = jax.device_put(jnp.ones((4, 16)), NamedSharding(MESH2, P('data', None)))

    @brainstate.transform.jit
    def step(x):
        y = jnp.tanh(x @ w.value)
        w.value = w.value - 0.1 * x.T @ y
        count.value += 1
        return y.sum()

    @jax.jit
    def raw(w, x):
        y = jnp.tanh(x @ w)
        return y.sum(), w - 0.1 * x.T @ y

    ref_w = jnp.asarray(w0)
    for _ in range(3):
        out = step(x)
        ref, ref_w = raw(ref_w, x)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
        assert w.value.sharding.is_equivalent_to(NamedSharding(MESH2, P(None, 'model')), 2)
    np.testing.assert_allclose(w.value, ref_w, rtol=1e-5, atol=1e-5)
    assert int(count.value) == 3


def test_written_state_is_donated_in_place():
    w = brainstate.State(jnp.zeros(16), sharding=SPLIT)

    @brainstate.transform.jit
    def step():
        w.value = w.value + 1.0

    step()                    # the first write-back makes the buffer private to the state
    held = w._value           # (internal: reading .value would keep the buffer alive)
    step()
    assert held.is_deleted(), 'the old buffer of a written state is donated'
    np.testing.assert_array_equal(w.value, np.full(16, 2.0))
    assert w.value.sharding.is_equivalent_to(SPLIT, 1)


def test_state_written_with_a_changed_layout_is_returned_in_its_sharding():
    # The step computes the new value replicated; the state still comes back split.
    w = brainstate.State(jnp.arange(16.), sharding=SPLIT)

    @brainstate.transform.jit
    def step(v):
        w.value = jnp.sort(v + w.value)[::-1]

    step(jax.device_put(jnp.ones(16), REPL))
    assert w.value.sharding.is_equivalent_to(SPLIT, 1)
    np.testing.assert_array_equal(w.value, np.arange(16.)[::-1] + 1)


def test_changing_a_sharding_between_calls_recompiles_for_it():
    w = brainstate.State(jnp.arange(16.), sharding=SPLIT)

    @brainstate.transform.jit
    def step():
        w.value = w.value * 2

    step()
    w.sharding = REPL
    step()
    assert w.value.sharding.is_equivalent_to(REPL, 1)
    np.testing.assert_array_equal(w.value, np.arange(16.) * 4)


def test_jit_in_and_out_shardings_for_arguments_and_results():
    w = brainstate.State(jnp.ones(16), sharding=SPLIT)

    def f(x):
        w.value = w.value + x
        return x * 2, w.value.sum()

    step = brainstate.transform.jit(f, in_shardings=(REPL,), out_shardings=(SPLIT, REPL))
    a, b = step(jnp.arange(16.))
    assert a.sharding.is_equivalent_to(SPLIT, 1) and b.sharding.is_equivalent_to(REPL, 0)
    np.testing.assert_array_equal(a, np.arange(16.) * 2)
    assert float(b) == 16 + np.arange(16.).sum()
    assert w.value.sharding.is_equivalent_to(SPLIT, 1)
    # ahead of time: the lowered program's state argument carries the state's sharding
    text = step.lower(jnp.arange(16.)).as_text()
    assert '"x"' in text


def test_failed_call_leaves_sharded_states_as_they_were():
    w = brainstate.State(jnp.arange(16.), sharding=SPLIT)

    @brainstate.transform.jit
    def step(x):
        w.value = w.value + x
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError):
        step(jnp.ones(16))
    np.testing.assert_array_equal(w.value, np.arange(16.))
    assert w.value.sharding.is_equivalent_to(SPLIT, 1)


def test_ir_notes_each_state_reads_sharding_and_a_pass_can_read_it():
    w = brainstate.State(jnp.ones((8, 8)), name='w', sharding=NamedSharding(MESH, P('x', None)))
    b = brainstate.State(jnp.zeros(8), name='b')

    def f(x):
        b.value = x @ w.value
        return b.value

    graph = brainstate.transform.jit(f).ir(jnp.ones(8))
    text = str(graph)
    assert re.search(r"state_read @w .*# sharding=P\('x', None\)", text), text
    assert 'state_read @b' not in text or '@b    # sharding' not in text
    seen = {n.state.label(): n.sharding for n in graph.nodes if n.kind == 'state_read'}
    assert seen['w'] == NamedSharding(MESH, P('x', None))
    assert brainstate.ir.parse(text) is not None   # the note is a comment


def test_shard_states_by_filter_rules():
    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = brainstate.nn.Linear(4, 16)
            self.l2 = brainstate.nn.Linear(16, 8)
            self.h = brainstate.HiddenState(jnp.zeros(8))

    net = Net()
    given = brainstate.shard_states(net, MESH, {
        brainstate.ParamState: {'weight': P(None, 'x'), 'bias': P('x')},
        brainstate.HiddenState: lambda state: P('x'),
    })
    assert len(given) == 3
    assert net.l1.weight.value['weight'].sharding.spec == P(None, 'x')
    assert net.l2.weight.value['bias'].sharding.spec == P('x')
    assert net.h.sharding.spec == P('x')
    with pytest.raises(brainstate.StateValueError, match=r'l1'):
        brainstate.shard_states(net.l1, MESH, {brainstate.ParamState: P('x', None)})


def test_eager_transform_keeps_and_follows_a_states_sharding():
    w = brainstate.ParamState(jnp.arange(16.), sharding=SPLIT)

    def loss():
        return jnp.sum(w.value ** 2)

    for sharding in (SPLIT, REPL, SPLIT):
        w.sharding = sharding
        expected = 2 * np.asarray(w.value)
        g = brainstate.transform.grad(loss, w)()        # eager: compiled through jit's entries
        np.testing.assert_allclose(g, expected)
        brainstate.transform.for_loop(lambda i: setattr(w, 'value', w.value + 1), jnp.arange(2))
        assert w.value.sharding.is_equivalent_to(sharding, 1)
    np.testing.assert_allclose(w.value, np.arange(16.) + 6)
