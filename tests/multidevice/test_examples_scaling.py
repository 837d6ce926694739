"""The scaling-out examples, on reduced sizes: 8 devices agree with one device to 1e-5."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'examples'))


def test_data_parallel_mlp_matches_one_device():
    import data_parallel_mlp
    assert data_parallel_mlp.main(n_devices=8, sizes=(16, 32, 8), batch=64, steps=5) < 1e-5


def test_tensor_parallel_mlp_matches_one_device():
    import tensor_parallel_mlp
    assert tensor_parallel_mlp.main(n_devices=8, sizes=(16, 32, 16), batch=32, steps=5) < 1e-5


def test_benchmark_runs_and_agrees_with_raw_jax():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'tools'))
    import bench_sharding
    rows = bench_sharding.main(device_counts=(1, 2), sizes=(16, 32, 8), batch=64, repeats=3,
                               calls=5, quiet=True)
    assert [r['devices'] for r in rows] == [1, 2]
