"""brainstate.optim: stateful optimizers on optax, checked against optax on pure JAX."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import brainstate
from brainstate import nn, optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(5, 8)
        self.l2 = nn.Linear(8, 2)
        self.steps = brainstate.ShortTermState(jnp.array(0))

    def update(self, x):
        self.steps.value = self.steps.value + 1
        return self.l2(jnp.tanh(self.l1(x)))


def _pure(params, x):
    p1, p2 = params
    return jnp.tanh(x @ p1['weight'] + p1['bias']) @ p2['weight'] + p2['bias']


def _loss(out, y):
    return jnp.mean((out - y) ** 2)


@pytest.mark.parametrize('make, make_tx', [
    (lambda: optim.SGD(0.1), lambda: optax.sgd(0.1)),
    (lambda: optim.SGD(0.1, weight_decay=0.01),
     lambda: optax.chain(optax.add_decayed_weights(0.01), optax.sgd(0.1))),
    (lambda: optim.Momentum(0.05, momentum=0.9, nesterov=True),
     lambda: optax.sgd(0.05, momentum=0.9, nesterov=True)),
    (lambda: optim.Adam(lr=1e-2), lambda: optax.adam(1e-2)),
    (lambda: optim.AdamW(lr=1e-2, weight_decay=0.1), lambda: optax.adamw(1e-2, weight_decay=0.1)),
    (lambda: optim.OptaxOptimizer(optax.chain(optax.clip_by_global_norm(0.5), optax.rmsprop(1e-2))),
     lambda: optax.chain(optax.clip_by_global_norm(0.5), optax.rmsprop(1e-2))),
])
def test_trajectory_matches_optax(make, make_tx):
    brainstate.random.seed(0)
    net = Net()
    params = net.states(brainstate.ParamState)
    opt = make()
    opt.register_trainable_weights(params)

    def loss_fn(x, y):
        return _loss(net(x), y)

    @brainstate.transform.jit
    def train_step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        opt.update(grads)
        return loss_fn(x, y)

    tx = make_tx()
    pure_params = [jax.tree.map(jnp.copy, s.value) for s in params.values()]
    opt_state = tx.init(pure_params)

    @jax.jit
    def pure_step(ps, opt_state, x, y):
        grads = jax.grad(lambda ps: _loss(_pure(ps, x), y))(ps)
        updates, opt_state = tx.update(grads, opt_state, ps)
        ps = optax.apply_updates(ps, updates)
        return ps, opt_state, _loss(_pure(ps, x), y)

    rng = np.random.RandomState(0)
    for _ in range(8):
        x = jnp.asarray(rng.randn(16, 5), jnp.float32)
        y = jnp.asarray(rng.randn(16, 2), jnp.float32)
        loss = train_step(x, y)
        pure_params, opt_state, pure_loss = pure_step(pure_params, opt_state, x, y)
        np.testing.assert_allclose(loss, pure_loss, rtol=1e-5, atol=1e-6)
    for state, p in zip(params.values(), pure_params):
        for a, b in zip(jax.tree.leaves(state.value), jax.tree.leaves(p)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(net.steps.value) == 16   # one forward in grad, one for the returned loss


def test_buffers_are_optim_states():
    net = Net()
    opt = optim.Adam(lr=1e-3)
    assert isinstance(optim.OptimState(0.0), brainstate.LongTermState)
    opt.register_trainable_weights(net.states(brainstate.ParamState))
    buffers = opt.states()
    assert list(buffers) == [('opt_state',)]
    assert isinstance(buffers[('opt_state',)], optim.OptimState)
    assert list(opt.param_states) == [('l1', 'weight'), ('l2', 'weight')]
    # The model's states keep their own paths.
    assert net.l1.weight.label() == 'Net.l1.weight'


def test_eager_update_and_list_registration():
    w = brainstate.ParamState(jnp.array([1.0, 2.0]))
    b = brainstate.ParamState(jnp.array(0.5))
    opt = optim.SGD(0.5)
    opt.register_trainable_weights([w, b])
    opt.update([jnp.array([1.0, 1.0]), jnp.array(2.0)])
    np.testing.assert_allclose(w.value, [0.5, 1.5])
    np.testing.assert_allclose(b.value, -0.5)
    single = optim.SGD(1.0).register_trainable_weights(w)
    single.update(jnp.array([0.5, 0.5]))
    np.testing.assert_allclose(w.value, [0.0, 1.0])


def test_update_with_wrong_keys_is_an_error():
    net = Net()
    opt = optim.SGD(0.1)
    opt.register_trainable_weights(net.states(brainstate.ParamState))
    with pytest.raises(KeyError, match="missing \\[\\('l2', 'weight'\\)\\]"):
        opt.update({('l1', 'weight'): net.l1.weight.value})
    with pytest.raises(RuntimeError, match='register_trainable_weights'):
        optim.Adam().update({})
