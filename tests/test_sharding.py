"""Sharding on several devices: runs each file of tests/multidevice/ in a subprocess (one per
file, so a parallel run spreads them over its workers) with 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, which must be set before JAX starts),
so the normal test command covers sharded states, sharded jit, shard_map with state
specs, the scaling-out examples and the benchmark's agreement with raw JAX (~35 s).

Plus what needs no second device: the errors that explain a sharding given wrongly.
"""

import os
import subprocess
import sys

import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

import brainstate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


MULTIDEVICE_FILES = sorted(name for name in os.listdir(os.path.join(ROOT, 'tests', 'multidevice'))
                           if name.startswith('test_') and name.endswith('.py'))


@pytest.mark.parametrize('test_file', MULTIDEVICE_FILES)
def test_multidevice_suite_on_8_cpu_devices(test_file):
    env = dict(os.environ)
    env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                        ' --xla_force_host_platform_device_count=8').strip()
    env['JAX_PLATFORMS'] = 'cpu'
    env['BRAINSTATE_MULTIDEVICE'] = '1'
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-x',
         os.path.join(ROOT, 'tests', 'multidevice', test_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, f'tests/multidevice/{test_file} failed:\n{report}'
    assert ' passed' in proc.stdout and 'skipped' not in proc.stdout.split('\n')[-2], report


def test_partition_spec_without_mesh_is_refused_naming_the_state():
    with pytest.raises(brainstate.StateValueError, match='counter.*NamedSharding'):
        brainstate.State(jnp.zeros(4), name='counter', sharding=P('x'))


def test_sharding_of_a_plain_state_is_none():
    assert brainstate.State(jnp.zeros(4)).sharding is None


def test_single_device_sharding_is_kept_through_jit():
    import jax
    from jax.sharding import SingleDeviceSharding
    device = jax.devices()[0]
    s = brainstate.State(jnp.zeros(4), sharding=SingleDeviceSharding(device))

    @brainstate.transform.jit
    def step():
        s.value = s.value + 1

    step()
    step()
    assert s.sharding == SingleDeviceSharding(device)
    assert list(s.value.devices()) == [device]
    assert float(s.value.sum()) == 8.0


def test_shard_states_with_a_spec_that_does_not_fit_names_the_state_and_changes_nothing():
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec as P
    import brainstate

    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = brainstate.ParamState(jnp.ones(4))
            self.h = brainstate.HiddenState(jnp.zeros(4))

    net = Net()
    mesh = jax.make_mesh((1,), ('x',), axis_types=(jax.sharding.AxisType.Auto,))
    with pytest.raises(ValueError, match=r'State Net\.w .*P\(.x., .y.\)'):
        brainstate.shard_states(net, mesh, {brainstate.HiddenState: P('x'),
                                            brainstate.ParamState: P('x', 'y')})
    assert net.h.sharding is None and net.w.sharding is None  # the fitting rule was not applied
    given = brainstate.shard_states(net, mesh, {brainstate.ParamState: P('x')})
    assert list(given) == [('w',)] and net.w.sharding.spec == P('x')



def test_grad_of_a_stateful_shard_map_matches_pure_jax():
    import jax
    import numpy as np
    from jax.sharding import Mesh

    mesh = Mesh(np.array(jax.devices()[:1]), ('x',))
    w = brainstate.ParamState(jnp.array([0.5, -1.0, 2.0, 0.25]))
    calls = brainstate.State(jnp.zeros((), jnp.int32))
    x = jnp.linspace(-1., 1., 4)

    def f(x):
        calls.value = calls.value + 1
        return jnp.sum(jnp.tanh(w.value * x) ** 2)

    loss = brainstate.transform.shard_map(f, mesh, in_specs=P('x'), out_specs=P())
    g = brainstate.transform.grad(loss, w)(x)
    expected = jax.grad(lambda w_: jnp.sum(jnp.tanh(w_ * x) ** 2))(w.value)
    np.testing.assert_allclose(g, expected, rtol=1e-6)
    assert int(calls.value) == 1  # the state written inside shard_map is stored under grad
