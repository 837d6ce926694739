"""Many trials of a recurrent LIF network at once: brainstate's vmap over for_loop inside jit,
against the same simulation hand-written with jax.vmap over jax.lax.scan inside jax.jit.

The network is the one of tools/bench_lif.py (N LIF neurons, dense recurrent weights shared by
all trials), plus input noise drawn from ``brainstate.random`` at every step. Each trial keeps its
own membrane potentials and spikes (states declared ``in_states``, stored with one row per
trial) and draws its own noise (the random key is split per trial). brainstate writes::

    @jit
    def simulate(currents):
        def trial():
            return for_loop(net.update, currents)
        return vmap(trial, in_states=[net.V, net.spikes], axis_size=trials)()

The raw version splits the key into one key per trial by hand, threads (V, spikes, key)
through ``lax.scan``, maps the trial over ``jax.vmap``, passes W as an argument and donates the
state buffers (as brainstate does). Both draw exactly the same numbers; the script checks that
they give the same spike counts.

    python tools/bench_vmap_lif.py [--trials 64] [--neurons 4000] [--steps 100] [--repeats 3]

Reports medians over ``--repeats`` of the first call (trace, passes, lowering, XLA compile and
one run; fresh function and states) and of a steady-state call, and the ratios brainstate / raw.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import brainstate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lif import (DT, TAU, V_RESET, V_TH, LIFNetwork, make_currents, make_weights,  # noqa
                       steady_run)

NOISE = 2.0  # standard deviation of the input noise


class NoisyLIF(LIFNetwork):
    """The LIF network of bench_lif.py with Gaussian input noise, one state row per trial."""

    def __init__(self, weights, trials):
        super().__init__(weights)
        n = weights.shape[0]
        self.V.value = jnp.zeros((trials, n))
        self.spikes.value = jnp.zeros((trials, n))

    def update(self, current):
        noise = brainstate.random.normal(size=current.shape[0])
        return super().update(current + NOISE * noise)


def brainstate_version(weights, trials, seed):
    net = NoisyLIF(weights, trials)
    brainstate.random.seed(seed)

    @brainstate.transform.jit
    def simulate(currents):
        def trial():
            return brainstate.transform.for_loop(net.update, currents)
        return brainstate.transform.vmap(trial, in_states=[net.V, net.spikes],
                                         axis_size=trials)()

    def run(currents):
        counts = simulate(currents)
        counts.block_until_ready()
        return counts

    return run


def raw_version(weights, trials, seed):
    n = weights.shape[0]
    V, spikes = jnp.zeros((trials, n)), jnp.zeros((trials, n))
    key = jax.random.key(seed)

    def simulate(V, spikes, key, W, currents):
        keys = jax.random.split(key, trials + 1)

        def one_trial(V, spikes, key):
            def step(carry, current):
                V, spikes, key = carry
                key, sub = jax.random.split(key)
                current = current + NOISE * jax.random.normal(sub, (n,))
                V = V + DT / TAU * (-V + current + W @ spikes)
                spike = (V >= V_TH).astype(jnp.float32)
                V = jnp.where(spike > 0, V_RESET, V)
                return (V, spike, key), spike.sum()

            (V, spikes, _), counts = jax.lax.scan(step, (V, spikes, key), currents)
            return V, spikes, counts

        V, spikes, counts = jax.vmap(one_trial)(V, spikes, keys[1:])
        return V, spikes, keys[0], counts

    compiled = jax.jit(simulate, donate_argnums=(0, 1, 2))

    def run(currents):
        nonlocal V, spikes, key
        V, spikes, key, counts = compiled(V, spikes, key, weights, currents)
        counts.block_until_ready()
        return counts

    return run


def first_call(make, weights, trials, currents, seed=0):
    run = make(weights, trials, seed)
    start = time.perf_counter()
    out = run(currents)
    return time.perf_counter() - start, run, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--trials', type=int, default=64)
    parser.add_argument('--neurons', type=int, default=4000)
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--calls', type=int, default=3, help='steady runs per repeat')
    args = parser.parse_args()

    weights = make_weights(args.neurons)
    currents = make_currents(args.neurons, args.steps)
    print(f'{args.trials} trials x {args.neurons} LIF neurons, dense recurrent weights, input '
          f'noise, {args.steps} steps; jax {jax.__version__} on {jax.devices()[0].platform}; '
          f'{args.repeats} repeats')

    # Same random numbers, same spikes, in both.
    _, _, counts_bs = first_call(brainstate_version, weights, args.trials, currents)
    _, _, counts_raw = first_call(raw_version, weights, args.trials, currents)
    np.testing.assert_allclose(counts_bs, counts_raw, atol=1e-3)
    per_trial = np.asarray(counts_bs).sum(1)
    print(f'spikes per trial: {per_trial.min():.0f} to {per_trial.max():.0f} (trials differ; '
          f'identical in both versions)')

    makers = {'brainstate': brainstate_version, 'raw': raw_version}
    results = {name: {'first': [], 'run': []} for name in makers}
    for repeat in range(args.repeats):
        order = ['brainstate', 'raw'] if repeat % 2 == 0 else ['raw', 'brainstate']
        for name in order:
            first, run, _ = first_call(makers[name], weights, args.trials, currents)
            results[name]['first'].append(first)
            results[name]['run'].append(steady_run(run, currents, args.calls))

    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    for name in ('raw', 'brainstate'):
        m = med[name]
        print(f'{name:>10}: first call {m["first"] * 1e3:9.1f} ms '
              f'(compile overhead {(m["first"] - m["run"]) * 1e3:7.1f} ms), '
              f'run {m["run"] * 1e3:9.1f} ms')
    bs, raw = med['brainstate'], med['raw']
    print(f'ratio brainstate/raw: first call {bs["first"] / raw["first"]:.3f}x, '
          f'compile overhead {(bs["first"] - bs["run"]) / (raw["first"] - raw["run"]):.3f}x, '
          f'run {bs["run"] / raw["run"]:.3f}x')


if __name__ == '__main__':
    main()
