"""Transforms composed with each other, each case checked against the same math in pure JAX.

Every test writes one computation twice: with States under nested brainstate transforms
(``jit``, ``grad``, ``vmap``, ``for_loop``, ``cond``, ``switch``, ``while_loop``,
``checkpoint``, random numbers), and as a pure function under ``jax.jit`` / ``jax.grad`` /
``jax.vmap`` / ``lax.scan`` / ``lax.cond``. The results *and* the States' final values must
agree to 1e-5. Most cases run both inside ``jit`` and eagerly, and call the composition twice,
so that the second call starts from the states the first one wrote.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import brainstate
import brainstate.random as br
from brainstate import transform as T

TOL = dict(rtol=1e-5, atol=1e-5)

use_jit_param = pytest.mark.parametrize('use_jit', [True, False], ids=['jit', 'eager'])


def close(actual, expected):
    """Same pytree structure, same shapes, values equal to 1e-5."""
    a_leaves, a_tree = jax.tree.flatten(actual)
    e_leaves, e_tree = jax.tree.flatten(expected)
    assert a_tree == e_tree, f'{a_tree} != {e_tree}'
    for a, e in zip(a_leaves, e_leaves):
        assert np.shape(a) == np.shape(e), f'{np.shape(a)} != {np.shape(e)}'
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), **TOL)


def keys_equal(a, b) -> bool:
    return np.array_equal(jax.random.key_data(a), jax.random.key_data(b))


def maybe_jit(f, use_jit):
    """``jit(f)``, or ``f`` itself (a transform object, built once so that eager calls reuse its
    cached program)."""
    return T.jit(f) if use_jit else f


def rnd(seed, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(seed), shape)


N = 3


# -- grad of a loop, inside jit and eagerly --------------------------------------------------

LOOPS = {
    'for_loop': lambda step, xs: T.for_loop(step, xs),
    'checkpointed_for_loop': lambda step, xs: T.checkpointed_for_loop(step, xs, base=2),
    'checkpoint_body': lambda step, xs: T.for_loop(T.checkpoint(step), xs),
    'scan': lambda step, xs: T.scan(lambda c, x: (c + 1, step(x)), jnp.zeros((), jnp.int32),
                                    xs)[1],
    'jit_body': lambda step, xs: T.for_loop(T.jit(step), xs),
}


def _pure_rnn(w, h0, xs):
    def body(h, x):
        h = jnp.tanh(w @ h + x)
        return h, h

    h_final, hs = lax.scan(body, h0, xs)
    return jnp.sum(hs ** 2), h_final


# ((loss, final h), dloss/dw); jitted once at module level so parametrized cases share it
_rnn_value_and_grad = jax.jit(jax.value_and_grad(_pure_rnn, has_aux=True))


@use_jit_param
@pytest.mark.parametrize('loop', list(LOOPS))
def test_grad_of_loop(use_jit, loop):
    """jit(grad(f)) and grad(f) where f runs a loop over a hidden state; 5 steps."""
    w0, h0, xs = rnd(0, (N, N), 0.5), rnd(1, (N,), 0.1), rnd(2, (5, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)

    def step(x):
        h.value = jnp.tanh(W.value @ h.value + x)
        return h.value

    def loss(xs):
        return jnp.sum(LOOPS[loop](step, xs) ** 2)

    f = maybe_jit(T.grad(loss, W, return_value=True), use_jit)
    ref = _rnn_value_and_grad
    h_start = h0
    for _ in range(2):   # the second call starts from the hidden state the first one wrote
        g, value = f(xs)
        (e_value, e_h), e_g = ref(w0, h_start, xs)
        close(g, e_g)
        close(value, e_value)
        close(h.value, e_h)
        close(W.value, w0)   # grad never writes the differentiated state
        h_start = e_h


@jax.jit
def _grad_of_grad_ref(w, xs):
    g = jax.grad(lambda w: jax.grad(lambda xs: _pure_rnn(w, jnp.zeros(N), xs)[0])(xs).sum())(w)
    return g, _pure_rnn(w, jnp.zeros(N), xs)[1]


@use_jit_param
def test_grad_of_grad_through_for_loop(use_jit):
    """Second order: grad of (sum of the input gradient) of a for_loop."""
    w0, xs = rnd(3, (N, N), 0.5), rnd(4, (4, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(jnp.zeros(N))

    def loss(xs):
        h.value = jnp.zeros(N)

        def step(x):
            h.value = jnp.tanh(W.value @ h.value + x)
            return h.value
        return jnp.sum(T.for_loop(step, xs) ** 2)

    f = maybe_jit(T.grad(lambda xs: T.grad(loss)(xs).sum(), W), use_jit)
    e, e_h = _grad_of_grad_ref(w0, xs)
    close(f(xs), e)
    close(h.value, e_h)


def test_jit_inside_grad_inside_jit():
    """jit(grad(jit(f))) where f has a for_loop; the inner jit's state writes reach the outer."""
    w0, xs = rnd(5, (N, N), 0.5), rnd(6, (3, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(jnp.zeros(N))

    @T.jit
    def loss(xs):
        def step(x):
            h.value = jnp.tanh(W.value @ h.value + x)
            return h.value
        return jnp.sum(T.for_loop(step, xs) ** 2)

    f = T.jit(lambda xs: T.grad(loss, W)(xs))
    h_start = jnp.zeros(N)
    for _ in range(2):
        (_, e_h), e_g = _rnn_value_and_grad(w0, h_start, xs)
        close(f(xs), e_g)
        close(h.value, e_h)
        h_start = e_h


def test_jit_of_jit_of_for_loop():
    """jit(jit(f)): the outer compiles the inner's trace; both keep the updates and caches."""
    w0, h0, xs = rnd(55, (N, N), 0.5), rnd(56, (N,)), rnd(57, (3, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)

    def run(xs):
        def step(x):
            h.value = jnp.tanh(W.value @ h.value + x)
            return h.value
        return jnp.sum(T.for_loop(step, xs) ** 2)

    inner = T.jit(run)
    outer = T.jit(inner)
    h_start = h0
    for f in (outer, inner, outer):
        e_value, e_h = _pure_rnn(w0, h_start, xs)
        close(f(xs), e_value)
        close(h.value, e_h)
        h_start = e_h


# -- cond / switch inside for_loop inside grad ------------------------------------------------

def _pure_cond_loop(w, xs, h, c):
    def body(carry, x):
        h, c = carry
        return lax.cond(x.sum() > 0,
                        lambda: ((jnp.tanh(w @ h + x), c + 1), jnp.tanh(w @ h + x).sum()),
                        lambda: ((0.5 * h - x * w[0], c), -((0.5 * h - x * w[0]) ** 2).sum()))
    (h, c), ys = lax.scan(body, (h, c), xs)
    return jnp.sum(ys ** 2), (h, c)


_cond_loop_ref = jax.jit(jax.grad(_pure_cond_loop, argnums=(0, 1), has_aux=True))


@use_jit_param
def test_grad_of_cond_inside_for_loop(use_jit):
    """grad wrt a State and an argument of a loop whose body branches and counts one branch."""
    w0, h0 = rnd(7, (N, N), 0.5), rnd(8, (N,), 0.1)
    signs = jnp.array([1., -1., 1., 1., -1., -1.])
    xs = rnd(9, (6, N), 0.1) + 2. * signs[:, None]
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)
    count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    def pos(x):
        h.value = jnp.tanh(W.value @ h.value + x)
        count.value = count.value + 1
        return h.value.sum()

    def neg(x):
        h.value = 0.5 * h.value - x * W.value[0]
        return -(h.value ** 2).sum()

    def loss(xs):
        return jnp.sum(T.for_loop(lambda x: T.cond(x.sum() > 0, pos, neg, x), xs) ** 2)

    f = maybe_jit(T.grad(loss, W, argnums=0), use_jit)

    ref = _cond_loop_ref
    h_start, c_start = h0, jnp.zeros((), jnp.int32)
    for _ in range(2):
        (gw, gx) = f(xs)
        (e_gw, e_gx), (e_h, e_c) = ref(w0, xs, h_start, c_start)
        close(gw, e_gw)
        close(gx, e_gx)
        close(h.value, e_h)
        assert int(count.value) == int(e_c)
        h_start, c_start = e_h, e_c
    assert int(count.value) == 2 * 3   # both branches were taken, three times each per call


def _pure_switch_loop(w, h, m, xs):
    branches = [lambda h, m, x: ((h + x * w, m), (h + x * w).sum()),
                lambda h, m, x: ((jnp.sin(h * w), m), (jnp.sin(h * w) ** 2).sum()),
                lambda h, m, x: ((h, m + 1.), jnp.sum(x) * w.sum())]

    def body(carry, ix):
        i, x = ix
        return lax.switch(i - 1, branches, *carry, x)
    carry, ys = lax.scan(body, (h, m), (jnp.arange(6), xs))
    return jnp.sum(ys ** 2), carry


_switch_loop_ref = jax.jit(jax.value_and_grad(_pure_switch_loop, has_aux=True))


@use_jit_param
def test_switch_inside_for_loop_inside_grad(use_jit):
    """Three branches, one not writing the hidden state; the index is clamped like lax.switch."""
    w0, h0, xs = rnd(10, (N,)), rnd(11, (N,), 0.5), rnd(12, (6, N), 0.5)
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)
    mode = brainstate.ShortTermState(jnp.zeros(()))

    def b0(x):
        h.value = h.value + x * W.value
        return h.value.sum()

    def b1(x):
        h.value = jnp.sin(h.value * W.value)
        return (h.value ** 2).sum()

    def b2(x):
        mode.value = mode.value + 1.
        return jnp.sum(x) * W.value.sum()

    def loss(xs):
        def step(i, x):
            return T.switch(i - 1, [b0, b1, b2], x)   # indices -1..4: clamped to 0..2
        return jnp.sum(T.for_loop(step, jnp.arange(6), xs) ** 2)

    f = maybe_jit(T.grad(loss, W, return_value=True), use_jit)

    (e_value, (e_h, e_m)), e_g = _switch_loop_ref(w0, h0, 0., xs)
    g, value = f(xs)
    close(g, e_g)
    close(value, e_value)
    close(h.value, e_h)
    close(mode.value, e_m)
    assert float(mode.value) == 3.   # indices 2, 3 and 4 run branch 2 (3, 4 clamped)


# -- grad inside for_loop (an optimization step per iteration) -------------------------------

def _pure_sq_loss(w, x, y):
    return (jnp.dot(w, x) - y) ** 2


@jax.jit
def _sgd_loop_ref(w, xs, ys, lr):
    def body(w, xy):
        w = w - lr * jax.grad(_pure_sq_loss)(w, *xy)
        return w, _pure_sq_loss(w, *xy)
    return lax.scan(body, w, (xs, ys))


@use_jit_param
def test_for_loop_whose_body_takes_a_grad_step(use_jit):
    w0 = rnd(13, (N,))
    xs, ys = rnd(14, (5, N)), rnd(15, (5,))
    W = brainstate.ParamState(w0)
    lr = 0.1

    def loss(x, y):
        return (jnp.dot(W.value, x) - y) ** 2

    def step(x, y):
        g = T.grad(loss, W)(x, y)
        W.value = W.value - lr * g
        return loss(x, y)

    f = maybe_jit(lambda xs, ys: T.for_loop(step, xs, ys), use_jit)

    w_start = w0
    for _ in range(2):
        e_w, e_losses = _sgd_loop_ref(w_start, xs, ys, lr)
        close(f(xs, ys), e_losses)
        close(W.value, e_w)
        w_start = e_w


def _pure_mse_with_pred(w, x, y):
    pred = x @ w
    return jnp.mean((pred - y) ** 2), pred


@jax.jit
def _aux_loop_ref(w, xs, ys, lr):
    def body(w, xy):
        (value, pred), g = jax.value_and_grad(_pure_mse_with_pred, has_aux=True)(w, *xy)
        return w - lr * g, (value, pred)
    return lax.scan(body, w, (xs, ys))


@use_jit_param
def test_value_and_grad_with_aux_inside_for_loop(use_jit):
    """value_and_grad(has_aux=True) per step of a for_loop; aux and a counter come out."""
    w0 = rnd(16, (N, 2), 0.5)
    xs, ys = rnd(17, (4, 5, N)), rnd(18, (4, 5, 2))
    W = brainstate.ParamState(w0)
    seen = brainstate.ShortTermState(jnp.zeros((), jnp.int32))
    lr = 0.05

    def loss(x, y):
        seen.value = seen.value + 1
        pred = x @ W.value
        return jnp.mean((pred - y) ** 2), pred

    def step(x, y):
        (value, pred), g = T.value_and_grad(loss, W, has_aux=True)(x, y)
        W.value = W.value - lr * g
        return value, pred

    f = maybe_jit(lambda xs, ys: T.for_loop(step, xs, ys), use_jit)

    e_w, (e_values, e_preds) = _aux_loop_ref(w0, xs, ys, lr)
    values, preds = f(xs, ys)
    close(values, e_values)
    close(preds, e_preds)
    close(W.value, e_w)
    assert int(seen.value) == 4   # once per step: the write inside grad is kept, not doubled


# -- checkpoint under grad --------------------------------------------------------------------

_pure_block = jax.checkpoint(lambda w, x: jnp.sin(x @ w))
_checkpoint_ref = jax.jit(jax.value_and_grad(
    lambda w, x: jnp.sum(_pure_block(w, _pure_block(w, x)) ** 2), argnums=(0, 1)))


@use_jit_param
def test_grad_of_checkpoint(use_jit):
    w0, x0 = rnd(19, (N, N), 0.7), rnd(20, (2, N))
    W = brainstate.ParamState(w0)
    calls = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    @T.checkpoint
    def block(x):
        calls.value = calls.value + 1
        return jnp.sin(x @ W.value)

    def loss(x):
        return jnp.sum(block(block(x)) ** 2)

    f = maybe_jit(T.grad(loss, W, argnums=0, return_value=True), use_jit)
    e_value, e_g = _checkpoint_ref(w0, x0)
    (gw, gx), value = f(x0)
    close((gw, gx), e_g)
    close(value, e_value)
    assert int(calls.value) == 2   # recomputation in the backward pass does not count twice
    f(x0)
    assert int(calls.value) == 4


# -- vmap and grad ------------------------------------------------------------------------------

_per_example_ref = jax.jit(jax.vmap(
    jax.grad(lambda p, x, y: jnp.sum((jnp.tanh(x @ p['w'] + p['b']) - y) ** 2)),
    in_axes=(None, 0, 0)))


@use_jit_param
def test_vmap_of_grad_per_example_gradients(use_jit):
    """Per-example gradients: vmap(grad) with a shared parameter and a shared call counter."""
    B = 4
    w0, b0 = rnd(21, (N, 2)), rnd(22, (2,))
    xs, ys = rnd(23, (B, N)), rnd(24, (B, 2))
    params = {'w': brainstate.ParamState(w0), 'b': brainstate.ParamState(b0)}
    calls = brainstate.ShortTermState(jnp.zeros(()))

    def loss(x, y):
        calls.value = calls.value + 1.   # the same in every lane: a shared write is allowed
        return jnp.sum((jnp.tanh(x @ params['w'].value + params['b'].value) - y) ** 2)

    f = maybe_jit(T.vmap(T.grad(loss, params)), use_jit)

    e = _per_example_ref({'w': w0, 'b': b0}, xs, ys)
    g = f(xs, ys)
    close(g, e)
    assert g['w'].shape == (B, N, 2)
    assert float(calls.value) == 1.   # once per vmap call
    close(params['w'].value, w0)


def _pure_batch_rnn(w, h0, xs):
    values, hs = jax.vmap(_pure_rnn, in_axes=(None, 0, 0))(w, h0, xs)
    return values.mean(), hs


_batch_rnn_grad_ref = jax.jit(jax.grad(_pure_batch_rnn, has_aux=True))


@use_jit_param
def test_grad_of_vmap_of_for_loop(use_jit):
    """grad of a batch loss computed by vmap over a for_loop with per-lane hidden states."""
    B, steps = 3, 4
    w0, h0, xs = rnd(25, (N, N), 0.5), rnd(26, (B, N), 0.1), rnd(27, (B, steps, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)

    def trial(xs):
        def step(x):
            h.value = jnp.tanh(W.value @ h.value + x)
            return h.value
        return jnp.sum(T.for_loop(step, xs) ** 2)

    def loss(xs):
        return T.vmap(trial, in_states=h)(xs).mean()

    f = maybe_jit(T.grad(loss, W), use_jit)

    e_g, e_h = _batch_rnn_grad_ref(w0, h0, xs)
    close(f(xs), e_g)
    close(h.value, e_h)


# -- vmap of loops, batched hidden states ----------------------------------------------------

def _pure_lane_rnn(w, h, xs):
    def body(h, x):
        h = jnp.tanh(h @ w + x)
        return h, h
    return lax.scan(body, h, xs)


# per lane: (final h, h at each step); the weights are shared
_lanes_rnn_ref = jax.jit(jax.vmap(_pure_lane_rnn, in_axes=(None, 0, 0)))


@pytest.mark.parametrize('declare', ['state', 'filter', 'inner_jit'])
@use_jit_param
def test_vmap_of_for_loop_with_batched_hidden_state(use_jit, declare):
    B, steps = 3, 4
    w0, h0, xs = rnd(28, (N, N), 0.5), rnd(29, (B, N)), rnd(30, (B, steps, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)
    total = brainstate.ShortTermState(jnp.zeros(()))

    def trial(xs):
        def step(x):
            h.value = jnp.tanh(h.value @ W.value + x)
            return h.value.sum()
        return T.for_loop(step, xs)

    def run(xs):
        total.value = total.value + 1.   # outside the vmap: a shared write
        if declare == 'state':
            return T.vmap(trial, in_states=h)(xs)
        if declare == 'filter':
            return T.vmap(trial, in_states=brainstate.HiddenState)(xs)
        return T.vmap(T.jit(trial), in_states=h)(xs)

    f = maybe_jit(run, use_jit)

    h_start = h0
    for _ in range(2):
        e_h, e_hs = _lanes_rnn_ref(w0, h_start, xs)
        close(f(xs), e_hs.sum(-1))
        close(h.value, e_h)
        close(W.value, w0)
        h_start = e_h
    assert float(total.value) == 2.


def _pure_lane_cond(w, h, x):
    return lax.cond(x.sum() > 0,
                    lambda: (h + x * w, (h + x * w).sum()),
                    lambda: (h - 1., -x.sum() * w.sum()))


_vmap_cond_ref = jax.jit(jax.vmap(_pure_lane_cond, in_axes=(None, 0, 0)))


@use_jit_param
def test_vmap_of_cond(use_jit):
    """Per-lane predicate: each lane takes its own branch, writing its slice of the state."""
    B = 4
    w0 = rnd(31, (N,))
    h0 = rnd(32, (B, N))
    xs = rnd(33, (B, N), 0.1) + jnp.array([1., -1., -1., 1.])[:, None]
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)

    def pos(x):
        h.value = h.value + x * W.value
        return h.value.sum()

    def neg(x):
        h.value = h.value - 1.
        return -x.sum() * W.value.sum()

    f = maybe_jit(T.vmap(lambda x: T.cond(x.sum() > 0, pos, neg, x), in_states=h),
                  use_jit)

    e_h, e_out = _vmap_cond_ref(w0, h0, xs)
    close(f(xs), e_out)
    close(h.value, e_h)
    assert len({float(v) for v in (h.value - h0)[:, 0]}) > 1   # lanes took different branches


@use_jit_param
def test_vmap_of_cond_on_a_shared_predicate(use_jit):
    """The predicate is read from a shared state: every lane takes the same branch."""
    B = 3
    h0, xs = rnd(34, (B, N)), rnd(35, (B, N))
    h = brainstate.HiddenState(h0)
    flag = brainstate.ShortTermState(jnp.array(True))

    def lane(x):
        def yes(x):
            h.value = h.value * 2. + x
            return h.value
        return T.cond(flag.value, yes, lambda x: x - h.value, x)

    f = maybe_jit(T.vmap(lane, in_states=h), use_jit)
    close(f(xs), h0 * 2. + xs)
    close(h.value, h0 * 2. + xs)
    flag.value = jnp.array(False)
    close(f(xs), xs - (h0 * 2. + xs))
    close(h.value, h0 * 2. + xs)


# -- while loops and nested loops -------------------------------------------------------------

@jax.jit
def _while_ref(x, total, count, limit):
    def step(c):
        x, t, n = c
        return x * 1.5, t + x, n + 1
    return lax.while_loop(lambda c: c[1] < limit, step, (x, total, count))


@use_jit_param
def test_while_loop_with_states(use_jit):
    """The body writes two states; the condition reads a state changed between calls."""
    count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))
    total = brainstate.ShortTermState(jnp.zeros(()))
    limit = brainstate.LongTermState(jnp.array(10.))

    def body(x):
        total.value = total.value + x
        count.value = count.value + 1
        return x * 1.5

    f = maybe_jit(lambda x0: T.while_loop(lambda x: total.value < limit.value, body, x0), use_jit)

    pure = _while_ref
    e_x, e_t, e_n = pure(jnp.array(1.), 0., 0, 10.)
    close(f(jnp.array(1.)), e_x)
    close(total.value, e_t)
    assert int(count.value) == int(e_n) > 1
    limit.value = jnp.array(40.)   # read afresh on the next call, not baked in
    e_x, e_t, e_n = pure(jnp.array(2.), e_t, e_n, 40.)
    close(f(jnp.array(2.)), e_x)
    close(total.value, e_t)
    assert int(count.value) == int(e_n)


