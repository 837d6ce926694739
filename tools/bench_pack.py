"""Packed state storage: a cached jitted step over many small states, packed into one buffer
(brainstate.pack_states) against raw jax.jit passing them as separate arrays.

Two workloads over N states of shape (4,), float32:

* ``inc``: every state += 1;
* ``sgd``: a five-line SGD step: the loss ``sum_i sum((w_i * x - 1)^2)`` differentiated with
  respect to all N parameters (``brainstate.transform.grad``), ``w_i -= 0.01 * g_i``.

Measured in one process, interleaved: raw ``jax.jit`` with the N arrays as arguments and results
("raw"), the same with them donated ("raw+donate"), brainstate with the states stored separately
("separate": ``jit(pack_states=False)``), brainstate with them packed by ``pack_states``
("packed"), and brainstate's default ``jit``, which packs them by itself after some cached
calls ("auto"). Every variant computes the same
values; the script checks that packed and raw agree bit for bit after the timed calls.

    python tools/bench_pack.py [--states 200] [--calls 300] [--repeats 11]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import brainstate
from brainstate._state_pack import AUTO_PACK

SHAPE = (4,)
LR = 0.01


def initial(n):
    return [jnp.arange(4, dtype=jnp.float32) * 0.1 + i * 0.01 for i in range(n)]


def loss_of(values, x):
    return sum(jnp.sum((w * x - 1.0) ** 2) for w in values)


def make_raw(n, workload, donate):
    values = initial(n)
    if workload == 'inc':
        def pure(values, x):
            return [v + 1.0 for v in values]
    else:
        def pure(values, x):
            grads = jax.grad(loss_of)(values, x)
            return [w - LR * g for w, g in zip(values, grads)]
    compiled = jax.jit(pure, donate_argnums=(0,) if donate else ())
    x = jnp.full(SHAPE, 0.5)

    def run():
        nonlocal values
        values = compiled(values, x)
        return values[0]

    return run, lambda: values


def make_brainstate(n, workload, packed):
    """``packed``: 'explicit' (brainstate.pack_states), 'auto' (jit's default: it packs the
    states by itself after some cached calls) or 'off' (jit(pack_states=False))."""
    states = [brainstate.ParamState(v) for v in initial(n)]
    if packed == 'explicit':
        brainstate.pack_states(states, name='params')
    x = jnp.full(SHAPE, 0.5)
    jit = functools.partial(brainstate.transform.jit,
                            pack_states=False if packed == 'off' else None)
    if workload == 'inc':
        @jit
        def step(x):
            for s in states:
                s.value = s.value + 1.0
    else:
        def loss(x):
            return loss_of([s.value for s in states], x)

        @jit
        def step(x):
            grads = brainstate.transform.grad(loss, states)(x)
            for s, g in zip(states, grads):
                s.value = s.value - LR * g

    def run():
        return step(x)

    return run, lambda: [s.value for s in states], step


def time_per_call(run, calls):
    start = time.perf_counter()
    for _ in range(calls):
        out = run()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--states', type=int, default=200)
    parser.add_argument('--calls', type=int, default=300)
    parser.add_argument('--repeats', type=int, default=11)
    parser.add_argument('--workloads', nargs='+', default=['inc', 'sgd'])
    parser.add_argument('--show-ir', action='store_true', help='print the packed optimized IR')
    args = parser.parse_args()
    n = args.states
    print(f'jax {jax.__version__}, backend {jax.default_backend()}; {n} states of shape '
          f'{SHAPE}; median of {args.repeats} interleaved repeats of {args.calls} calls; '
          f'load {os.getloadavg()[0]:.2f}')
    print(f'{"workload":>8} {"raw us":>9} {"raw+donate":>11} {"separate":>9} {"packed":>8} '
          f'{"auto":>8} {"raw/packed":>11} {"raw+donate/packed":>18} {"raw/auto":>9}')
    for workload in args.workloads:
        run_raw, get_raw = make_raw(n, workload, False)
        run_don, get_don = make_raw(n, workload, True)
        run_sep, get_sep, _ = make_brainstate(n, workload, 'off')
        run_pack, get_pack, step = make_brainstate(n, workload, 'explicit')
        run_auto, get_auto, auto_step = make_brainstate(n, workload, 'auto')
        runners = {'raw': run_raw, 'raw+donate': run_don, 'separate': run_sep,
                   'packed': run_pack, 'auto': run_auto}
        for run in runners.values():
            jax.block_until_ready(run())  # compile
        for _ in range(AUTO_PACK['after_calls'] + 1):
            for run in runners.values():  # (the same number of calls for every variant)
                jax.block_until_ready(run())  # 'auto' packs its states here and retraces
        assert any(isinstance(s, brainstate.PackedBuffer) for s in auto_step._last.read_states)
        if args.show_ir:
            print(step.optimized_ir(jnp.full(SHAPE, 0.5)))
        samples = {k: [] for k in runners}
        for _ in range(args.repeats):
            for name, run in runners.items():
                samples[name].append(time_per_call(run, args.calls))
        med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
        # Every variant made the same number of calls: the values agree bit for bit.
        reference = np.stack([np.asarray(v) for v in get_raw()])
        for name, get in (('raw+donate', get_don), ('separate', get_sep),
                          ('packed', get_pack), ('auto', get_auto)):
            got = np.stack([np.asarray(v) for v in get()])
            assert np.array_equal(got, reference), (name, np.abs(got - reference).max())
        print(f'{workload:>8} {med["raw"]:>9.1f} {med["raw+donate"]:>11.1f} '
              f'{med["separate"]:>9.1f} {med["packed"]:>8.1f} {med["auto"]:>8.1f} '
              f'{med["raw"] / med["packed"]:>11.1f} {med["raw+donate"] / med["packed"]:>18.1f} '
              f'{med["raw"] / med["auto"]:>9.1f}')
    print('(all variants bit-identical after the timed calls)')


if __name__ == '__main__':
    main()
