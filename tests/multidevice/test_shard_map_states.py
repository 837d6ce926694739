"""shard_map with state specs on 8 CPU devices, composing with grad and for_loop inside, checked
against the same computation in raw JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import brainstate
from brainstate.transform import for_loop, grad, jit, shard_map

MESH = Mesh(np.array(jax.devices()), ('x',))


def test_split_state_is_updated_per_shard():
    buf = brainstate.State(jnp.zeros(16))

    def accumulate(data):
        buf.value = buf.value + data * 2
        return data.sum(keepdims=True)

    f = shard_map(accumulate, MESH, in_specs=(P('x'),), out_specs=P('x'),
                  state_in_specs={buf: P('x')})
    data = jnp.arange(16.)
    out = f(data)
    np.testing.assert_allclose(out, data.reshape(8, 2).sum(1))
    np.testing.assert_allclose(buf.value, data * 2)


def test_grad_inside_shard_map_is_data_parallel_sgd():
    w0 = np.random.RandomState(0).normal(size=(4, 3)).astype(np.float32)
    w = brainstate.ParamState(jnp.asarray(w0))
    x = np.random.RandomState(1).normal(size=(16, 4)).astype(np.float32)

    def loss(x):
        return jnp.sum(jnp.tanh(x @ w.value) ** 2)

    def step(x):
        g = grad(loss, w)(x)
        g = jax.lax.psum(g, 'x')                 # all-reduce of the per-shard gradients
        w.value = w.value - 0.01 * g
        return jax.lax.psum(loss(x), 'x')[None]

    f = shard_map(step, MESH, in_specs=(P('x'),), out_specs=P())
    out = f(jnp.asarray(x))

    def raw_loss(w, x):
        return jnp.sum(jnp.tanh(x @ w) ** 2)
    ref_w = w0 - 0.01 * jax.grad(raw_loss)(jnp.asarray(w0), jnp.asarray(x))
    np.testing.assert_allclose(w.value, ref_w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0], raw_loss(ref_w, x), rtol=1e-4)   # loss after the update


def test_for_loop_inside_shard_map_with_a_split_hidden_state():
    v = brainstate.HiddenState(jnp.zeros(16))

    def run(drive):                               # drive: [steps, 16] split on neurons
        def body(i):
            v.value = 0.9 * v.value + drive[i]
            return v.value
        return for_loop(body, jnp.arange(drive.shape[0]))

    f = shard_map(run, MESH, in_specs=(P(None, 'x'),), out_specs=P(None, 'x'),
                  state_in_specs={v: P('x')})
    drive = jnp.asarray(np.random.RandomState(2).normal(size=(5, 16)).astype(np.float32))
    trace = f(drive)

    def raw(drive):
        def body(v, d):
            v = 0.9 * v + d
            return v, v
        return jax.lax.scan(body, jnp.zeros(16), drive)
    ref_v, ref_trace = raw(drive)
    np.testing.assert_allclose(trace, ref_trace, rtol=1e-6)
    np.testing.assert_allclose(v.value, ref_v, rtol=1e-6)


def test_shard_map_inside_jit_composes():
    buf = brainstate.State(jnp.ones(16))

    @jit
    def step(data):
        f = shard_map(lambda d: _twice(buf, d), MESH, in_specs=(P('x'),), out_specs=P('x'),
                      state_in_specs={buf: P('x')})
        return f(data)

    for _ in range(2):
        out = step(jnp.arange(16.))
    np.testing.assert_allclose(buf.value, 1 + 2 * np.arange(16.) * 2)
    np.testing.assert_allclose(out, np.arange(16.) * 2)


def _twice(buf, d):
    buf.value = buf.value + 2 * d
    return d * 2


def test_state_sharded_on_the_mesh_is_split_by_default_and_kept():
    buf = brainstate.State(jnp.zeros(16), sharding=NamedSharding(MESH, P('x')))

    def f(d):
        assert buf.value.shape == (2,)            # per-shard view, from the state's sharding
        buf.value = buf.value + d
        return d

    shard_map(f, MESH, in_specs=(P('x'),), out_specs=P('x'))(jnp.arange(16.))
    np.testing.assert_allclose(buf.value, np.arange(16.))
    assert buf.value.sharding.is_equivalent_to(NamedSharding(MESH, P('x')), 1)


def test_writing_a_sharded_state_through_another_spec_is_an_error_naming_it():
    buf = brainstate.State(jnp.zeros(16), name='buf', sharding=NamedSharding(MESH, P('x')))

    def f(d):
        buf.value = buf.value + d.sum()
        return d

    g = shard_map(f, MESH, in_specs=(P('x'),), out_specs=P('x'), state_in_specs={buf: P()},
                  state_out_specs={buf: P()})
    with pytest.raises(brainstate.StateValueError, match="buf.*sharded as P\\('x'\\)"):
        g(jnp.arange(16.))
    np.testing.assert_allclose(buf.value, np.zeros(16))


def test_replicated_state_meeting_split_data_explains_state_in_specs():
    buf = brainstate.State(jnp.zeros(16), name='buf')

    def f(d):
        buf.value = buf.value + d
        return d

    g = shard_map(f, MESH, in_specs=(P('x'),), out_specs=P('x'))
    with pytest.raises(Exception, match='(?s)State buf.*state_in_specs'):
        g(jnp.arange(16.))
    np.testing.assert_allclose(buf.value, np.zeros(16))


def test_state_only_written_takes_its_out_spec_and_is_read_back_as_written():
    scale = brainstate.State(jnp.array(3.0))          # read, replicated
    out = brainstate.State(jnp.zeros(16))             # only written, split by state_out_specs

    def f(d):
        out.value = d * scale.value
        return out.value + 1                          # a read after the write: per-shard too

    g = shard_map(f, MESH, in_specs=(P('x'),), out_specs=P('x'), state_out_specs=P('x'))
    result = g(jnp.arange(16.))
    np.testing.assert_allclose(out.value, np.arange(16.) * 3)
    np.testing.assert_allclose(result, np.arange(16.) * 3 + 1)
    np.testing.assert_allclose(scale.value, 3.0)
