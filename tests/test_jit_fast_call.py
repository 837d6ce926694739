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


def test_other_argument_counts_and_a_keyword_named_like_a_parameter():
    s = brainstate.ShortTermState(jnp.zeros(2))

    @brainstate.transform.jit
    def step(x, y=None, a0=0.):
        s.value = s.value + x + (0. if y is None else y) + a0
        return s.value.sum()

    ref = np.zeros(2)
    for args, kwargs, add in [((jnp.ones(2),), {}, 1.), ((jnp.ones(2),), {}, 1.),
                              ((jnp.ones(2), jnp.full(2, 2.)), {}, 3.),
                              ((jnp.ones(2),), {}, 1.),  # the one-argument call again
                              ((jnp.ones(2),), {'a0': 5.}, 6.),  # a keyword: general path
                              ((jnp.ones(2), jnp.full(2, 2.)), {}, 3.)]:
        ref = ref + add
        np.testing.assert_allclose(step(*args, **kwargs), ref.sum(), rtol=1e-6)
        np.testing.assert_allclose(s.value, ref, rtol=1e-6)
    with pytest.raises(TypeError):
        step()  # too few arguments: the general path names the problem
    np.testing.assert_allclose(s.value, ref, rtol=1e-6)


def test_an_error_on_a_retrace_from_the_cached_call_shows_the_users_frames():
    import traceback
    s = brainstate.ShortTermState(jnp.zeros(3))

    @brainstate.transform.jit
    def step(x):
        if x.shape[0] != 3:
            raise ValueError('step wants three numbers')
        s.value = s.value + x
        return s.value

    step(jnp.ones(3))
    step(jnp.ones(3))  # the cached call is in place
    with pytest.raises(ValueError, match='three numbers') as info:
        step(jnp.ones(4))  # JAX retraces inside the cached call; the user's function raises
    frames = [f.filename for f in traceback.extract_tb(info.value.__traceback__)]
    inside = [f for f in frames if '/brainstate/' in f.replace('\\', '/')]
    assert len(inside) <= 1, inside
    np.testing.assert_allclose(s.value, 2.)
    np.testing.assert_allclose(step(jnp.ones(3)), 3.)


def test_inf_checks_switched_on_after_cached_calls_keep_the_states(armed_doubling_step):
    from brainstate import _compat
    s, step = armed_doubling_step
    entry = step._last
    assert entry._jitted_keep_states is None  # (only the donating program so far)
    bad = jnp.full(3, jnp.inf)  # (made before: JAX would check the making too)
    with jax.debug_infs(True):  # (JAX stops donating under debug_nans itself, not this one)
        assert _compat.DEBUG_CHECKS_SEEN[0]  # seen through JAX's hook, no per-call read
        with pytest.raises(FloatingPointError):
            step(bad)
        # The call took the program that donates nothing, chosen per call once checks are seen.
        assert entry._jitted_keep_states is not None
    # JAX re-ran the failing program: its inputs were not donated, the state is as before.
    np.testing.assert_allclose(s.value, 8.)
    step(jnp.full(3, 2.))
    np.testing.assert_allclose(s.value, 16.)


def test_a_changed_environ_setting_the_function_read_retraces():
    s = brainstate.ShortTermState(jnp.zeros(()))

    @brainstate.transform.jit
    def step():
        s.value = s.value + brainstate.environ.get_dt()
        return s.value

    with brainstate.environ.context(dt=0.5):
        step()
        step()  # cached
        with brainstate.environ.context(dt=2.):
            step()
        step()
    np.testing.assert_allclose(s.value, 3.5)


def test_a_trace_running_in_another_thread_does_not_misroute_calls():
    import threading
    s = brainstate.ShortTermState(jnp.zeros(()))

    @brainstate.transform.jit
    def step(x):
        s.value = s.value + x
        return s.value

    step(1.)
    inside, release = threading.Event(), threading.Event()

    def slow_trace():
        @brainstate.transform.jit
        def other(x):
            inside.set()
            release.wait(10)
            return x * 2
        other(1.)

    thread = threading.Thread(target=slow_trace)
    thread.start()
    assert inside.wait(10)
    try:
        step(1.)  # another thread traces: this call takes the general path, still correct
        step(1.)
    finally:
        release.set()
        thread.join()
    np.testing.assert_allclose(s.value, 3.)


def test_inside_another_jit_the_call_is_traced_into_it():
    s = brainstate.ShortTermState(jnp.zeros(()))

    @brainstate.transform.jit
    def inner(x):
        s.value = s.value + x
        return s.value

    inner(1.)
    inner(1.)

    @brainstate.transform.jit
    def outer(x):
        return inner(x) + inner(x)

    np.testing.assert_allclose(outer(1.), 3. + 4.)
    np.testing.assert_allclose(s.value, 4.)
    np.testing.assert_allclose(inner(1.), 5.)
