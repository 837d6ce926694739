"""Per-call cost of a cached brainstate.transform.jit step against hand-written raw jax.jit.

Both do the same math on N state arrays: every state is decayed and receives the input, and the
step returns a scalar. The raw version passes the arrays in and returns them (how one writes it
by hand); "raw+donate" also donates them, which is what brainstate does for written states.

    python tools/bench_dispatch.py [--sizes 2 20 200] [--calls 300] [--repeats 15] [--sgd]

Prints median microseconds per call and the ratio brainstate / raw for each size. ``--sgd`` also
times the five-line SGD step (``grad`` of a tanh loss with respect to N ``ParamState`` arrays,
in-place update, inside ``jit``) against ``jax.jit`` of ``jax.grad`` with the parameters
donated.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import brainstate


def make_brainstate_step(n):
    states = [brainstate.ShortTermState(jnp.zeros(16)) for _ in range(n)]

    @brainstate.transform.jit
    def step(x):
        for s in states:
            s.value = s.value * 0.5 + x
        return x.sum()

    def run():
        return step(x_input)

    return run, lambda: states[0].value


def make_raw_step(n, donate):
    values = [jnp.zeros(16) for _ in range(n)]

    def pure(values, x):
        return [v * 0.5 + x for v in values], x.sum()

    compiled = jax.jit(pure, donate_argnums=(0,) if donate else ())

    def run():
        nonlocal values
        values, out = compiled(values, x_input)
        return out

    return run, lambda: values[0]


x_input = jnp.ones(16)


def make_brainstate_sgd(n):
    params = [brainstate.ParamState(jnp.full(16, 0.1 * (i + 1))) for i in range(n)]

    def loss(x):
        h = x
        for p in params:
            h = jnp.tanh(h * p.value)
        return jnp.sum(h ** 2)

    @brainstate.transform.jit
    def step(x):
        grads = brainstate.transform.grad(loss, params)(x)
        for p, g in zip(params, grads):
            p.value = p.value - 0.01 * g
        return x.sum()

    return (lambda: step(x_input)), lambda: params[0].value


def make_raw_sgd(n, donate=True):
    values = [jnp.full(16, 0.1 * (i + 1)) for i in range(n)]

    def loss(values, x):
        h = x
        for v in values:
            h = jnp.tanh(h * v)
        return jnp.sum(h ** 2)

    def step(values, x):
        grads = jax.grad(loss)(values, x)
        return [v - 0.01 * g for v, g in zip(values, grads)], x.sum()

    compiled = jax.jit(step, donate_argnums=(0,) if donate else ())

    def run():
        nonlocal values
        values, out = compiled(values, x_input)
        return out

    return run, lambda: values[0]


def time_per_call(run, calls):
    run()  # compile / warm up
    start = time.perf_counter()
    for _ in range(calls):
        out = run()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[2, 20, 200])
    parser.add_argument('--calls', type=int, default=300)
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--sgd', action='store_true', help='also time the SGD step')
    args = parser.parse_args()
    print(f'jax {jax.__version__}, backend {jax.default_backend()}; median of {args.repeats} '
          f'repeats of {args.calls} calls')
    print(f'{"case":>8} {"states":>6} {"raw us":>9} {"raw+donate":>11} {"brainstate":>11} '
          f'{"ratio":>7} {"ratio vs donate":>16}')
    cases = [('state+=x', n, {'raw': make_raw_step(n, False), 'raw+donate': make_raw_step(n, True),
                               'brainstate': make_brainstate_step(n)}) for n in args.sizes]
    if args.sgd:
        cases += [('sgd', n, {'raw': make_raw_sgd(n, False), 'raw+donate': make_raw_sgd(n, True),
                              'brainstate': make_brainstate_sgd(n)}) for n in args.sizes]
    for case, n, runners in cases:
        samples = {k: [] for k in runners}
        for _ in range(args.repeats):  # interleave so machine noise hits all alike
            for name, (run, _) in runners.items():
                samples[name].append(time_per_call(run, args.calls))
        med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
        # The three computed the same thing.
        first = [float(get()[0]) for _, get in runners.values()]
        assert max(first) - min(first) < 1e-5, first
        print(f'{case:>8} {n:>6} {med["raw"]:>9.1f} {med["raw+donate"]:>11.1f} {med["brainstate"]:>11.1f} '
              f'{med["brainstate"] / med["raw"]:>7.2f} '
              f'{med["brainstate"] / med["raw+donate"]:>16.2f}')


if __name__ == '__main__':
    main()
