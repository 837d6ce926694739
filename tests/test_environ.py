"""brainstate.environ: settings, nested per-thread contexts, precision and behaviours."""

import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import environ


@pytest.fixture(autouse=True)
def clean_environment():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        environ.reset()
    yield
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        environ.reset()


def test_set_get_pop_and_defaults():
    environ.set(dt=0.1, gain=3)
    assert environ.get_dt() == 0.1 and environ.get('gain') == 3
    assert environ.get('absent', default=None) is None
    with pytest.raises(KeyError, match='absent'):
        environ.get('absent')
    assert environ.pop('gain') == 3
    assert environ.pop('gain', default='gone') == 'gone'
    with pytest.raises(KeyError):
        environ.pop('gain')
    assert environ.get('precision') == environ.DEFAULT_PRECISION


def test_contexts_nest_restore_and_refuse_pop():
    environ.set(dt=0.1)
    with environ.context(dt=0.01, fit=True) as inside:
        assert inside['dt'] == 0.01 and inside['fit'] is True
        with environ.context(dt=0.001):
            assert environ.get_dt() == 0.001
            with pytest.raises(ValueError, match='2 context'):
                environ.pop('dt')
        assert environ.get_dt() == 0.01
    assert environ.get_dt() == 0.1
    assert environ.get('fit', default=None) is None
    with pytest.raises(RuntimeError):
        with environ.context(dt=0.5):
            raise RuntimeError('boom')
    assert environ.get_dt() == 0.1


def test_contexts_are_per_thread_settings_are_shared():
    environ.set(dt=0.1)
    seen = {}
    entered, leave = threading.Event(), threading.Event()

    def other():
        seen['shared'] = environ.get_dt()
        with environ.context(dt=0.5):
            entered.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(5)
    assert environ.get_dt() == 0.1          # the other thread's context is invisible here
    leave.set()
    thread.join()
    assert seen['shared'] == 0.1


def test_precision_chooses_dtypes_and_jax_x64():
    assert environ.dftype() == np.float32 and environ.ditype() == np.int32
    with environ.context(precision=64):
        assert environ.dftype() == np.float64 and environ.dctype() == np.complex128
        assert jax.config.jax_enable_x64
        assert jnp.zeros(()).dtype == jnp.float64
        assert environ.tolerance().dtype == np.float64
    assert not jax.config.jax_enable_x64
    environ.set(precision='bf16')
    assert environ.dftype() == jnp.bfloat16 and environ.get_precision() == 16
    environ.set(precision=8)
    assert environ.dutype() == np.uint8
    for bad in (128, 'x', 3.5, True):
        with pytest.raises(ValueError):
            environ.set(precision=bad)


def test_platform_and_device_count_are_not_contextual():
    assert environ.get_platform() in environ.SUPPORTED_PLATFORMS
    assert environ.get_host_device_count() >= 1
    with pytest.raises(ValueError, match='platform'):
        with environ.context(platform='cpu'):
            pass
    with pytest.raises(ValueError):
        environ.set_host_device_count(0)


def test_registered_behaviour_runs_on_set_and_context_and_warns_on_error():
    calls = []
    environ.register_default_behavior('gain', calls.append)
    with pytest.raises(ValueError):
        environ.register_default_behavior('gain', calls.append)
    environ.set(gain=1)
    with environ.context(gain=2):
        pass
    assert calls == [1, 2, 1]
    environ.pop('gain')
    assert calls == [1, 2, 1]              # pop does not call behaviours
    assert 'gain' in environ.list_registered_behaviors()
    assert environ.unregister_default_behavior('gain')
    assert not environ.unregister_default_behavior('gain')

    def failing(value):
        raise RuntimeError('bad')

    environ.register_default_behavior('knob', failing)
    with pytest.warns(RuntimeWarning, match='Callback'):
        environ.set(knob=1)
    assert environ.get('knob') == 1


def test_isolated_environment_leaves_global_alone():
    env = environ.EnvironmentState()
    environ.set(dt=0.3, precision=64, env=env)
    assert environ.get_dt(env=env) == 0.3 and environ.dftype(env=env) == np.float64
    assert environ.get('dt', default=None) is None
    assert not jax.config.jax_enable_x64     # only the global environment switches JAX
    with pytest.raises(TypeError):
        environ.set(dt=[0.1, 0.2])
