"""Multi-process data parallelism: 2 local processes joined by ``jax.distributed`` (CPU devices,
gloo collectives) train the data-parallel MLP, each on half of every batch; both must end with
identical parameters, equal to a single-process run on the whole batch."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, 'tests', 'multidevice', 'dp_worker.py')
sys.path.insert(0, os.path.join(ROOT, 'examples'))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('localhost', 0))
        return s.getsockname()[1]


@pytest.mark.slow   # two JAX processes start and compile (~30 s on a busy 2-core machine)
def test_two_process_data_parallel_matches_single_process(tmp_path):
    import data_parallel_mlp
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    outs = [str(tmp_path / f'params{i}.npz') for i in range(2)]
    procs = [subprocess.Popen([sys.executable, WORKER, str(port), str(i), '2', outs[i]],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for i in range(2)]
    logs = []
    for proc in procs:
        try:
            logs.append(proc.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-4000:]
    first, second = (dict(np.load(o)) for o in outs)
    assert first.keys() == second.keys() and first
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])   # identical in both

    x, y = data_parallel_mlp.make_data(64, 16, 8)
    single, _ = data_parallel_mlp.train((16, 32, 8), x, y, steps=5)
    expected = {f'{"/".join(map(str, key))}/{i}': leaf
                for key, value in single.items() for i, leaf in enumerate(jax.tree.leaves(value))}
    assert expected.keys() == first.keys()
    for key in first:
        np.testing.assert_allclose(first[key], expected[key], rtol=0, atol=1e-5)
