"""vmap2 / pmap2 / StatefulMapping / vmap2_new_states: checked against hand-written JAX."""

import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import (StatefulMapping, in_new_state_probe, vmap2,
                                  vmap2_new_states)
from brainstate.util.filter import OfType

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


# -- stateless: the same as jax.vmap --------------------------------------------------------------

@pytest.mark.parametrize('in_axes,out_axes', [(0, 0), ((1, None), 0), ((0, 0), 1)])
def test_stateless_matches_jax_vmap(in_axes, out_axes):
    def f(x, y):
        return jnp.tanh(x) * 2.0 + y.sum()

    x = jnp.arange(12.0).reshape(3, 4) / 10
    y = jnp.arange(12.0).reshape(3, 4) / 7 if in_axes != (1, None) else jnp.ones(2)
    expected = jax.vmap(f, in_axes=in_axes, out_axes=out_axes)(x, y)
    close(vmap2(f, in_axes=in_axes, out_axes=out_axes)(x, y), expected)


# -- states read and written per lane -------------------------------------------------------------

def test_batched_state_read_modify_write_matches_pure_jax():
    v0 = jnp.arange(12.0).reshape(4, 3) / 5
    w = brainstate.ParamState(jnp.array([0.5, -1.0, 2.0]))
    v = brainstate.HiddenState(v0)

    def step(x):
        v.value = 0.9 * v.value + x * w.value
        return jnp.sum(v.value)

    xs = jnp.linspace(0, 1, 4)
    out = vmap2(step, state_in_axes={0: OfType(brainstate.HiddenState)})(xs)

    def pure(v_lane, x):
        new = 0.9 * v_lane + x * jnp.array([0.5, -1.0, 2.0])
        return jnp.sum(new), new

    expected_out, expected_v = jax.vmap(pure)(v0, xs)
    close(out, expected_out)
    close(v.value, expected_v)
    assert w.value.shape == (3,)  # read shared, unchanged


def test_state_batched_on_axis_1():
    v0 = jnp.arange(6.0).reshape(3, 2)  # batch of 2 along axis 1
    v = brainstate.ShortTermState(v0)

    def f(x):
        v.value = v.value * x
        return v.value.sum()

    out = vmap2(f, state_in_axes={1: v})(jnp.array([2.0, 3.0]))
    expected_v = v0 * jnp.array([2.0, 3.0])
    close(v.value, expected_v)
    close(out, expected_v.sum(axis=0))


def test_unbatched_write_is_stored_as_is():
    shared = brainstate.ShortTermState(jnp.zeros(2))

    def f(x):
        shared.value = jnp.array([1.0, 2.0])  # the same in every lane
        return x * 2

    close(vmap2(f)(jnp.arange(3.0)), jnp.arange(3.0) * 2)
    close(shared.value, [1.0, 2.0])


def test_undeclared_per_lane_write_auto_scatters_like_jax_vmap():
    s = brainstate.ShortTermState(jnp.zeros(()))

    def f(x):
        s.value = jnp.sin(x)
        return x

    xs = jnp.arange(5.0)
    vmap2(f)(xs)
    close(s.value, jnp.sin(xs))
    vmap2(f)(xs + 1)  # a stored (5,) value: still a pure output, same shape
    close(s.value, jnp.sin(xs + 1))


def test_auto_read_modify_write_buffer_stays_per_lane():
    buf = brainstate.ShortTermState(jnp.zeros(4))

    def f(x):
        buf.value = buf.value + x
        return buf.value

    mapped = vmap2(f)
    for i in range(3):
        mapped(jnp.arange(4.0))
    assert buf.value.shape == (4,)
    close(buf.value, 3 * jnp.arange(4.0))


def test_auto_read_modify_write_of_other_size_warns_and_gains_axis():
    s = brainstate.ShortTermState(jnp.ones(3))

    def f(x):
        s.value = s.value * x
        return x

    with pytest.warns(UserWarning, match='ShortTermState'):
        vmap2(f)(jnp.arange(5.0))
    close(s.value, jnp.arange(5.0)[:, None] * jnp.ones((5, 3)))


def test_raise_policy_names_the_state_and_changes_nothing():
    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.trace = brainstate.ShortTermState(jnp.zeros(3))

    net = Net()

    def f(x):
        net.trace.value = net.trace.value + x
        return x

    with pytest.raises(brainstate.BatchAxisError, match='trace') as info:
        vmap2(f, unexpected_out_state_mapping='raise')(jnp.ones((4, 3)))
    assert 'state_out_axes' in str(info.value)
    close(net.trace.value, jnp.zeros(3))


