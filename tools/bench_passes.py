"""Time of the pass pipeline: on a traced 100-layer MLP train step, and on generated graphs of
growing size (to show the growth is linear; goal: at most 2 us of CPU per node at 100,000
nodes).

    python tools/bench_passes.py [--sizes 10000 30000 100000] [--repeats 5]

The pipeline is brainstate's default (plus verification, reported apart). Each measurement runs
on a fresh copy of the graph; times are CPU time of this process (``time.process_time``: the
machine is shared, so wall time says more about the neighbours than about us), the median of
the repeats, per pass and in total.
"""

from __future__ import annotations

import argparse
import os
import sys
import gc
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import brainstate
from brainstate import ir, passes
from brainstate.passes import _fold_constants

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_first_call import mlp100_brainstate  # noqa: E402  (a sibling script)


def mlp_train_step_graph(depth=100, width=64, batch=32):
    """The traced IR of bench_first_call's 100-layer MLP train step (the same workload)."""
    step, args = mlp100_brainstate(depth, width, batch)
    return ir.trace(step, *args)


def generated_graph(n_nodes: int, n_states: int = 100):
    """A straight-line graph of about ``n_nodes`` nodes: chains of elementwise math reading and
    writing states, with duplicated expressions (for cse), unused ones (for dce), overwritten
    writes (for dead-writes) and literal arithmetic (for fold-constants)."""
    aval = jax.core.ShapedArray((16,), jnp.float32)
    scalar = jax.core.ShapedArray((), jnp.float32)
    states = [brainstate.State(jnp.zeros(16), name=f's{i}') for i in range(n_states)]
    g = ir.Graph('generated')
    x = g.add_input(aval)
    ops = [jax.lax.sin_p, jax.lax.cos_p, jax.lax.exp_p, jax.lax.tanh_p]
    last = x
    count = 0
    i = 0
    while count < n_nodes:
        state = states[i % n_states]
        read = g.create_node('state_read', state=state, output_avals=[aval])
        one = ir.Literal(np.float32(1.0), scalar)
        folded = g.create_node('primitive', op=jax.lax.add_p, inputs=[one, one],
                               output_avals=[scalar])
        a = g.create_node('primitive', op=ops[i % 4], inputs=[read.outputs[0]],
                          output_avals=[aval])
        b = g.create_node('primitive', op=ops[i % 4], inputs=[read.outputs[0]],
                          output_avals=[aval])   # the same as `a`
        c = g.create_node('primitive', op=jax.lax.add_p, inputs=[a.outputs[0], b.outputs[0]],
                          output_avals=[aval])
        d = g.create_node('primitive', op=jax.lax.mul_p, inputs=[c.outputs[0], last],
                          output_avals=[aval])
        e = g.create_node('primitive', op=jax.lax.mul_p,
                          inputs=[d.outputs[0], folded.outputs[0]], output_avals=[aval])
        g.create_node('primitive', op=jax.lax.neg_p, inputs=[e.outputs[0]],
                      output_avals=[aval])       # unused
        g.create_node('state_write', state=state, inputs=[a.outputs[0]])  # overwritten next
        g.create_node('state_write', state=state, inputs=[e.outputs[0]])
        last = e.outputs[0]
        count += 10
        i += 1
    g.set_outputs([last])
    return g


def time_pipeline(graph, pipeline, repeats, verify=False):
    """Median CPU seconds of the whole pipeline and of each pass, over ``repeats`` fresh copies
    of ``graph``; the node counts before and after; the last PassManager."""
    totals, per_pass, sizes = [], {}, None
    for _ in range(repeats):
        fresh = graph.copy()
        before = len(list(fresh.walk()))
        gc.collect()  # start each run with no collection owed from building the copy
        # fold-constants remembers folds across runs: each repeat starts without them, as the
        # first trace of a program does (the cold, slower case).
        _fold_constants._MEMO.clear()
        marks = []

        def observe(p, record, graph):
            marks.append((p.name, time.process_time()))

        # The transforms' settings: no reproducer capture (a graph copy per pass).
        manager = passes.PassManager(pipeline, verify=verify, capture_reproducer=False,
                                     observer=observe)
        start = time.process_time()
        manager.run(fresh)
        totals.append(time.process_time() - start)
        previous = start
        for name, mark in marks:
            per_pass.setdefault(name, []).append(mark - previous)
            previous = mark
        sizes = (before, len(list(fresh.walk())))
    medians = {name: statistics.median(times) for name, times in per_pass.items()}
    return statistics.median(totals), sizes, manager, medians


def format_passes(medians):
    return '  '.join(f'{name} {seconds * 1e3:.1f}' for name, seconds in medians.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 30_000, 100_000])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the run with verification after every pass')
    args = parser.parse_args()
    pipeline = passes.DEFAULT_PIPELINE
    print(f'pipeline: {pipeline}   (CPU time, median of {args.repeats})')

    start = time.process_time()
    mlp = mlp_train_step_graph()
    trace_seconds = time.process_time() - start
    seconds, (before, after), manager, medians = time_pipeline(mlp, pipeline, args.repeats)
    print(f'\n100-layer MLP train step: traced in {trace_seconds:.2f} s; {before} -> {after} '
          f'nodes; pipeline {seconds * 1e3:.1f} ms ({seconds / before * 1e6:.2f} us/node)')
    print(f'per pass, ms: {format_passes(medians)}')

    print(f'\n{"nodes":>8} {"after":>8} {"pipeline s":>11} {"us/node":>8} {"+verify s":>10}')
    per_node = {}
    for n in args.sizes:
        graph = generated_graph(n)
        seconds, (before, after), manager, medians = time_pipeline(graph, pipeline,
                                                                   args.repeats)
        verified = (float('nan') if args.no_verify else
                    time_pipeline(graph, pipeline, 1, verify=True)[0])
        per_node[before] = seconds / before * 1e6
        print(f'{before:>8} {after:>8} {seconds:>11.3f} {per_node[before]:>8.2f} '
              f'{verified:>10.3f}')
    print(f'\nper pass, largest graph, ms: {format_passes(medians)}')
    print(manager.report())
    smallest, largest = min(per_node), max(per_node)
    print(f'\nlinearity: {per_node[largest]:.2f} us/node at {largest} nodes / '
          f'{per_node[smallest]:.2f} at {smallest} = {per_node[largest] / per_node[smallest]:.2f}'
          f' (1.0 is linear; goal: at most 2 us/node at 100,000 nodes; load '
          f'{os.getloadavg()[0]:.1f})')


if __name__ == '__main__':
    main()
