"""Train a small MLP classifier on scikit-learn's bundled handwritten digits (no download).

The five-line training program every brainstate user writes: select the parameters, take their
gradient with ``brainstate.transform.grad``, update them in place, all inside one
``brainstate.transform.jit`` step.

    python -m pip install -e '.[examples]'      # scikit-learn, for the data set
    python examples/train_mlp_digits.py          # a line per epoch; test accuracy ~97%
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

import brainstate


class MLP(brainstate.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = [brainstate.nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:])]

    def update(self, x):
        for layer in self.layers[:-1]:
            x = brainstate.nn.relu(layer(x))
        return self.layers[-1](x)


def load_data(seed=0):
    digits = load_digits()                                   # 1797 images of 8x8 pixels
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.RandomState(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = len(x) // 5
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def main(epochs=20, batch_size=64, lr=0.1, seed=0):
    brainstate.random.seed(seed)
    (x_train, y_train), (x_test, y_test) = load_data(seed)
    model = MLP([64, 128, 128, 10])

    def loss_fn(x, y):
        logits = model(x)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, 10), axis=-1))

    # ---- the five-line training program ----
    params = model.states(brainstate.ParamState)               # select what to train

    @brainstate.transform.jit
    def train_step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - lr * g, params[key].value,
                                             grads[key])
        return loss_fn(x, y)

    @brainstate.transform.jit
    def accuracy(x, y):
        return jnp.mean(jnp.argmax(model(x), axis=-1) == y)

    rng = np.random.RandomState(seed)
    n_batches = len(x_train) // batch_size
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        losses = []
        for i in range(n_batches):
            idx = order[i * batch_size:(i + 1) * batch_size]
            losses.append(train_step(x_train[idx], y_train[idx]))
        print(f'epoch {epoch + 1:2d}  loss {float(np.mean(losses)):.4f}  '
              f'train acc {float(accuracy(x_train, y_train)):.3f}  '
              f'({time.perf_counter() - start:.1f}s)')
    test_accuracy = float(accuracy(x_test, y_test))
    print(f'test accuracy: {test_accuracy:.4f}')
    return test_accuracy


if __name__ == '__main__':
    main()
