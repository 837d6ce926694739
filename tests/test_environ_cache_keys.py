"""brainstate.environ settings are part of every compiled-program cache key.

A function reads a setting (``environ.get_dt()``, ``environ.get('fit')``...) while it is traced,
so the value is baked into its program. Changing that setting must retrace (and give the new
result); changing a setting the function never read must not.
"""

import threading

import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import environ


@pytest.fixture(autouse=True)
def _clean_settings():
    saved = dict(environ._ENV_STATE.settings)
    yield
    environ._ENV_STATE.settings.clear()
    environ._ENV_STATE.settings.update(saved)
    environ._changed_globally()


def _counted(fun):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        return fun(*args, **kwargs)

    wrapper.traces = calls
    return wrapper


def test_jit_retraces_when_a_setting_it_read_changes():
    environ.set(dt=0.1)
    state = brainstate.State(jnp.zeros(2))

    @_counted
    def step(x):
        state.value = state.value + environ.get_dt()
        return x * environ.get_dt()

    f = brainstate.transform.jit(step)
    np.testing.assert_allclose(f(jnp.ones(2)), [0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(f(jnp.ones(2)), [0.1, 0.1], rtol=1e-6)
    assert len(step.traces) == 1
    environ.set(dt=0.25)
    np.testing.assert_allclose(f(jnp.ones(2)), [0.25, 0.25], rtol=1e-6)
    assert len(step.traces) == 2
    np.testing.assert_allclose(state.value, [0.45, 0.45], rtol=1e-6)


def test_unrelated_setting_does_not_retrace():
    environ.set(dt=0.1)

    @_counted
    def step(x):
        return x + environ.get_dt()

    f = brainstate.transform.jit(step)
    f(1.)
    environ.set(some_unrelated_flag=3)
    with environ.context(another_flag='x'):
        assert float(f(1.)) == pytest.approx(1.1)
    environ.set(dt=0.1)  # set again to the same value: the program still fits
    assert float(f(1.)) == pytest.approx(1.1)
    assert len(step.traces) == 1


def test_going_back_to_earlier_settings_reuses_their_program():
    environ.set(dt=0.1)

    @_counted
    def step(x):
        return x * environ.get_dt()

    f = brainstate.transform.jit(step)
    assert float(f(1.)) == pytest.approx(0.1)
    with environ.context(dt=0.5):
        assert float(f(1.)) == pytest.approx(0.5)
    assert float(f(1.)) == pytest.approx(0.1)
    with environ.context(dt=0.5):
        assert float(f(1.)) == pytest.approx(0.5)
    assert len(step.traces) == 2


def test_nested_contexts():
    environ.set(dt=0.1)

    @_counted
    def step(x):
        return x * environ.get_dt() + (1. if environ.get('fit', False) else 0.)

    f = brainstate.transform.jit(step)
    with environ.context(fit=True):
        assert float(f(1.)) == pytest.approx(1.1)
        with environ.context(dt=0.2):
            assert float(f(1.)) == pytest.approx(1.2)
            with environ.context(fit=False):
                assert float(f(1.)) == pytest.approx(0.2)
            assert float(f(1.)) == pytest.approx(1.2)
        assert float(f(1.)) == pytest.approx(1.1)
    assert float(f(1.)) == pytest.approx(0.1)
    assert len(step.traces) == 4  # (fit, 0.1), (fit, 0.2), (no fit, 0.2), (no fit, 0.1)


def test_a_context_inside_the_function_is_part_of_the_function():
    environ.set(dt=0.1)

    @_counted
    def step(x):
        with environ.context(dt=environ.get_dt() * 2):
            return x * environ.get_dt()

    f = brainstate.transform.jit(step)
    assert float(f(1.)) == pytest.approx(0.2)
    assert float(f(1.)) == pytest.approx(0.2)
    assert len(step.traces) == 1
    environ.set(dt=1.)
    assert float(f(1.)) == pytest.approx(2.)
    assert len(step.traces) == 2


def test_unset_setting_read_with_default_then_set():
    environ._ENV_STATE.settings.pop('my_flag', None)
    environ._changed_globally()

    @_counted
    def step(x):
        return x + environ.get('my_flag', 0.)

    f = brainstate.transform.jit(step)
    assert float(f(1.)) == 1.
    environ.set(my_flag=5.)
    assert float(f(1.)) == 6.
    environ.pop('my_flag')
    assert float(f(1.)) == 1.
    assert len(step.traces) == 2


def test_precision_is_a_setting_like_the_others():
    @_counted
    def step(x):
        return jnp.asarray(x, dtype=environ.dftype())

    f = brainstate.transform.jit(step)
    assert f(1.).dtype == jnp.float32
    with environ.context(precision=16):
        assert f(1.).dtype == jnp.float16
    assert f(1.).dtype == jnp.float32
    assert len(step.traces) == 2


def test_threads_see_their_own_contexts():
    environ.set(dt=0.1)
    f = brainstate.transform.jit(lambda x: x * environ.get_dt())
    f(1.)
    results, errors = {}, []
    barrier = threading.Barrier(2)

    def worker(name, dt):
        try:
            with environ.context(dt=dt):
                barrier.wait()
                results[name] = [float(f(1.)) for _ in range(20)]
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=('a', 0.3)),
               threading.Thread(target=worker, args=('b', 0.7))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    np.testing.assert_allclose(results['a'], [0.3] * 20, rtol=1e-6)
    np.testing.assert_allclose(results['b'], [0.7] * 20, rtol=1e-6)
    assert float(f(1.)) == pytest.approx(0.1)


def test_a_context_in_another_thread_does_not_leak_into_this_one():
    environ.set(dt=0.1)
    f = brainstate.transform.jit(lambda x: x * environ.get_dt())
    assert float(f(1.)) == pytest.approx(0.1)
    inside, leave = threading.Event(), threading.Event()

    def other():
        with environ.context(dt=9.):
            f(1.)
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(10)
    try:
        assert float(f(1.)) == pytest.approx(0.1)
    finally:
        leave.set()
        thread.join()


def test_eager_loop_reuse_honours_settings():
    environ.set(dt=0.1)
    total = brainstate.State(jnp.zeros(()))

    def body(i):
        total.value = total.value + environ.get_dt()

    brainstate.transform.for_loop(body, jnp.arange(3))
    np.testing.assert_allclose(total.value, 0.3, rtol=1e-6)
    before = brainstate.transform.eager_cache_info()['traces']
    brainstate.transform.for_loop(body, jnp.arange(3))  # reused without tracing
    assert brainstate.transform.eager_cache_info()['traces'] == before
    environ.set(dt=1.)
    brainstate.transform.for_loop(body, jnp.arange(3))
    np.testing.assert_allclose(total.value, 3.6, rtol=1e-6)
    assert brainstate.transform.eager_cache_info()['traces'] == before + 1


def test_grad_transform_reuse_honours_settings():
    environ.set(dt=2.)
    w = brainstate.ParamState(jnp.ones(3))

    def loss(x):
        return jnp.sum(w.value * x) * environ.get_dt()

    g = brainstate.transform.grad(loss, grad_states=w)
    np.testing.assert_allclose(g(jnp.arange(3.)), 2. * np.arange(3.), rtol=1e-6)
    environ.set(dt=3.)
    np.testing.assert_allclose(g(jnp.arange(3.)), 3. * np.arange(3.), rtol=1e-6)


def test_outer_jit_keys_on_what_an_inner_transform_read():
    environ.set(dt=2.)
    w = brainstate.ParamState(jnp.ones(3))

    def loss(x):
        return jnp.sum(w.value * x) * environ.get_dt()

    g = brainstate.transform.grad(loss, grad_states=w)
    x = jnp.arange(3.)
    g(x)  # the inner program is cached before the outer jit traces

    @brainstate.transform.jit
    def outer(x):
        return g(x)

    np.testing.assert_allclose(outer(x), 2. * np.arange(3.), rtol=1e-6)
    environ.set(dt=5.)
    np.testing.assert_allclose(outer(x), 5. * np.arange(3.), rtol=1e-6)


def test_stateful_function_cache_honours_settings():
    environ.set(dt=0.5)
    sf = brainstate.transform.StatefulFunction(lambda x: x * environ.get_dt())
    key = sf.get_arg_cache_key(1., compile_if_miss=True)
    first = str(sf.get_jaxpr_by_cache(key))
    environ.set(dt=0.75)
    key = sf.get_arg_cache_key(1., compile_if_miss=True)
    second = str(sf.get_jaxpr_by_cache(key))
    assert '0.5' in first and '0.75' in second


def test_dropout_follows_the_fit_flag_under_jit():
    brainstate.random.seed(0)
    layer = brainstate.nn.Dropout(0.5)
    f = brainstate.transform.jit(lambda x: layer(x))
    x = jnp.ones(200)
    with environ.context(fit=False):
        np.testing.assert_array_equal(f(x), x)
    with environ.context(fit=True):
        dropped = f(x)
        assert 0 < int(jnp.sum(dropped == 0)) < 200
    with environ.context(fit=False):
        np.testing.assert_array_equal(f(x), x)


def test_vmap_transform_reuse_honours_settings():
    environ.set(dt=2.)
    v = brainstate.transform.vmap(lambda x: x * environ.get_dt())
    np.testing.assert_allclose(v(jnp.arange(3.)), 2. * np.arange(3.), rtol=1e-6)

    @brainstate.transform.jit
    def outer(x):
        return v(x)

    np.testing.assert_allclose(outer(jnp.arange(3.)), 2. * np.arange(3.), rtol=1e-6)
    environ.set(dt=3.)
    np.testing.assert_allclose(v(jnp.arange(3.)), 3. * np.arange(3.), rtol=1e-6)
    np.testing.assert_allclose(outer(jnp.arange(3.)), 3. * np.arange(3.), rtol=1e-6)
