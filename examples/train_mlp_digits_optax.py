"""The digits classifier again, trained by an optax optimizer whose buffers are States.

``brainstate.optim.OptaxOptimizer`` wraps any optax ``GradientTransformation`` (here: gradient
clipping, then AdamW with a cosine learning-rate schedule); ``brainstate.optim.Adam``, ``SGD``,
``Momentum`` and ``AdamW`` are ready-made ones. ``opt.update(grads)`` inside the jitted step
updates the parameters and the optimizer's moments in place. A Dropout layer draws a new mask
on every step from ``brainstate.random`` (its key is a state, threaded like the others).

    python -m pip install -e '.[examples]'
    python examples/train_mlp_digits_optax.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import brainstate
from train_mlp_digits import load_data


def main(epochs=15, batch_size=64, seed=0):
    brainstate.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = load_data(seed)
    nn = brainstate.nn
    model = nn.Sequential(nn.Linear(64, 128), nn.relu, nn.Dropout(0.9),
                          nn.Linear(128, 128), nn.relu, nn.Linear(128, 10))

    def loss_fn(x, y):
        logits = model(x)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, 10), axis=-1))

    n_batches = len(x_train) // batch_size
    schedule = optax.cosine_decay_schedule(3e-3, decay_steps=epochs * n_batches)
    opt = brainstate.optim.OptaxOptimizer(
        optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-4)))
    opt.register_trainable_weights(model.states(brainstate.ParamState))

    @brainstate.transform.jit
    def train_step(x, y):
        loss, grads = brainstate.transform.value_and_grad(loss_fn, opt.param_states)(x, y)
        opt.update(grads)
        return loss

    @brainstate.transform.jit
    def accuracy(x, y):
        return jnp.mean(jnp.argmax(model(x), axis=-1) == y)

    rng = np.random.RandomState(seed)
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        with brainstate.environ.context(fit=True):      # Dropout drops while fitting
            losses = [train_step(x_train[idx], y_train[idx])
                      for idx in np.split(order[:n_batches * batch_size], n_batches)]
        with brainstate.environ.context(fit=False):     # and passes everything through here
            print(f'epoch {epoch + 1:2d}  loss {float(np.mean(losses)):.4f}  '
                  f'train acc {float(accuracy(x_train, y_train)):.3f}')
    with brainstate.environ.context(fit=False):
        test_accuracy = float(accuracy(x_test, y_test))
    print(f'test accuracy: {test_accuracy:.4f}')
    return test_accuracy


if __name__ == '__main__':
    main()
