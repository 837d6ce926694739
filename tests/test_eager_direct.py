"""First eager calls run the user's function directly under the JAX transform (issue 15 item 3).

A grad-family transform or a vmap called eagerly with a function key never seen runs the
function itself under ``jax.grad`` / ``jax.vjp`` / ``jax.vmap`` (brainstate/transform/_direct.py):
no trace into the IR, no compile. These tests check that such a call computes what hand-written
JAX computes, keeps every state update (and only after success), leaves no tracer behind, and
hands what it cannot do to the traced run, which then raises the usual errors.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import eager_cache_info

T = brainstate.transform


def _delta(before, after, *names):
    return tuple(after[n] - before[n] for n in names)


def _run(fn):
    """``fn()`` and how the eager runner ran it: (result, direct runs, fallbacks, traces)."""
    before = eager_cache_info()
    out = fn()
    return (out,) + _delta(before, eager_cache_info(), 'direct', 'direct_fallbacks', 'traces')


def test_first_grad_runs_directly_without_a_trace_and_matches_jax():
    w = brainstate.ParamState(jnp.linspace(0.5, 1.5, 5))
    x = jnp.linspace(-1., 1., 5)
    g, direct, fallbacks, traces = _run(
        lambda: T.grad(lambda v: jnp.sum(jnp.tanh(w.value * v) ** 2), w, argnums=0)(x))
    expected = jax.grad(lambda w_, v: jnp.sum(jnp.tanh(w_ * v) ** 2), argnums=(0, 1))(w.value, x)
    assert (direct, fallbacks, traces) == (1, 0, 0)
    np.testing.assert_allclose(g[0], expected[0], rtol=1e-6)
    np.testing.assert_allclose(g[1], expected[1], rtol=1e-6)


def test_direct_grad_writes_states_once_after_success_and_keeps_no_tracer():
    w = brainstate.ParamState(jnp.array([1., 2., 3.]))
    count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))
    seen = brainstate.ShortTermState(jnp.zeros(3))

    def loss(x):
        count.value = count.value + 1
        seen.value = w.value * x          # depends on the differentiated state
        return jnp.sum(seen.value ** 2)   # reads back its own write

    (grads, value), direct, fallbacks, _ = _run(
        lambda: T.grad(loss, w, return_value=True)(jnp.array([1., 1., 2.])))
    assert (direct, fallbacks) == (1, 0)
    np.testing.assert_allclose(grads, 2 * w.value * jnp.array([1., 1., 4.]), rtol=1e-6)
    np.testing.assert_allclose(value, 1. + 4. + 36., rtol=1e-6)
    assert int(count.value) == 1
    np.testing.assert_allclose(seen.value, [1., 2., 6.])
    for state in (w, count, seen):
        assert not isinstance(state.value, jax.core.Tracer)


def test_direct_vector_grad_has_aux_and_a_state_created_inside():
    w = brainstate.ParamState(jnp.array([0.5, -1., 2.]))
    made = []

    def f(x):
        s = brainstate.ShortTermState(jnp.ones(3))
        s.value = s.value * 2. + w.value
        made.append(s)
        return jnp.sin(w.value * x), {'s': s.value}

    x = jnp.array([1., 2., 3.])
    (grad, aux), direct, fallbacks, _ = _run(lambda: T.vector_grad(f, w, has_aux=True)(x))
    assert (direct, fallbacks) == (1, 0)
    np.testing.assert_allclose(grad, x * jnp.cos(w.value * x), rtol=1e-6)
    np.testing.assert_allclose(aux['s'], 2. + w.value)
    # The new state received its (concrete) value after the run.
    np.testing.assert_allclose(made[-1].value, 2. + w.value)
    assert not isinstance(made[-1].value, jax.core.Tracer)


def test_direct_grad_of_a_loss_with_a_loop_and_a_branch_inside():
    w = brainstate.ParamState(jnp.linspace(0.5, 1.5, 4))
    h = brainstate.HiddenState(jnp.zeros(4))
    xs = jnp.linspace(-1., 1., 12).reshape(3, 4)

    def loss(xs):
        h.value = jnp.zeros(4)

        def step(x):
            h.value = jnp.tanh(w.value * x + h.value)

        T.for_loop(step, xs)
        return T.cond(jnp.sum(h.value) > 100., lambda: 0. * jnp.sum(h.value),
                      lambda: jnp.sum(h.value ** 2))

    def pure(w_):
        hh = jnp.zeros(4)
        for x in xs:
            hh = jnp.tanh(w_ * x + hh)
        return jnp.sum(hh ** 2), hh

    g, direct, fallbacks, traces = _run(lambda: T.grad(loss, w)(xs))
    assert (direct, fallbacks, traces) == (1, 0, 0)
    np.testing.assert_allclose(g, jax.grad(lambda w_: pure(w_)[0])(w.value), rtol=1e-5)
    np.testing.assert_allclose(h.value, pure(w.value)[1], rtol=1e-6)  # the loop's write kept


def test_direct_grad_with_jit_inside_and_a_random_draw():
    w = brainstate.ParamState(jnp.ones(4))
    brainstate.random.seed(1)
    key0 = jax.random.key_data(brainstate.random.DEFAULT.value)

    def loss(x):
        noise = brainstate.random.normal(size=4)
        return T.jit(lambda v: jnp.sum(w.value * v * noise))(x)

    x = jnp.arange(4.)
    g, direct, fallbacks, _ = _run(lambda: T.grad(loss, w)(x))
    assert (direct, fallbacks) == (1, 0)
    key1 = jax.random.key_data(brainstate.random.DEFAULT.value)
    assert not np.array_equal(key0, key1)  # the key advanced, once
    brainstate.random.seed(1)
    noise = brainstate.random.normal(size=4)
    np.testing.assert_allclose(g, x * noise, rtol=1e-6)
    np.testing.assert_array_equal(jax.random.key_data(brainstate.random.DEFAULT.value), key1)


def test_a_failing_direct_run_changes_no_state():
    w = brainstate.ParamState(jnp.ones(3))
    other = brainstate.ShortTermState(jnp.zeros(3))

    def loss(x):
        other.value = other.value + 1.
        w.value = w.value * 3.
        if x.shape[0] == 3:
            raise ValueError('bad input')
        return jnp.sum(w.value * x)

    before = eager_cache_info()
    with pytest.raises(ValueError, match='bad input'):
        T.grad(loss, w)(jnp.ones(3))
    assert _delta(before, eager_cache_info(), 'direct_fallbacks') == (1,)
    np.testing.assert_array_equal(other.value, np.zeros(3))
    np.testing.assert_array_equal(w.value, np.ones(3))
    with pytest.raises(ValueError, match='bad input'):
        T.vmap(lambda x: loss(x))(jnp.ones((2, 3)))
    np.testing.assert_array_equal(other.value, np.zeros(3))


@pytest.mark.parametrize('call, error, match', [
    # (what the traced run explains, after the direct run handed the call over)
    (lambda w, u: T.grad(lambda x: jnp.sum(w.value * x), [w, u])(jnp.ones(3)),
     brainstate.GradientError, 'never read'),
    (lambda w, u: T.grad(lambda x: w.value * x, w)(jnp.ones(3)),
     brainstate.GradientError, 'scalar'),
    (lambda w, u: T.grad(lambda x: jnp.sum(w.value * x), w, has_aux=True)(jnp.ones(3)),
     TypeError, 'pair'),
])
def test_errors_of_a_first_call_are_the_traced_calls(call, error, match):
    w = brainstate.ParamState(jnp.ones(3))
    u = brainstate.ParamState(jnp.ones(3))
    with pytest.raises(error, match=match):
        call(w, u)
    np.testing.assert_array_equal(w.value, np.ones(3))


def test_first_vmap_runs_directly_and_matches_jax_vmap():
    w = brainstate.ParamState(jnp.linspace(0.5, 1.5, 4))
    xs = jnp.linspace(-1., 1., 12).reshape(3, 4)
    y = jnp.arange(4.)
    out, direct, fallbacks, traces = _run(
        lambda: T.vmap(lambda x, y: jnp.tanh(w.value * x) + y, in_axes=(0, None))(xs, y))
    assert (direct, fallbacks, traces) == (1, 0, 0)
    np.testing.assert_allclose(out, jnp.tanh(w.value * xs) + y, rtol=1e-6)
    out, direct, fallbacks, _ = _run(
        lambda: T.vmap(lambda x: jax.lax.psum(x, 'i'), axis_name='i')(xs))
    assert (direct, fallbacks) == (1, 0)
    np.testing.assert_allclose(out, jnp.broadcast_to(xs.sum(0), xs.shape), rtol=1e-6)
    out, direct, _, _ = _run(lambda: T.vmap(lambda: w.value * 2., axis_size=3)())
    assert direct == 1 and out.shape == (3, 4)


def test_a_vmap_that_writes_states_goes_through_the_traced_run():
    acc = brainstate.ShortTermState(jnp.zeros(4))
    xs = jnp.ones((3, 4))

    def shared_write(x):
        acc.value = acc.value + 1.   # the same value in every lane: allowed
        return x * 2.

    out, direct, fallbacks, traces = _run(lambda: T.vmap(shared_write)(xs))
    assert (direct, fallbacks, traces) == (0, 1, 1)  # (traced, run op by op)
    np.testing.assert_allclose(out, xs * 2.)
    np.testing.assert_allclose(acc.value, np.ones(4))

    def per_lane_write(x):
        acc.value = acc.value + x    # differs per lane: the batching analysis refuses it
        return x

    with pytest.raises(brainstate.BatchAxisError, match='acc|State'):
        T.vmap(per_lane_write)(xs)
    np.testing.assert_allclose(acc.value, np.ones(4))

    # Random draws write the key: each lane still gets its own numbers.
    draws = T.vmap(lambda x: brainstate.random.normal(size=4) + 0. * x)(xs)
    assert not np.allclose(draws[0], draws[1])


def test_a_users_pipeline_is_never_bypassed():
    w = brainstate.ParamState(jnp.ones(3))
    x = jnp.arange(3.)
    plain = T.grad(lambda v: jnp.sum(w.value * v), w)
    plain(x)
    assert plain.last_program is None  # ran directly: nothing traced
    given = T.grad(lambda v: jnp.sum(w.value * v), w, passes=[])
    given(x)
    assert [r.name for r in given.last_program.pass_manager.records] == ['hoist-states']
    with brainstate.passes.default_pipeline('hoist-states,dce'):
        default = T.grad(lambda v: jnp.sum(w.value * v * 2.), w)
        np.testing.assert_allclose(default(x), 2. * x)
        assert [r.name for r in default.last_program.pass_manager.records] == \
            ['hoist-states', 'dce']


def test_the_second_call_of_a_key_traces_once_and_the_rest_reuse_it():
    w = brainstate.ParamState(jnp.ones(3))
    runs = collections.deque()  # (keyed by identity: appending does not change the key)

    def loss(x):
        runs.append(1)
        return jnp.sum(jnp.sin(w.value * x))

    x = jnp.arange(3.)
    expected = x * jnp.cos(w.value * x)
    results = [_run(lambda: T.grad(loss, w)(x)) for _ in range(4)]
    assert [r[1:] for r in results] == [(1, 0, 0), (0, 0, 1), (0, 0, 0), (0, 0, 0)]
    for r in results:
        np.testing.assert_allclose(r[0], expected, rtol=1e-6)
    assert len(runs) == 2