def test_warn_policy_warns_and_scatters():
    s = brainstate.ShortTermState(jnp.zeros(3))

    def f(x):
        s.value = s.value + x
        return x

    with pytest.warns(UserWarning, match='state_out_axes'):
        vmap2(f, unexpected_out_state_mapping='warn')(jnp.arange(3.0))
    close(s.value, jnp.broadcast_to(jnp.arange(3.0)[:, None], (3, 3)))


def test_invalid_policy_is_a_value_error():
    with pytest.raises(ValueError, match='unexpected_out_state_mapping'):
        vmap2(lambda x: x, unexpected_out_state_mapping='sometimes')(jnp.ones(2))


def test_state_out_axes_places_the_batch_axis():
    s = brainstate.ShortTermState(jnp.zeros(5))

    def f(x):
        s.value = s.value + x
        return s.value

    out = StatefulMapping(f, state_out_axes={1: s})(jnp.ones((4, 5)))
    assert out.shape == (4, 5)
    assert s.value.shape == (5, 4)
    close(s.value, jnp.ones((5, 4)))


def test_out_axis_none_with_per_lane_value_names_the_state():
    s = brainstate.ShortTermState(jnp.zeros(()), name='total')

    def f(x):
        s.value = x
        return x

    with pytest.raises(brainstate.BatchAxisError, match='total'):
        vmap2(f, state_out_axes={None: s})(jnp.arange(3.0))
    assert s.value.shape == ()


def test_in_and_out_axes_disagree_names_the_state():
    s = brainstate.ShortTermState(jnp.zeros((4, 3)), name='buffer')

    def f(x):
        s.value = s.value + x
        return x

    with pytest.raises(brainstate.BatchAxisError, match='buffer'):
        vmap2(f, state_in_axes={0: s}, state_out_axes={1: s})(jnp.ones((4, 3)))
    close(s.value, jnp.zeros((4, 3)))


def test_failed_call_leaves_states_unchanged():
    s = brainstate.ShortTermState(jnp.arange(3.0))
    key = brainstate.random.get_key()

    def f(x):
        s.value = s.value + x + brainstate.random.normal()
        return x.reshape(7)  # fails while tracing

    with pytest.raises(Exception):
        vmap2(f, state_in_axes={0: s})(jnp.ones(3))
    close(s.value, jnp.arange(3.0))
    assert np.array_equal(jax.random.key_data(brainstate.random.get_key()),
                          jax.random.key_data(key))


# -- random numbers -------------------------------------------------------------------------------

def test_random_lanes_differ_and_key_advances_once():
    rng = brainstate.random.RandomState(0)
    before = jax.random.key_data(rng.value)
    out = vmap2(lambda x: x + rng.normal(size=2))(jnp.zeros((4, 2)))
    assert out.shape == (4, 2)
    assert not np.allclose(out[0], out[1])
    # the key advanced exactly as split_key(4) then split_key() would
    ref = brainstate.random.RandomState(0)
    ref.split_key(4)
    ref.split_key()
    assert not np.array_equal(jax.random.key_data(rng.value), before)
    rng2 = brainstate.random.RandomState(0)
    out2 = vmap2(lambda x: x + rng2.normal(size=2))(jnp.zeros((4, 2)))
    close(out, out2)  # reproducible from the seed


# -- composition -----------------------------------------------------------------------------------

def test_grad_through_vmap2_matches_pure_jax():
    w = brainstate.ParamState(jnp.array([1.0, -2.0, 0.5]))

    def loss(xs):
        ys = vmap2(lambda x: jnp.tanh(x * w.value).sum())(xs)
        return ys.sum()

    xs = jnp.arange(12.0).reshape(4, 3) / 10
    g = brainstate.transform.grad(loss, grad_states=w)(xs)

    def pure(wv):
        return jax.vmap(lambda x: jnp.tanh(x * wv).sum())(xs).sum()

    close(g, jax.grad(pure)(jnp.array([1.0, -2.0, 0.5])))


def test_vmap2_inside_jit_and_scan_inside_vmap2():
    v = brainstate.HiddenState(jnp.zeros(3))

    def lane(xs):
        def step(c, x):
            v.value = v.value + x
            return c + x, v.value
        return brainstate.transform.scan(step, 0.0, xs)

    data = jnp.arange(12.0).reshape(3, 4)
    jitted = brainstate.transform.jit(lambda d: vmap2(lane, state_in_axes={0: v})(d))
    carry, ys = jitted(data)
    close(carry, data.sum(1))
    close(ys, jnp.cumsum(data, axis=1))
    close(v.value, data.sum(1))


def test_static_argnums_are_closed_over():
    def f(x, n):
        return x * n

    m = StatefulMapping(f, in_axes=(0, None), static_argnums=1)
    close(m(jnp.arange(3.0), 4), jnp.arange(3.0) * 4)
    close(m(jnp.arange(3.0), 5), jnp.arange(3.0) * 5)


