"""grad evaluates its lowered jaxpr through shared inlined jits, and jit hands the lowered
jaxpr to jax.jit as one call (brainstate/ir/_eval.py). Both are speed-ups only: the results,
the jaxprs JAX sees after inlining and the state updates must be what they were."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.ir import _eval


def mlp_loss_pure(ws, x):
    for w in ws:
        x = jnp.tanh(x @ w + 0.5)
    return jnp.mean(x ** 2)


def test_shared_evaluation_equals_eval_jaxpr_under_grad():
    ws = [jnp.full((4, 4), 0.1 * (i + 1)) for i in range(5)]
    x = jnp.linspace(-1., 1., 8).reshape(2, 4)
    closed = jax.make_jaxpr(mlp_loss_pure)(ws, x)

    def plain(*leaves):
        return jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *leaves)[0]

    def shared(*leaves):
        return _eval.eval_jaxpr_shared(closed.jaxpr, closed.consts, *leaves)[0]

    argnums = tuple(range(5))
    expected = jax.grad(plain, argnums)(*ws, x)
    got = jax.grad(shared, argnums)(*ws, x)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    # Repeated operations were linearized once, not once per layer.
    from jax._src.interpreters import ad
    original, seen = ad.fallback_linearize_rule, []

    def spy(primitive, *args, **kwargs):
        seen.append(primitive.name)
        return original(primitive, *args, **kwargs)

    ad.fallback_linearize_rule = spy
    try:
        jax.make_jaxpr(jax.grad(shared, argnums))(*ws, x)
        shared_count = len(seen)
        seen.clear()
        jax.make_jaxpr(jax.grad(plain, argnums))(*ws, x)
    finally:
        ad.fallback_linearize_rule = original
    assert seen.count('tanh') == 5 and shared_count < len(seen) / 2
    # The jits are inlined: the differentiated jaxpr holds no call equations.
    names = {e.primitive.name for e in jax.make_jaxpr(jax.grad(shared, argnums))(*ws, x).eqns}
    assert 'jit' not in names and 'pjit' not in names


def test_grad_through_regions_effects_and_literals_matches_pure_jax():
    w = brainstate.ParamState(jnp.array([0.3, -0.7, 1.1]))
    log = []

    def loss(x):
        wv = w.value

        def body(carry, xi):
            return carry * jnp.sin(wv) + xi, None
        h, _ = jax.lax.scan(body, x, jnp.ones((3, 3)))  # a nested jaxpr: bound directly
        jax.debug.callback(lambda v: log.append(float(v)), h.sum())  # an effect
        return jnp.sum(jnp.where(h > 0, h, 2. * h)) + 3.

    def pure(wv, x):
        def body(carry, xi):
            return carry * jnp.sin(wv) + xi, None
        h, _ = jax.lax.scan(body, x, jnp.ones((3, 3)))
        return jnp.sum(jnp.where(h > 0, h, 2. * h)) + 3.

    x = jnp.array([1., -2., 0.5])
    got = brainstate.transform.jit(brainstate.transform.grad(loss, w))(x)
    np.testing.assert_allclose(got, jax.grad(pure)(w.value, x), rtol=1e-6)
    assert log  # the callback ran


def test_jit_of_a_grad_step_matches_pure_jax_and_updates_states():
    ws = [brainstate.ParamState(jnp.full((4, 4), 0.1 * (i + 1))) for i in range(3)]
    x = jnp.linspace(-1., 1., 8).reshape(2, 4)

    def loss(x):
        return mlp_loss_pure([w.value for w in ws], x)

    @brainstate.transform.jit
    def step(x):
        grads = brainstate.transform.grad(loss, ws)(x)
        for w, g in zip(ws, grads):
            w.value = w.value - 0.1 * g
        return loss(x)

    values = [w.value for w in ws]

    @jax.jit
    def raw(values, x):
        grads = jax.grad(mlp_loss_pure)(values, x)
        values = [v - 0.1 * g for v, g in zip(values, grads)]
        return values, mlp_loss_pure(values, x)

    for _ in range(3):
        out = step(x)
        values, expected = raw(values, x)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    for w, v in zip(ws, values):
        np.testing.assert_allclose(w.value, v, rtol=1e-6)
    # The whole program reached XLA: its StableHLO holds the dots and tanhs.
    text = step.lower(x).as_text()
    assert 'dot_general' in text and 'tanh' in text


def test_jit_falls_back_to_evaluation_when_the_call_route_is_unavailable(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('JAX internals moved')

    monkeypatch.setattr(_eval, '_BIND_CALL', broken)
    state = brainstate.ShortTermState(jnp.zeros(3))

    @brainstate.transform.jit
    def step(x):
        state.value = state.value + jnp.tanh(x)
        return state.value.sum()

    out = step(jnp.ones(3))
    np.testing.assert_allclose(out, 3 * np.tanh(1.), rtol=1e-6)
    np.testing.assert_allclose(state.value, np.tanh(1.), rtol=1e-6)
    assert _eval._BIND_CALL is None  # switched to evaluation for good (this process)
