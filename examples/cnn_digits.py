"""A small convolutional network on scikit-learn's bundled 8x8 digits (no download).

Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d, twice, then a Linear read-out, built with
``brainstate.nn.Sequential`` (sizes inferred from layer to layer) and trained with Adam.
BatchNorm and Dropout follow ``brainstate.environ``'s ``fit`` flag: batch statistics while
fitting, running averages when evaluating.

    python -m pip install -e '.[examples]'      # scikit-learn, for the data set
    python examples/cnn_digits.py               # a line per epoch; test accuracy ~98%
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

import brainstate
from train_mlp_digits import load_data

nn = brainstate.nn


def make_model(channels=(16, 32)):
    """Channels-last images (8, 8, 1) -> 10 logits."""
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d((8, 8, 1), c1, kernel_size=3),          # 'SAME' padding: (8, 8, c1)
        nn.BatchNorm2d.desc(momentum=0.9),               # in_size inferred: (8, 8, c1)
        nn.ReLU(),
        nn.MaxPool2d.desc(2, 2),                          # (4, 4, c1)
        nn.Conv2d.desc(out_channels=c2, kernel_size=3),   # (4, 4, c2)
        nn.BatchNorm2d.desc(momentum=0.9),
        nn.ReLU(),
        nn.MaxPool2d.desc(2, 2),                          # (2, 2, c2)
        nn.Flatten.desc(),                                # (4 * c2,)
        nn.Linear.desc(out_size=10),
    )


def main(epochs=15, batch_size=64, lr=3e-3, channels=(16, 32), n_train=None, seed=0,
         verbose=True):
    brainstate.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = load_data(seed)
    x_train, x_test = x_train.reshape(-1, 8, 8, 1), x_test.reshape(-1, 8, 8, 1)
    if n_train is not None:
        x_train, y_train = x_train[:n_train], y_train[:n_train]
    model = make_model(channels)
    params = model.states(brainstate.ParamState)
    optimizer = brainstate.optim.Adam(lr)
    optimizer.register_trainable_weights(params)

    def loss_fn(x, y):
        logits = model(x)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, 10), axis=-1))

    @brainstate.transform.jit
    def train_step(x, y):
        loss, grads = brainstate.transform.value_and_grad(loss_fn, params)(x, y)
        optimizer.update(grads)
        return loss

    @brainstate.transform.jit
    def accuracy(x, y):
        return jnp.mean(jnp.argmax(model(x), axis=-1) == y)

    rng = np.random.RandomState(seed)
    n_batches = max(len(x_train) // batch_size, 1)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        with brainstate.environ.context(fit=True):           # batch statistics, updated
            losses = [train_step(x_train[idx], y_train[idx])
                      for idx in np.array_split(order[:n_batches * batch_size], n_batches)]
        if verbose:
            with brainstate.environ.context(fit=False):      # running statistics
                train_acc = float(accuracy(x_train, y_train))
            print(f'epoch {epoch + 1:2d}  loss {float(np.mean(losses)):.4f}  '
                  f'train acc {train_acc:.3f}  ({time.perf_counter() - start:.1f}s)')
    with brainstate.environ.context(fit=False):
        test_accuracy = float(accuracy(x_test, y_test))
    if verbose:
        print(f'test accuracy: {test_accuracy:.4f}')
    return test_accuracy


if __name__ == '__main__':
    main()
