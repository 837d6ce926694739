"""Instructions per cached call of bench_dispatch.py's 2-state cases, counted by callgrind.

    python tools/callgrind_dispatch.py [--calls 300] [--states 2]

Instruction counts do not depend on the machine's load, so they compare two versions of the
code where wall-clock timing on a shared machine cannot (see docs/performance.md). Runs this
file under ``valgrind --tool=callgrind`` with instrumentation off; after the warm-up calls it
switches instrumentation on (``callgrind_control``) and dumps the counts around ``--calls``
calls of each case (brainstate and raw ``jax.jit`` with donation, for the state step and the
SGD step), two rounds. Prints instructions per call and the ratio brainstate / raw+donate.
Needs valgrind; takes about a minute.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(calls: int, states: int):
    """(Under callgrind.) Run the cases, dumping the counts around each."""
    sys.path.insert(0, HERE)
    import jax
    import bench_dispatch as bench
    cases = {'step_bs': bench.make_brainstate_step(states)[0],
             'step_raw': bench.make_raw_step(states, True)[0],
             'sgd_bs': bench.make_brainstate_sgd(states)[0],
             'sgd_raw': bench.make_raw_sgd(states, True)[0]}
    for run in cases.values():
        for _ in range(30):
            out = run()
    jax.block_until_ready(out)
    pid = str(os.getpid())

    def control(*args):
        subprocess.run(['callgrind_control', *args, pid], check=True, stdout=subprocess.DEVNULL)

    control('-i', 'on')
    for round_ in range(2):
        for name, run in cases.items():
            control(f'--dump=start_{name}_{round_}')
            for _ in range(calls):
                out = run()
            jax.block_until_ready(out)
            control(f'--dump={name}_{round_}')
    control('-i', 'off')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=300)
    parser.add_argument('--states', type=int, default=2)
    parser.add_argument('--inside', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return measure(args.calls, args.states)
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(['valgrind', '--tool=callgrind', '--instr-atstart=no',
                        f'--callgrind-out-file={out}/cg.%p', sys.executable, __file__,
                        '--inside', '--calls', str(args.calls), '--states', str(args.states)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, JAX_PLATFORMS='cpu'))
        per_call = {}
        for path in glob.glob(f'{out}/cg.*'):
            with open(path) as f:
                head = f.read(4000)
            trigger = re.search(r'^desc: Trigger: dump (\S+)$', head, re.M)
            total = re.search(r'^summary: (\d+)', head, re.M)
            if trigger and total and not trigger.group(1).startswith('start_'):
                per_call[trigger.group(1)] = int(total.group(1)) / args.calls
    for case in ('step', 'sgd'):
        for round_ in range(2):
            ours, raw = per_call[f'{case}_bs_{round_}'], per_call[f'{case}_raw_{round_}']
            print(f'{case} {args.states} states, round {round_}: brainstate {ours:,.0f}, '
                  f'raw+donate {raw:,.0f} instructions per call; ratio {ours / raw:.3f}')


if __name__ == '__main__':
    main()