# -- new states ------------------------------------------------------------------------------------

def test_vmap2_new_states_batches_new_states():
    brainstate.random.seed(3)
    flags = []

    class Net(brainstate.nn.Module):
        def init_state(self):
            flags.append(in_new_state_probe())
            self.w = brainstate.ParamState(brainstate.random.normal(size=3))
            self.count = brainstate.ShortTermState(jnp.zeros(()))
            self.fixed = brainstate.NonBatchState(jnp.ones(2))

    net = Net()
    groups = vmap2_new_states(net, {}, axis_size=5, state_tag='ens')
    assert flags == [True, False]
    assert net.w.value.shape == (5, 3)
    assert net.count.value.shape == (5,)
    assert net.fixed.value.shape == (2,)
    assert not np.allclose(net.w.value[0], net.w.value[1])  # per-lane random draws
    assert {id(s) for s in groups[None]} == {id(net.fixed)}
    assert {id(s) for s in groups[0]} == {id(net.w), id(net.count)}
    assert 'ens' in net.w.tag
    assert not in_new_state_probe()

    # then map over them, each lane with its own row, compared with pure JAX
    def step(x):
        net.count.value = net.count.value + (net.w.value * x).sum()
        return net.count.value

    w0 = net.w.value
    xs = jnp.arange(5.0)
    out = vmap2(step, state_in_axes={0: 'ens'})(xs)  # the tag selects the new states
    close(out, jax.vmap(lambda w, x: (w * x).sum())(w0, xs))
    close(net.count.value, out)


def test_vmap2_new_states_needs_axis_size():
    class Net(brainstate.nn.Module):
        def init_state(self):
            self.x = brainstate.ShortTermState(jnp.zeros(()))

    with pytest.raises(ValueError, match='axis_size'):
        vmap2_new_states(Net(), {})


# -- bugs found on the way -------------------------------------------------------------------------

def test_replacing_a_module_state_retraces_jit():
    class M(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = brainstate.ParamState(jnp.ones(3))

    m = M()
    f = brainstate.transform.jit(lambda x: x * m.w.value)
    close(f(jnp.ones(3)), jnp.ones(3))
    m.w = brainstate.ParamState(jnp.full(3, 5.0))  # a new State, same shape
    close(f(jnp.ones(3)), jnp.full(3, 5.0))
    g = vmap2(lambda x: x * m.w.value)
    close(g(jnp.ones((2, 3))), jnp.full((2, 3), 5.0))
    m.w = brainstate.ParamState(jnp.full(3, 7.0))
    close(g(jnp.ones((2, 3))), jnp.full((2, 3), 7.0))


def _run(code: str, env=None) -> str:
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'PYTHONPATH': ROOT, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_starts_no_backend_so_xla_flags_set_later_apply():
    out = _run("""
        import os
        import brainstate, brainstate.nn, brainstate.random, brainstate.transform
        from jax._src import xla_bridge
        print('started', bool(xla_bridge._backends))
        os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=3'
        import jax
        print('devices', jax.device_count())
        brainstate.random.seed(1); a = brainstate.random.normal(size=2)
        brainstate.random.seed(1); b = brainstate.random.normal(size=2)
        print('same', bool((a == b).all()))
    """, env={'XLA_FLAGS': '', 'JAX_PLATFORMS': 'cpu'})
    assert 'started False' in out
    assert 'devices 3' in out
    assert 'same True' in out


def test_pmap2_matches_jax_pmap_on_host_devices():
    out = _run("""
        import jax, jax.numpy as jnp, numpy as np, brainstate
        from brainstate.transform import pmap2, pmap2_new_states
        s = brainstate.ShortTermState(jnp.zeros((4, 2)))
        def f(x):
            s.value = s.value + x
            return jax.lax.psum(x, 'i')
        xs = jnp.arange(8.0).reshape(4, 2)
        out = pmap2(f, 'i', state_in_axes={0: s})(xs)
        ref = jax.pmap(lambda x: jax.lax.psum(x, 'i'), 'i')(xs)
        print('out', bool(np.allclose(out, ref)), 'state', bool(np.allclose(s.value, xs)))
        class Net(brainstate.nn.Module):
            def init_state(self):
                self.h = brainstate.ShortTermState(jnp.zeros(3))
        net = Net()
        pmap2_new_states(net, {}, axis_size=4)
        print('new', net.h.value.shape)
    """, env={'XLA_FLAGS': '--xla_force_host_platform_device_count=4',
              'JAX_PLATFORMS': 'cpu'})
    assert 'out True state True' in out
    assert 'new (4, 3)' in out
