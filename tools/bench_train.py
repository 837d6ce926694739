"""A training step (MLP 784-512-512-10, batch 128, SGD) in brainstate against hand-written JAX.

brainstate: the five-line program (``grad`` of the loss with respect to
``model.states(ParamState)`` and an in-place update, inside ``brainstate.transform.jit``); with
``--adam``, ``brainstate.optim.Adam`` instead of the hand-written SGD update. Raw JAX: the same
math on a list of parameter dicts with ``jax.grad`` / optax, under ``jax.jit`` with the
parameters (and optimizer state) donated, as one writes it by hand.

Measured in the same run, alternating the two:

* steady state: median over repeats of the mean time of ``--calls`` cached steps;
* first call: a fresh model and a fresh jitted function, timing the first call (trace, passes,
  lowering, XLA compilation and one run); median over repeats.

    python tools/bench_train.py [--calls 50] [--repeats 7] [--first-repeats 5] [--adam]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import brainstate

SIZES = (784, 512, 512, 10)
BATCH = 128
LR = 0.01


class MLP(brainstate.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = [brainstate.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

    def update(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


def xent(logits, y):
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, SIZES[-1]), -1))


def make_brainstate(adam: bool):
    model = MLP(SIZES)
    params = model.states(brainstate.ParamState)

    def loss_fn(x, y):
        return xent(model(x), y)

    if adam:
        opt = brainstate.optim.Adam(lr=1e-3)
        opt.register_trainable_weights(params)

        @brainstate.transform.jit
        def train_step(x, y):
            grads = brainstate.transform.grad(loss_fn, params)(x, y)
            opt.update(grads)
            return loss_fn(x, y)
    else:
        @brainstate.transform.jit
        def train_step(x, y):
            grads = brainstate.transform.grad(loss_fn, params)(x, y)
            for key in params:
                params[key].value = jax.tree.map(lambda p, g: p - LR * g, params[key].value,
                                                 grads[key])
            return loss_fn(x, y)

    return train_step


def pure_mlp(params, x):
    for p in params[:-1]:
        x = jax.nn.relu(x @ p['weight'] + p['bias'])
    return x @ params[-1]['weight'] + params[-1]['bias']


def make_raw(adam: bool):
    model = MLP(SIZES)   # the same initialization code
    state = {'params': [jax.tree.map(jnp.copy, s.value)
                        for s in model.states(brainstate.ParamState).values()]}

    def loss(params, x, y):
        return xent(pure_mlp(params, x), y)

    if adam:
        tx = optax.adam(1e-3)
        state['opt'] = tx.init(state['params'])

        def pure_step(params, opt_state, x, y):
            grads = jax.grad(loss)(params, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return params, opt_state, loss(params, x, y)

        jitted = jax.jit(pure_step, donate_argnums=(0, 1))

        def step(x, y):
            state['params'], state['opt'], out = jitted(state['params'], state['opt'], x, y)
            return out
    else:
        def pure_step(params, x, y):
            grads = jax.grad(loss)(params, x, y)
            params = jax.tree.map(lambda p, g: p - LR * g, params, grads)
            return params, loss(params, x, y)

        jitted = jax.jit(pure_step, donate_argnums=0)

        def step(x, y):
            state['params'], out = jitted(state['params'], x, y)
            return out

    return step


def first_call(make, adam, x, y) -> float:
    step = make(adam)
    start = time.perf_counter()
    jax.block_until_ready(step(x, y))
    return time.perf_counter() - start


def steady(step, x, y, calls) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        out = step(x, y)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=50)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--first-repeats', type=int, default=5)
    parser.add_argument('--adam', action='store_true', help='use Adam instead of SGD')
    args = parser.parse_args()
    brainstate.random.seed(0)
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(BATCH, SIZES[0]), jnp.float32)
    y = jnp.asarray(rng.randint(0, SIZES[-1], BATCH))
    print(f'jax {jax.__version__}, backend {jax.default_backend()}, MLP {SIZES}, batch {BATCH}, '
          f'{"Adam" if args.adam else "SGD"}')

    first = {'raw': [], 'brainstate': []}
    for _ in range(args.first_repeats):
        first['raw'].append(first_call(make_raw, args.adam, x, y))
        first['brainstate'].append(first_call(make_brainstate, args.adam, x, y))

    steps = {'raw': make_raw(args.adam), 'brainstate': make_brainstate(args.adam)}
    for step in steps.values():
        jax.block_until_ready(step(x, y))
    samples = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            samples[name].append(steady(step, x, y, args.calls))

    med = {k: statistics.median(v) for k, v in samples.items()}
    med_first = {k: statistics.median(v) for k, v in first.items()}
    print(f'{"":>12} {"raw JAX":>10} {"brainstate":>11} {"ratio":>7}')
    print(f'{"step (ms)":>12} {med["raw"] * 1e3:10.3f} {med["brainstate"] * 1e3:11.3f} '
          f'{med["brainstate"] / med["raw"]:7.3f}')
    print(f'{"first (ms)":>12} {med_first["raw"] * 1e3:10.1f} '
          f'{med_first["brainstate"] * 1e3:11.1f} '
          f'{med_first["brainstate"] / med_first["raw"]:7.3f}')
    print('steady samples (ms): ' + '; '.join(
        f'{k} ' + ' '.join(f'{v * 1e3:.2f}' for v in s) for k, s in samples.items()))
    print('first-call samples (ms): ' + '; '.join(
        f'{k} ' + ' '.join(f'{v * 1e3:.0f}' for v in s) for k, s in first.items()))


if __name__ == '__main__':
    main()
