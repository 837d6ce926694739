"""A recurrent LIF network simulated with brainstate's for_loop inside jit, against the same
network hand-written with jax.lax.scan inside jax.jit, in one process.

The network: N leaky integrate-and-fire neurons, membrane potential a HiddenState, last spikes
a ShortTermState, dense recurrent weights a ParamState (N x N); each step integrates the
recurrent input ``W @ spikes`` plus an external current, fires and resets. brainstate writes
``for_loop(net.update, currents)``; the raw version threads (V, spikes) through ``lax.scan``
by hand, passes W as an argument and donates the state buffers (as brainstate does).

    python tools/bench_lif.py [--neurons 4000] [--steps 1000] [--repeats 5]

Reports, as medians over ``--repeats`` (the two versions alternate, so machine noise hits
both alike):
  * first call: a fresh function (and fresh states) called once: tracing, passes, lowering,
    XLA compilation and one run of the whole simulation;
  * run: a cached call (the whole simulation) on the same states;
  * compile-bound first call: the first call of a ``--short-steps`` simulation of the same
    network, where tracing and compiling dominate (the run is ~1% of it), measured
    ``--short-repeats`` times: this isolates what brainstate's trace -> passes -> lower adds;
and the ratios brainstate / raw. The two are checked to give the same spikes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import brainstate

DT, TAU, V_TH, V_RESET = 0.1, 10., 1., 0.


def make_weights(n, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(0., 0.5 / np.sqrt(n), (n, n)).astype(np.float32))


def make_currents(n, steps):
    bias = jnp.linspace(9., 13., n, dtype=jnp.float32)
    drive = 1. + 0.2 * jnp.sin(jnp.arange(steps, dtype=jnp.float32) * 0.05)
    return drive[:, None] * bias[None, :]


class LIFNetwork(brainstate.Module):
    def __init__(self, weights):
        super().__init__()
        n = weights.shape[0]
        self.W = brainstate.ParamState(weights)
        self.V = brainstate.HiddenState(jnp.zeros(n))
        self.spikes = brainstate.ShortTermState(jnp.zeros(n))

    def update(self, current):
        recurrent = self.W.value @ self.spikes.value
        V = self.V.value + DT / TAU * (-self.V.value + current + recurrent)
        spike = (V >= V_TH).astype(jnp.float32)
        self.V.value = jnp.where(spike > 0, V_RESET, V)
        self.spikes.value = spike
        return spike.sum()


def brainstate_version(weights):
    net = LIFNetwork(weights)

    @brainstate.transform.jit
    def simulate(currents):
        return brainstate.transform.for_loop(net.update, currents)

    def run(currents):
        counts = simulate(currents)
        counts.block_until_ready()
        return counts

    return run, net


def raw_version(weights):
    n = weights.shape[0]
    V, spikes = jnp.zeros(n), jnp.zeros(n)

    def simulate(V, spikes, W, currents):
        def step(carry, current):
            V, spikes = carry
            V = V + DT / TAU * (-V + current + W @ spikes)
            spike = (V >= V_TH).astype(jnp.float32)
            V = jnp.where(spike > 0, V_RESET, V)
            return (V, spike), spike.sum()

        (V, spikes), counts = jax.lax.scan(step, (V, spikes), currents)
        return V, spikes, counts

    compiled = jax.jit(simulate, donate_argnums=(0, 1))

    def run(currents):
        nonlocal V, spikes
        V, spikes, counts = compiled(V, spikes, weights, currents)
        counts.block_until_ready()
        return counts

    return run, None


def first_call(make, weights, currents):
    run, _ = make(weights)
    start = time.perf_counter()
    out = run(currents)
    return time.perf_counter() - start, run, out


def steady_run(run, currents, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(currents)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--neurons', type=int, default=4000)
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--calls', type=int, default=3,
                        help='steady runs (of each version) per repeat')
    parser.add_argument('--short-steps', type=int, default=10)
    parser.add_argument('--short-repeats', type=int, default=15)
    args = parser.parse_args()

    weights = make_weights(args.neurons)
    currents = make_currents(args.neurons, args.steps)
    print(f'{args.neurons} LIF neurons, dense recurrent weights, {args.steps} steps; '
          f'jax {jax.__version__} on {jax.devices()[0].platform}; {args.repeats} repeats')

    # Same spikes from both.
    _, _, counts_bs = first_call(brainstate_version, weights, currents)
    _, _, counts_raw = first_call(raw_version, weights, currents)
    np.testing.assert_allclose(counts_bs, counts_raw, atol=1e-3)
    print(f'spikes per run: {float(counts_bs.sum()):.0f} (identical in both)')

    results = {'brainstate': {'first': [], 'run': []}, 'raw': {'first': [], 'run': []}}
    makers = {'brainstate': brainstate_version, 'raw': raw_version}
    runners = {}
    for repeat in range(args.repeats):
        order = ['brainstate', 'raw'] if repeat % 2 == 0 else ['raw', 'brainstate']
        for name in order:
            first, runners[name], _ = first_call(makers[name], weights, currents)
            results[name]['first'].append(first)
    # Steady state: single runs alternating between the two, so load from other processes on
    # the machine falls on both alike.
    for call in range(args.repeats * args.calls):
        order = ['brainstate', 'raw'] if call % 2 == 0 else ['raw', 'brainstate']
        for name in order:
            results[name]['run'].append(steady_run(runners[name], currents, 1))

    short = make_currents(args.neurons, args.short_steps)
    for repeat in range(args.short_repeats):
        order = ['brainstate', 'raw'] if repeat % 2 == 0 else ['raw', 'brainstate']
        for name in order:
            results[name].setdefault('short', []).append(
                first_call(makers[name], weights, short)[0])

    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    for name in ('raw', 'brainstate'):
        m = med[name]
        print(f'{name:>10}: first call {m["first"] * 1e3:8.1f} ms, run {m["run"] * 1e3:8.1f} ms, '
              f'compile-bound first call ({args.short_steps} steps) {m["short"] * 1e3:6.1f} ms')
    bs, raw = med['brainstate'], med['raw']
    print(f'ratio brainstate/raw: first call {bs["first"] / raw["first"]:.3f}x, '
          f'run {bs["run"] / raw["run"]:.3f}x, '
          f'compile-bound first call {bs["short"] / raw["short"]:.3f}x')


if __name__ == '__main__':
    main()