def _pure_bounded(w, x0):
    def step(c, _):
        x, n = c
        return lax.cond(x < 5., lambda: (x * w, n + 1), lambda: (x, n)), None
    (x, n), _ = lax.scan(step, (x0, 0), None, length=20)
    return x, n


_bounded_ref = jax.jit(jax.grad(_pure_bounded, argnums=(0, 1), has_aux=True))


@jax.jit
def _while_jacfwd_ref(w, x0):
    def run(w, x0):
        def step(c):
            x, n = c
            return jnp.tanh(w @ x) + 1., n + 1
        return lax.while_loop(lambda c: c[1] < 3, step, (x0, 0))[0]
    return jax.jacfwd(run, argnums=(0, 1))(w, x0), run(w, x0)


@use_jit_param
def test_jacfwd_of_while_loop(use_jit):
    """Forward mode through a while_loop (reverse mode is not supported there) that counts."""
    w0, x0 = rnd(44, (N, N), 0.5), rnd(45, (N,))
    W = brainstate.ParamState(w0)
    n = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    def run(x0):
        n.value = jnp.zeros((), jnp.int32)

        def body(x):
            n.value = n.value + 1
            return jnp.tanh(W.value @ x) + 1.
        return T.while_loop(lambda x: n.value < 3, body, x0)

    f = maybe_jit(T.jacfwd(run, W, argnums=0, return_value=True), use_jit)
    (e_jw, e_jx), e_out = _while_jacfwd_ref(w0, x0)
    (jw, jx), out = f(x0)
    close((jw, jx), (e_jw, e_jx))
    close(out, e_out)
    assert int(n.value) == 3


