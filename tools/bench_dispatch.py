"""Per-call cost of a cached brainstate.transform.jit step against hand-written raw jax.jit.

Both do the same math on N state arrays: every state is decayed and receives the input, and the
step returns a scalar. The raw version passes the arrays in and returns them (how one writes it
by hand); "raw+donate" also donates them, which is what brainstate does for written states.

    python tools/bench_dispatch.py [--sizes 2 200] [--calls 300] [--repeats 41] [--no-sgd]

Times the state step and the five-line SGD step (``grad`` of a tanh loss with respect to N
``ParamState`` arrays, in-place update, inside ``jit``, against ``jax.jit`` of ``jax.grad``),
the three versions interleaved (each repeat times each version once, so machine noise hits all
alike). Prints, per case, one line with the ratio brainstate / raw+donate (the fair comparison:
brainstate donates every written state's buffer, as raw+donate does its arrays) from the
fastest repeat of each, the microseconds per call, the ratio of the medians, and the load
average.
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
    start = time.perf_counter()
    for _ in range(calls):
        out = run()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def load_average() -> str:
    try:
        with open('/proc/loadavg') as f:
            return f.read().split()[0]
    except OSError:
        return '?'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[2, 200])
    parser.add_argument('--calls', type=int, default=300)
    parser.add_argument('--repeats', type=int, default=41)
    parser.add_argument('--sgd', action='store_true', help='(the default; kept for old scripts)')
    parser.add_argument('--no-sgd', action='store_true', help='skip the SGD step')
    args = parser.parse_args()
    print(f'jax {jax.__version__}, backend {jax.default_backend()}; {args.repeats} interleaved '
          f'repeats of {args.calls} calls; ratio from the fastest repeat of each')
    cases = [('state+=x', n, {'raw': make_raw_step(n, False), 'raw+donate': make_raw_step(n, True),
                               'brainstate': make_brainstate_step(n)}) for n in args.sizes]
    if not args.no_sgd:
        cases += [('sgd', n, {'raw': make_raw_sgd(n, False), 'raw+donate': make_raw_sgd(n, True),
                              'brainstate': make_brainstate_sgd(n)}) for n in args.sizes]
    for case, n, runners in cases:
        for run, _ in runners.values():  # compile, and settle into the cached path
            for _ in range(3):
                run()
        samples = {k: [] for k in runners}
        load_before = load_average()
        for _ in range(args.repeats):  # interleave so machine noise hits all alike
            for name, (run, _) in runners.items():
                samples[name].append(time_per_call(run, args.calls))
        # The three computed the same thing.
        first = [float(get()[0]) for _, get in runners.values()]
        assert max(first) - min(first) < 1e-5 * max(1., abs(first[0])), first
        best = {k: min(v) * 1e6 for k, v in samples.items()}
        median_ratio = (statistics.median(samples['brainstate']) /
                        statistics.median(samples['raw+donate']))
        print(f'{case} {n} states: brainstate / raw+donate = '
              f'{best["brainstate"] / best["raw+donate"]:.2f} '
              f'(us per call: brainstate {best["brainstate"]:.1f}, raw+donate '
              f'{best["raw+donate"]:.1f}, raw {best["raw"]:.1f}; ratio of medians '
              f'{median_ratio:.2f}; load {load_before}-{load_average()})', flush=True)


if __name__ == '__main__':
    main()
