"""Tensor-parallel (sharded-weight) MLP over several devices, checked against one device.

Each weight matrix is split over the mesh axis ``'model'``: the hidden layers by their output
columns, the last layer by its input rows (the Megatron layout), so no device holds a whole
weight. ``brainstate.shard_states`` gives the states their shardings by rules; the training step
is the ordinary one, and XLA inserts the collectives. Every state keeps its sharding.

    python examples/tensor_parallel_mlp.py      # 8 CPU devices (XLA_FLAGS set below)
"""

import os

if __name__ == '__main__':
    os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import brainstate

from data_parallel_mlp import MLP, make_data  # (the same model and data)

COLUMNS = {'weight': P(None, 'model'), 'bias': P('model')}  # split the outputs
ROWS = {'weight': P('model', None), 'bias': P()}            # split the inputs


def shard_model(model, mesh):
    """Hidden layers split by output columns, the last layer by input rows."""
    for layer in model.layers[:-1]:
        brainstate.shard_states(layer, mesh, {brainstate.ParamState: COLUMNS})
    brainstate.shard_states(model.layers[-1], mesh, {brainstate.ParamState: ROWS})


def train(sizes, x, y, steps, lr=0.05, mesh=None, seed=0):
    brainstate.random.seed(seed)
    model = MLP(sizes)
    params = model.states(brainstate.ParamState)
    if mesh is not None:
        shard_model(model, mesh)
    planned = {key: state.sharding for key, state in params.items()}

    def loss_fn(x, y):
        logits = model(x)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, sizes[-1]), -1))

    @brainstate.transform.jit
    def step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - lr * g, params[key].value,
                                             grads[key])
        return loss_fn(x, y)

    losses = [float(step(x, y)) for _ in range(steps)]
    if mesh is not None:
        for key, state in params.items():   # every weight is still split as planned
            for leaf, sharding in zip(jax.tree.leaves(state.value),
                                      jax.tree.leaves(planned[key])):
                assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), key
    values = {key: jax.tree.map(np.asarray, state.value) for key, state in params.items()}
    return values, losses


def main(n_devices=8, sizes=(64, 256, 256, 16), batch=256, steps=20):
    """Train on one device and with weights split over ``n_devices``; return the largest
    parameter difference."""
    x, y = make_data(batch, sizes[0], sizes[-1])
    single, single_losses = train(sizes, x, y, steps)
    mesh = Mesh(np.array(jax.devices()[:n_devices]), ('model',))
    multi, multi_losses = train(sizes, x, y, steps, mesh=mesh)
    diff = max(float(np.max(np.abs(a - b)))
               for key in single
               for a, b in zip(jax.tree.leaves(single[key]), jax.tree.leaves(multi[key])))
    print(f'{n_devices} devices: loss {single_losses[0]:.4f} -> {multi_losses[-1]:.4f}; '
          f'largest parameter difference from one device: {diff:.2e}')
    assert diff < 1e-5, diff
    return diff


if __name__ == '__main__':
    main()
