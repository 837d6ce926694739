"""Data-parallel training of an MLP over several devices, checked against one device.

Every device holds the whole model (its parameters are *replicated*) and a slice of each batch
(the batch is *split* along a mesh axis ``'data'``). The training step is the ordinary one —
``grad`` and an in-place update inside ``jit`` —: XLA adds the all-reduce of the gradients.
The parameters stay replicated after every step (a state keeps its sharding).

    python examples/data_parallel_mlp.py        # 8 CPU devices (XLA_FLAGS set below)

On a machine with several GPUs, drop the XLA_FLAGS line: ``jax.devices()`` lists the GPUs.
"""

import os

if __name__ == '__main__':
    # 8 simulated devices on the CPU; must be set before JAX starts.
    os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import brainstate


class MLP(brainstate.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = [brainstate.nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:])]

    def update(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


def make_data(n, n_in, n_out, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(n, n_in)).astype(np.float32)
    y = rng.randint(0, n_out, size=n).astype(np.int32)
    return x, y


def loss_of(model, x, y):
    """Cross-entropy of ``model`` on inputs ``x`` and integer labels ``y``."""
    logits = model(x)
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, logits.shape[-1]),
                             -1))


def train(sizes, x, y, steps, lr=0.05, mesh=None, seed=0):
    """Train ``steps`` full-batch steps; with a ``mesh`` (axis ``'data'``) the batch is split
    over its devices and the parameters replicated. Returns the parameters (NumPy) and the
    losses."""
    brainstate.random.seed(seed)
    model = MLP(sizes)
    params = model.states(brainstate.ParamState)
    if mesh is not None:
        brainstate.shard_states(model, mesh, {brainstate.ParamState: P()})  # replicated
        batch = NamedSharding(mesh, P('data'))
        x, y = jax.device_put(x, batch), jax.device_put(y, batch)

    def loss_fn(x, y):
        return loss_of(model, x, y)

    @brainstate.transform.jit
    def step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - lr * g, params[key].value,
                                             grads[key])
        return loss_fn(x, y)

    losses = [float(step(x, y)) for _ in range(steps)]
    if mesh is not None:
        for key, state in params.items():   # still replicated over the whole mesh
            for leaf in jax.tree.leaves(state.value):
                assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, P()), leaf.ndim), key
    values = {key: jax.tree.map(np.asarray, state.value) for key, state in params.items()}
    return values, losses


def main(n_devices=8, sizes=(64, 256, 256, 10), batch=512, steps=20):
    """Train on one device and on ``n_devices``; return the largest parameter difference."""
    x, y = make_data(batch, sizes[0], sizes[-1])
    single, single_losses = train(sizes, x, y, steps)
    mesh = Mesh(np.array(jax.devices()[:n_devices]), ('data',))
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
