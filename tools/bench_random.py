"""Per-call cost of drawing random numbers in a cached brainstate.transform.jit step, against
hand-written raw jax.jit that carries the key by hand.

Both draw the same numbers: the brainstate step calls ``brainstate.random.normal`` /
``uniform`` on the global state (whose key is a State threaded by the transform); the raw
version takes the key as an argument, splits it, draws with ``jax.random`` and returns the new
key (donated, as brainstate does for written states). Also timed: eager draws (one sampler call
outside any transform) against eager ``jax.random`` with a manual split.

    python tools/bench_random.py [--size 1000] [--draws 1 4] [--calls 300] [--repeats 15]

Prints median microseconds per call and the ratio brainstate / raw.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import brainstate


def make_brainstate_step(size, draws):
    @brainstate.transform.jit
    def step():
        total = 0.0
        for _ in range(draws):
            total = total + brainstate.random.normal(size=size).sum()
        return total

    return step


def make_raw_step(size, draws):
    def pure(key):
        total = 0.0
        for _ in range(draws):
            key, sub = jax.random.split(key)
            total = total + jax.random.normal(sub, (size,)).sum()
        return key, total

    compiled = jax.jit(pure, donate_argnums=(0,))
    key = jax.random.key(0)

    def run():
        nonlocal key
        key, out = compiled(key)
        return out

    return run


def make_eager_pair(size):
    def ours():
        return brainstate.random.normal(size=size)

    key = jax.random.key(0)

    def raw():
        nonlocal key
        key, sub = jax.random.split(key)
        return jax.random.normal(sub, (size,))

    return ours, raw


def time_per_call(run, calls, repeats):
    jax.block_until_ready(run())  # compile / warm up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = run()
        jax.block_until_ready(out)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=1000)
    parser.add_argument('--draws', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--calls', type=int, default=300)
    parser.add_argument('--repeats', type=int, default=15)
    args = parser.parse_args(argv)
    brainstate.random.seed(0)
    print(f'jax {jax.__version__} on {jax.devices()[0].platform}; normal(size={args.size})')
    print(f'{"case":<28}{"brainstate us":>15}{"raw us":>10}{"ratio":>8}')
    for draws in args.draws:
        ours = time_per_call(make_brainstate_step(args.size, draws), args.calls, args.repeats)
        raw = time_per_call(make_raw_step(args.size, draws), args.calls, args.repeats)
        print(f'{f"jit, {draws} draw(s) per call":<28}{ours:>15.1f}{raw:>10.1f}{ours / raw:>8.2f}')
    ours_eager, raw_eager = make_eager_pair(args.size)
    ours = time_per_call(ours_eager, args.calls, args.repeats)
    raw = time_per_call(raw_eager, args.calls, args.repeats)
    print(f'{"eager, 1 draw":<28}{ours:>15.1f}{raw:>10.1f}{ours / raw:>8.2f}')
    # The draws under jit are the eager ones: same key sequence, same numbers.
    brainstate.random.seed(1)
    a = make_brainstate_step(8, 1)()
    brainstate.random.seed(1)
    b = brainstate.random.normal(size=8).sum()
    np.testing.assert_allclose(a, b, rtol=1e-5)


if __name__ == '__main__':
    main()