@jax.jit
def _rnn_jvp_ref(w, h0, xs, tw, txs):
    return jax.jvp(lambda w, xs: _pure_rnn(w, h0, xs), (w, xs), (tw, txs))


def test_jvp_of_for_loop_inside_jit():
    w0, h0, xs = rnd(46, (N, N), 0.5), rnd(47, (N,)), rnd(48, (4, N))
    tw, txs = rnd(49, (N, N)), rnd(50, (4, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)

    def loss(xs):
        def step(x):
            h.value = jnp.tanh(W.value @ h.value + x)
            return h.value
        return jnp.sum(T.for_loop(step, xs) ** 2)

    f = T.jit(lambda xs, txs: T.jvp(loss, (xs,), (txs,), grad_states=W, state_tangents=tw))
    (e_out, e_h), (e_tout, _) = _rnn_jvp_ref(w0, h0, xs, tw, txs)
    out, tout = f(xs, txs)
    close(out, e_out)
    close(tout, e_tout)
    close(h.value, e_h)


@pytest.mark.parametrize('batch_size', [None, 2])
def test_jit_of_map_of_grad(batch_size):
    """map(grad) one example at a time or in vmapped blocks (5 examples, blocks of 2 + 1)."""
    w0, b0 = rnd(51, (N, 2)), rnd(52, (2,))
    xs, ys = rnd(53, (5, N)), rnd(54, (5, 2))
    params = {'w': brainstate.ParamState(w0), 'b': brainstate.ParamState(b0)}

    def loss(x, y):
        return jnp.sum((jnp.tanh(x @ params['w'].value + params['b'].value) - y) ** 2)

    f = T.jit(lambda xs, ys: T.map(T.grad(loss, params), xs, ys, batch_size=batch_size))
    close(f(xs, ys), _per_example_ref({'w': w0, 'b': b0}, xs, ys))


@use_jit_param
def test_grad_of_bounded_while_loop(use_jit):
    w = brainstate.ParamState(jnp.array(1.3))
    steps = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    def body(x):
        steps.value = steps.value + 1
        return x * w.value

    def loss(x0):
        return T.bounded_while_loop(lambda x: x < 5., body, x0, max_steps=20)

    f = maybe_jit(T.grad(loss, w, argnums=0), use_jit)

    e_g, e_n = _bounded_ref(1.3, 1.)
    close(f(jnp.array(1.)), e_g)
    assert int(steps.value) == int(e_n) == 7


def _pure_nested(w, h, acc, xss):
    def inner(h, x):
        h = jnp.tanh(w @ h + x)
        return h, h

    def outer(c, xs):
        h, acc = c
        h, hs = lax.scan(inner, h, xs)
        return (h * 0.5, acc + hs.sum()), hs[-1]

    c, ys = lax.scan(outer, (h, acc), xss)
    return jnp.sum(ys ** 2), c


_nested_ref = jax.jit(jax.grad(_pure_nested, has_aux=True))


@use_jit_param
def test_nested_for_loops_inside_grad(use_jit):
    """for_loop of for_loop: the inner loop carries h, the outer one accumulates and decays."""
    outer_n, inner_n = 3, 2
    w0, xss = rnd(36, (N, N), 0.5), rnd(37, (outer_n, inner_n, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(jnp.zeros(N))
    acc = brainstate.ShortTermState(jnp.zeros(()))

    def inner(x):
        h.value = jnp.tanh(W.value @ h.value + x)
        return h.value

    def outer(xs):
        hs = T.for_loop(inner, xs)
        acc.value = acc.value + hs.sum()
        h.value = h.value * 0.5
        return hs[-1]

    def loss(xss):
        return jnp.sum(T.for_loop(outer, xss) ** 2)

    f = maybe_jit(T.grad(loss, W), use_jit)

    e_g, (e_h, e_acc) = _nested_ref(w0, jnp.zeros(N), 0., xss)
    close(f(xss), e_g)
    close(h.value, e_h)
    close(acc.value, e_acc)


# -- random numbers ---------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_lanes_ref(key, lanes, steps):
    """vmap's documented scheme: split the key into lanes + 1; lane i draws from key i + 1 (a
    split per draw, as RandomState does) and key 0 becomes the state's next key."""
    keys = jax.random.split(key, lanes + 1)

    def lane(k):
        def body(k, _):
            k, sub = jax.random.split(k)
            return k, jax.random.normal(sub, (2,))
        return lax.scan(body, k, None, length=steps)[1]
    return keys[0], jax.vmap(lane)(keys[1:])


@pytest.mark.parametrize('which', ['own', 'default'])
@use_jit_param
def test_random_in_for_loop_in_vmap(use_jit, which):
    """Each lane draws its own numbers in a loop; the key advances once per call."""
    B, steps = 3, 4
    if which == 'own':
        rng = br.RandomState(0)
    else:
        br.seed(0)
        rng = br.DEFAULT
    acc = brainstate.HiddenState(jnp.zeros((B, 2)))

    def trial():
        def step(i):
            z = rng.normal(size=2) if which == 'own' else br.normal(size=2)
            acc.value = acc.value + z
            return z
        return T.for_loop(step, jnp.arange(steps))

    f = maybe_jit(T.vmap(trial, in_states=acc), use_jit)

    acc_expected = jnp.zeros((B, 2))
    outs = []
    for _ in range(2):
        next_key, expected = _random_lanes_ref(rng.value, B, steps)
        out = f()
        close(out, expected)
        acc_expected = acc_expected + expected.sum(axis=1)
        close(acc.value, acc_expected)
        assert keys_equal(rng.value, next_key)   # advanced exactly once per call
        assert len({tuple(np.asarray(lane[0])) for lane in out}) == B   # lanes differ
        outs.append(out)
    assert not np.allclose(outs[0], outs[1])   # the next call draws new numbers
    rng.seed(0)
    close(f(), outs[0])                        # reseeding reproduces the run


# -- retracing after a composition ------------------------------------------------------------

def test_jit_of_grad_of_for_loop_retraces_for_new_shapes():
    w0 = rnd(38, (N, N), 0.5)
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(jnp.zeros(N))

    def loss(xs):
        h.value = jnp.zeros(N)

        def step(x):
            h.value = jnp.tanh(W.value @ h.value + x)
            return h.value
        return jnp.sum(T.for_loop(step, xs) ** 2)

    f = T.jit(lambda xs: T.grad(loss, W)(xs))
    for steps in (3, 5, 3):
        xs = rnd(steps, (steps, N))
        (_, e_h), e_g = _rnn_value_and_grad(w0, jnp.zeros(N), xs)
        close(f(xs), e_g)
        close(h.value, e_h)


def test_jit_of_vmap_of_for_loop_retraces_when_the_state_batch_changes():
    W = brainstate.ParamState(rnd(39, (N, N), 0.5))
    h = brainstate.HiddenState(jnp.zeros((2, N)))

    def trial(xs):
        def step(x):
            h.value = jnp.tanh(h.value @ W.value + x)
            return h.value
        return T.for_loop(step, xs)

    f = T.jit(lambda xs: T.vmap(trial, in_states=h)(xs))

    for batch, steps in ((2, 3), (5, 4), (2, 3)):
        h0 = rnd(40 + batch, (batch, N))
        h.value = h0   # a new batch size: the state's shape changes between calls
        xs = rnd(50 + steps, (batch, steps, N))
        e_h, e_ys = _lanes_rnn_ref(W.value, h0, xs)
        close(f(xs), e_ys)
        close(h.value, e_h)


# -- shapes without running ---------------------------------------------------------------------

def _pure_lanes_loss(w, h, xs):
    h, hs = jax.vmap(_pure_lane_rnn, in_axes=(None, 0, 0))(w, h, xs)
    return hs.sum(), h


_lanes_loss_ref = jax.jit(jax.value_and_grad(_pure_lanes_loss, has_aux=True))


def test_eval_shape_of_a_composition_changes_no_state():
    w0, h0 = rnd(41, (N, N), 0.5), rnd(43, (4, N))
    W, h = brainstate.ParamState(w0), brainstate.HiddenState(h0)
    before = np.asarray(h.value)

    def run(xs):
        def trial(xs):
            def step(x):
                h.value = jnp.tanh(h.value @ W.value + x)
                return h.value.sum()
            return T.for_loop(step, xs)
        return T.grad(lambda xs: T.vmap(trial, in_states=h)(xs).sum(), W, return_value=True)(xs)

    written, (g, value) = T.eval_shape(run, jax.ShapeDtypeStruct((4, 5, N), jnp.float32),
                                       return_state_shapes=True)
    assert g.shape == (N, N) and value.shape == ()
    assert written[h].shape == (4, N)
    np.testing.assert_array_equal(np.asarray(h.value), before)
    xs = rnd(42, (4, 5, N))
    (e_value, e_h), e_g = _lanes_loss_ref(w0, h0, xs)   # and the same composition runs
    close(T.jit(run)(xs), (e_g, e_value))
    close(h.value, e_h)
