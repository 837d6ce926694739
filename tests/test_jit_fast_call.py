"""The generated per-entry fast path of a cached jit call: it must behave exactly as the
general path (hits do not retrace, misses do, every written state is stored, a failed call
leaves every state as it was)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate


def make_step():
    a = brainstate.ShortTermState(jnp.zeros(3))
    b = brainstate.ShortTermState(jnp.ones(3))
    w = brainstate.ParamState(jnp.full(3, 2.))  # read only
    traces = []

    @brainstate.transform.jit
    def step(x):
        traces.append(x.shape)
        a.value = a.value + x
        b.value = b.value * w.value
        return (a.value * b.value).sum()

    return step, a, b, w, traces


def test_cached_calls_take_the_generated_path_and_match_pure_jax():
    step, a, b, w, traces = make_step()
    x = jnp.arange(3.)
    ref_a, ref_b = np.zeros(3), np.ones(3)
    for _ in range(4):
        out = step(x)
        ref_a, ref_b = ref_a + np.arange(3.), ref_b * 2.
        np.testing.assert_allclose(out, (ref_a * ref_b).sum(), rtol=1e-6)
    np.testing.assert_allclose(a.value, ref_a)
    np.testing.assert_allclose(b.value, ref_b)
    np.testing.assert_allclose(w.value, 2.)
    assert traces == [(3,)]  # traced once
    entry = step._last
    assert entry.fast_call(1).__name__ == 'fast'  # generated
    assert step.__call__ is entry.fast_call(1)  # calls run it directly


def test_misses_retrace_and_keyword_arguments_take_the_general_path():
    step, a, b, w, traces = make_step()
    step(jnp.ones(3))
    step(x=jnp.ones(3))  # keywords: the general path (JAX traces the keyword call once)
    step(x=jnp.ones(3))
    assert len(traces) <= 2
    np.testing.assert_allclose(a.value, 3.)
    count = len(traces)
    a.value = jnp.zeros(3)  # same shape: no retrace
    step(jnp.ones(3))
    assert len(traces) == count
    np.testing.assert_allclose(a.value, 1.)
    np.testing.assert_allclose(b.value, 16.)


def test_a_state_reshaped_between_calls_retraces():
    step, a, b, w, traces = make_step()
    step(jnp.ones(3))
    a.value = jnp.zeros((2, 3))
    step(jnp.ones(3))
    assert len(traces) == 2
    np.testing.assert_allclose(a.value, np.ones((2, 3)))


def test_a_buffer_the_user_holds_is_not_donated():
    step, a, b, w, traces = make_step()
    step(jnp.ones(3))
    held = a.value  # exposed: the next call must not donate this buffer
    step(jnp.ones(3))
    np.testing.assert_allclose(held, 1.)
    np.testing.assert_allclose(a.value, 2.)


def test_a_bad_argument_leaves_states_intact_and_names_the_problem():
    step, a, b, w, traces = make_step()
    step(jnp.ones(3))
    before = [np.asarray(s.value) for s in (a, b, w)]
    with pytest.raises(Exception):
        step(jnp.ones(4))  # a new shape: retraced, the broadcast fails in tracing
    with pytest.raises(TypeError):
        step('not an array')
    for state, value in zip((a, b, w), before):
        np.testing.assert_array_equal(state.value, value)
    step(jnp.ones(3))  # still works
    np.testing.assert_allclose(a.value, 2.)


def test_under_a_raw_jax_transform_no_tracer_is_stored():
    step, a, b, w, traces = make_step()
    step(jnp.ones(3))
    before = np.asarray(a.value)
    with pytest.raises(Exception, match='raw JAX transform|brainstate'):
        jax.jit(step)(jnp.ones(3))
    assert not isinstance(a.value, jax.core.Tracer)
    np.testing.assert_array_equal(a.value, before)


def test_a_function_writing_no_state_and_one_of_pytrees():
    tree = brainstate.ShortTermState({'u': jnp.zeros(2), 'v': jnp.ones(2)})

    @brainstate.transform.jit
    def read_only(x):
        return x + tree.value['v']

    @brainstate.transform.jit
    def update(x):
        tree.value = {'u': tree.value['u'] + x, 'v': tree.value['v'] * 2}

    for i in range(3):
        np.testing.assert_allclose(read_only(jnp.ones(2)), 1. + 2. ** i)
        update(jnp.ones(2))
    np.testing.assert_allclose(tree.value['u'], 3.)
    np.testing.assert_allclose(tree.value['v'], 8.)
    assert read_only._last.fast_call(1) is None  # a pytree state: the general path
