"""First-call cost of a brainstate.transform.jit step against hand-written raw jax.jit, per stage.

Three workloads, each written once with brainstate (states, ``grad`` / ``for_loop`` inside
``jit``) and once by hand in pure JAX (parameters as arguments, ``jax.grad`` / ``lax.scan``
inside ``jax.jit``), in one process:

  * ``mlp100``: the five-line SGD train step of a 100-layer MLP, width 64, batch 32;
  * ``lif``: 10 steps of a 4000-neuron LIF network with dense recurrent weights;
  * ``digits``: the SGD train step of examples/train_mlp_digits.py (64-128-128-10, batch 64).

For each, with fresh functions and states every repeat (so no JAX or brainstate cache answers):

  * tracing only: ``brainstate.transform.make_jaxpr`` against ``jax.make_jaxpr``, in CPU time
    of the tracing thread (``time.thread_time``: tracing is single-threaded Python, and CPU time
    does not count the waits of a loaded machine: raw JAX traces the lif step in ~2 ms, less
    than one scheduler time slice, so wall-clock medians of it swung from 1.2x to 23x);
  * first call: trace, compile and run once (to ``block_until_ready``), wall clock (XLA
    compiles on several threads);
  * stages of the first call: brainstate's trace (JAX tracing the function into a jaxpr),
    convert (jaxpr to the state IR), passes, lower (IR to a jaxpr), re-bind (``jax.jit``
    tracing the pure function) and XLA (StableHLO + compile); raw JAX's trace and XLA.

    python tools/bench_first_call.py [--cases mlp100 lif digits] [--repeats 5]

Medians over the repeats (and the minimum for tracing only), the two versions alternating so
machine load falls on both alike. Before every timed sample the cycle collector runs
(untimed), so a full collection of garbage left by earlier samples falls on neither side (one
costs ~0.1 s here, more than a whole trace). The last lines are one ratio line per workload:

    RATIO mlp100: tracing-only 1.31 (cpu min; median 1.33)  first-call 0.97 (wall median)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import brainstate


# -- workloads: each maker returns (step, args, check) with fresh functions and states ----------

def mlp100_brainstate(depth=100, width=64, batch=32):
    class MLP(brainstate.Module):
        def __init__(self):
            super().__init__()
            keys = jax.random.split(jax.random.key(0), depth)
            self.layers = [brainstate.ParamState({
                'w': jax.random.normal(k, (width, width)) / width ** 0.5,
                'b': jnp.zeros(width)}) for k in keys]

        def __call__(self, x):
            for layer in self.layers:
                x = jnp.tanh(x @ layer.value['w'] + layer.value['b'])
            return x

    model = MLP()
    params = model.states(brainstate.ParamState)

    def loss_fn(x, y):
        return jnp.mean((model(x) - y) ** 2)

    def train_step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - 0.01 * g, params[key].value,
                                             grads[key])
        return loss_fn(x, y)

    x = jnp.ones((batch, width))
    return train_step, (x, x)


def mlp100_raw(depth=100, width=64, batch=32):
    keys = jax.random.split(jax.random.key(0), depth)
    params = [{'w': jax.random.normal(k, (width, width)) / width ** 0.5, 'b': jnp.zeros(width)}
              for k in keys]

    def loss_fn(params, x, y):
        for layer in params:
            x = jnp.tanh(x @ layer['w'] + layer['b'])
        return jnp.mean((x - y) ** 2)

    def train_step(params, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
        return params, loss_fn(params, x, y)

    x = jnp.ones((batch, width))
    return train_step, (params, x, x)


DT, TAU, V_TH, V_RESET = 0.1, 10., 1., 0.


def _lif_inputs(n, steps):
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.normal(0., 0.5 / np.sqrt(n), (n, n)).astype(np.float32))
    bias = jnp.linspace(9., 13., n, dtype=jnp.float32)
    drive = 1. + 0.2 * jnp.sin(jnp.arange(steps, dtype=jnp.float32) * 0.05)
    return weights, drive[:, None] * bias[None, :]


def lif_brainstate(n=4000, steps=10):
    weights, currents = _lif_inputs(n, steps)

    class LIF(brainstate.Module):
        def __init__(self):
            super().__init__()
            self.W = brainstate.ParamState(weights)
            self.V = brainstate.HiddenState(jnp.zeros(n))
            self.spikes = brainstate.ShortTermState(jnp.zeros(n))

        def update(self, current):
            V = self.V.value + DT / TAU * (-self.V.value + current +
                                           self.W.value @ self.spikes.value)
            spike = (V >= V_TH).astype(jnp.float32)
            self.V.value = jnp.where(spike > 0, V_RESET, V)
            self.spikes.value = spike
            return spike.sum()

    net = LIF()

    def simulate(currents):
        return brainstate.transform.for_loop(net.update, currents)

    return simulate, (currents,)


def lif_raw(n=4000, steps=10):
    weights, currents = _lif_inputs(n, steps)

    def simulate(V, spikes, W, currents):
        def step(carry, current):
            V, spikes = carry
            V = V + DT / TAU * (-V + current + W @ spikes)
            spike = (V >= V_TH).astype(jnp.float32)
            return (jnp.where(spike > 0, V_RESET, V), spike), spike.sum()

        (V, spikes), counts = jax.lax.scan(step, (V, spikes), currents)
        return V, spikes, counts

    return simulate, (jnp.zeros(n), jnp.zeros(n), weights, currents)


def _digits_data(batch=64):
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.random((batch, 64), dtype=np.float32)),
            jnp.asarray(rng.integers(0, 10, batch).astype(np.int32)))


def digits_brainstate(lr=0.1):
    sizes = [64, 128, 128, 10]

    class MLP(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [brainstate.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]

        def update(self, x):
            for layer in self.layers[:-1]:
                x = brainstate.nn.relu(layer(x))
            return self.layers[-1](x)

    model = MLP()

    def loss_fn(x, y):
        logits = model(x)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, 10), axis=-1))

    params = model.states(brainstate.ParamState)

    def train_step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - lr * g, params[key].value,
                                             grads[key])
        return loss_fn(x, y)

    return train_step, _digits_data()


def digits_raw(lr=0.1):
    sizes = [64, 128, 128, 10]
    keys = jax.random.split(jax.random.key(0), len(sizes) - 1)
    params = [{'weight': jax.random.normal(k, (a, b)) * (2. / a) ** 0.5, 'bias': jnp.zeros(b)}
              for k, a, b in zip(keys, sizes, sizes[1:])]

    def loss_fn(params, x, y):
        for layer in params[:-1]:
            x = jax.nn.relu(x @ layer['weight'] + layer['bias'])
        logits = x @ params[-1]['weight'] + params[-1]['bias']
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, 10), axis=-1))

    def train_step(params, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        return params, loss_fn(params, x, y)

    return train_step, (params, *_digits_data())


CASES = {'mlp100': (mlp100_brainstate, mlp100_raw, (0,)),
         'lif': (lif_brainstate, lif_raw, (0, 1)),
         'digits': (digits_brainstate, digits_raw, (0,))}


# -- measurements -------------------------------------------------------------------------------

def _timed(fn, clock=time.perf_counter):
    start = clock()
    out = fn()
    return clock() - start, out


def _settled(args):
    """Wait for the inputs (made on the device asynchronously) and collect garbage, untimed."""
    jax.block_until_ready(args)
    gc.collect()


def tracing_only(name, side):
    """CPU seconds of the tracing thread for one make_jaxpr of a fresh step."""
    bs_make, raw_make, _ = CASES[name]
    if side == 'brainstate':
        step, args = bs_make()
        _settled(args)
        return _timed(lambda: brainstate.transform.make_jaxpr(step)(*args), time.thread_time)[0]
    step, args = raw_make()
    _settled(args)
    return _timed(lambda: jax.make_jaxpr(step)(*args), time.thread_time)[0]


def first_call(name, side):
    """Wall-clock seconds of the first call of a fresh jitted step."""
    bs_make, raw_make, donate = CASES[name]
    if side == 'brainstate':
        step, args = bs_make()
        jitted = brainstate.transform.jit(step)
    else:
        step, args = raw_make()
        jitted = jax.jit(step, donate_argnums=donate)
    _settled(args)
    return _timed(lambda: jax.block_until_ready(jitted(*args)))[0]


def stages(name, side) -> dict:
    """Seconds per stage of a first call (without running it)."""
    bs_make, raw_make, donate = CASES[name]
    if side == 'raw':
        step, args = raw_make()
        _settled(args)
        t_trace, traced = _timed(lambda: jax.jit(step, donate_argnums=donate).trace(*args))
        t_hlo, lowered = _timed(traced.lower)
        t_xla, _ = _timed(lowered.compile)
        return {'trace': t_trace, 'XLA': t_hlo + t_xla}
    step, args = bs_make()
    jitted = brainstate.transform.jit(step)
    _settled(args)
    start = time.perf_counter()
    entry = jitted._entry_for(args, {})
    t_front = time.perf_counter() - start
    timings = dict(entry.pending.timings)
    try:
        # (The program calls compile: without state donation for a step that will be packed.)
        jitted = entry.jitted if entry.may_donate else entry.jitted_keep_states
        t_bind, traced = _timed(lambda: jitted.trace(*entry.state_avals(), *args))
    finally:
        entry.pending = None
    t_hlo, lowered = _timed(traced.lower)
    t_xla, _ = _timed(lowered.compile)
    out = {key: timings.get(key, 0.) for key in ('trace', 'convert', 'passes', 'lower')}
    out['other'] = t_front - sum(out.values())
    out.update({'re-bind': t_bind, 'XLA': t_hlo + t_xla})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=list(CASES))
    parser.add_argument('--repeats', type=int, default=5,
                        help='first calls and stage breakdowns per side')
    parser.add_argument('--trace-repeats', type=int, default=15,
                        help='tracing-only samples per side')
    args = parser.parse_args()
    with open('/proc/loadavg') as f:
        load = ' '.join(f.read().split()[:3])
    print(f'jax {jax.__version__}, backend {jax.default_backend()}; load average {load}; '
          f'fresh functions and states each repeat; tracing only: CPU time of the tracing '
          f'thread over {args.trace_repeats} repeats; first call and stages: wall-clock medians '
          f'of {args.repeats}')
    summary = []
    for name in args.cases:
        for side in ('raw', 'brainstate'):  # warm up: first-in-process costs
            tracing_only(name, side)
            first_call(name, side)
        trace_samples = {'raw': [], 'brainstate': []}
        for repeat in range(args.trace_repeats):
            for side in (('raw', 'brainstate') if repeat % 2 == 0 else ('brainstate', 'raw')):
                trace_samples[side].append(tracing_only(name, side))
        samples = {side: {'first call': [], 'stages': []} for side in ('raw', 'brainstate')}
        for repeat in range(args.repeats):
            order = ('raw', 'brainstate') if repeat % 2 == 0 else ('brainstate', 'raw')
            for side in order:
                samples[side]['first call'].append(first_call(name, side))
                samples[side]['stages'].append(stages(name, side))
        print(f'\n{name}:')
        t_min = {side: min(v) for side, v in trace_samples.items()}
        t_med = {side: statistics.median(v) for side, v in trace_samples.items()}
        print(f'  make_jaxpr (cpu): raw min {t_min["raw"] * 1e3:8.2f} ms  median '
              f'{t_med["raw"] * 1e3:8.2f} ms   brainstate min {t_min["brainstate"] * 1e3:8.2f} ms'
              f'  median {t_med["brainstate"] * 1e3:8.2f} ms')
        first = {side: statistics.median(samples[side]['first call']) for side in samples}
        print(f'  first call (wall): raw {first["raw"] * 1e3:8.1f} ms   brainstate '
              f'{first["brainstate"] * 1e3:8.1f} ms   ratio {first["brainstate"] / first["raw"]:5.2f}')
        for side in ('raw', 'brainstate'):
            keys = samples[side]['stages'][0].keys()
            parts = ', '.join(f'{k} {statistics.median(s[k] for s in samples[side]["stages"]) * 1e3:.1f}'
                              for k in keys)
            print(f'  stages ms, {side}: {parts}')
        summary.append(
            f'RATIO {name}: tracing-only {t_min["brainstate"] / t_min["raw"]:.2f} (cpu min; '
            f'median {t_med["brainstate"] / t_med["raw"]:.2f})  first-call '
            f'{first["brainstate"] / first["raw"]:.2f} (wall median)')
    print()
    for line in summary:
        print(line)


if __name__ == '__main__':
    main()
