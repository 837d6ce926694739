"""One process of the 2-process data-parallel test (tests/test_multiprocess.py).

    python dp_worker.py PORT PROCESS_ID NUM_PROCESSES OUT.npz

Joins JAX's distributed runtime (CPU devices, gloo collectives), trains the data-parallel MLP of
examples/data_parallel_mlp.py on its half of each batch and saves the parameters it holds.
"""

import os
import sys

import jax

port, process_id, num_processes, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
jax.config.update('jax_cpu_collectives_implementation', 'gloo')
jax.distributed.initialize(coordinator_address=f'localhost:{port}', num_processes=num_processes,
                           process_id=process_id, initialization_timeout=120)

import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'examples'))
import brainstate  # noqa: E402
from data_parallel_mlp import MLP, make_data, loss_of  # noqa: E402

SIZES, BATCH, STEPS, LR = (16, 32, 8), 64, 5, 0.05

mesh = Mesh(np.array(jax.devices()), ('data',))       # every process's devices
assert jax.process_count() == num_processes and len(jax.devices()) == num_processes
brainstate.random.seed(0)
model = MLP(SIZES)
brainstate.shard_states(model, mesh, {brainstate.ParamState: P()})   # replicated everywhere
params = model.states(brainstate.ParamState)

x, y = make_data(BATCH, SIZES[0], SIZES[-1])
rows = slice(process_id * BATCH // num_processes, (process_id + 1) * BATCH // num_processes)
split = NamedSharding(mesh, P('data'))
x = jax.make_array_from_process_local_data(split, x[rows])   # this process's half of the batch
y = jax.make_array_from_process_local_data(split, y[rows])


@brainstate.transform.jit
def step(x, y):
    grads = brainstate.transform.grad(lambda x, y: loss_of(model, x, y), params)(x, y)
    for key in params:
        params[key].value = jax.tree.map(lambda p, g: p - LR * g, params[key].value, grads[key])


for _ in range(STEPS):
    step(x, y)
flat = {}
for key, state in params.items():
    for i, leaf in enumerate(jax.tree.leaves(state.value)):
        flat[f'{"/".join(map(str, key))}/{i}'] = np.asarray(leaf.addressable_data(0))
np.savez(out, **flat)
jax.distributed.shutdown()
