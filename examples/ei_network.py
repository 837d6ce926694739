"""An excitatory/inhibitory network of leaky integrate-and-fire neurons.

Built from the brain-dynamics layer of ``brainstate.nn``: neurons and synapses are
``Dynamics``, the membrane and synaptic equations are integrated with ``exp_euler_step``
(exact for these linear equations), spikes reach their targets after a transmission delay read
through ``prefetch_delay`` (a ``Delay`` ring buffer), and ``environ.set(dt=0.1)`` sets the step.
The whole simulation is one ``for_loop`` inside ``jit``.

``simulate_pure_jax`` runs the same network written directly in JAX (``lax.scan`` and a hand-kept
ring buffer): the two give the same spikes, so the firing rates agree to 1e-5.

    python examples/ei_network.py               # rates per population; raster in ei_raster.png
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import brainstate

nn = brainstate.nn

# Membrane (mV, ms) and synapse constants.
V_REST, V_RESET, V_TH = -60.0, -60.0, -50.0
TAU_M, TAU_SYN = 20.0, 5.0


class LIF(nn.Dynamics):
    """Leaky integrate-and-fire neurons: ``tau dV/dt = -(V - V_rest) + I``; a spike when
    ``V`` crosses ``V_th``, then ``V = V_reset``."""

    def __init__(self, n: int, v_init):
        super().__init__(n)
        self.v_init = jnp.asarray(v_init)

    def init_state(self, batch_size=None, **kwargs):
        self.V = brainstate.HiddenState(self.v_init)
        self.spike = brainstate.ShortTermState(jnp.zeros(self.varshape))

    def update(self, current):
        dv = lambda v, i: (-(v - V_REST) + i) / TAU_M
        v = nn.exp_euler_step(dv, self.V.value, current)
        spike = (v >= V_TH).astype(v.dtype)
        self.V.value = jnp.where(spike > 0, V_RESET, v)
        self.spike.value = spike
        return spike


class ExpCurrent(nn.Dynamics):
    """Exponential synaptic currents: ``tau_syn dg/dt = -g``, plus the weighted spikes that
    arrive."""

    def init_state(self, batch_size=None, **kwargs):
        self.g = brainstate.HiddenState(jnp.zeros(self.varshape))

    def update(self, arriving):
        self.g.value = nn.exp_euler_step(lambda g: -g / TAU_SYN, self.g.value) + arriving
        return self.g.value


def make_connectivity(n_exc, n_inh, p=0.1, w_exc=0.6, w_inh=-3.0, seed=0):
    """A random network: each pair connected with probability ``p``; ``W[pre, post]``."""
    rng = np.random.RandomState(seed)
    n = n_exc + n_inh
    mask = rng.rand(n, n) < p
    np.fill_diagonal(mask, False)
    sign = np.where(np.arange(n) < n_exc, w_exc, w_inh)[:, None]
    weights = (mask * sign).astype(np.float32)
    v_init = rng.uniform(V_RESET, V_TH, n).astype(np.float32)
    return weights, v_init


class EINet(nn.Module):
    """The network: neurons, synaptic currents, and the delayed spikes linking them."""

    def __init__(self, weights, v_init, delay=1.5, i_ext=12.0):
        super().__init__()
        n = weights.shape[0]
        self.weights = jnp.asarray(weights)
        self.i_ext = i_ext
        self.neurons = LIF(n, v_init)
        self.synapses = ExpCurrent(n)
        # Spikes as they were `delay` ms ago (a StateWithDelay recorded after each update).
        self.delayed_spikes = self.neurons.prefetch_delay('spike', delay)

    def update(self, i):
        arriving = self.delayed_spikes() @ self.weights
        current = self.synapses(arriving)
        return self.neurons(current + self.i_ext)


def simulate(weights, v_init, n_steps, delay=1.5, i_ext=12.0):
    """Run the brainstate network; returns the spikes, ``(n_steps, n)``."""
    net = EINet(weights, v_init, delay, i_ext)
    nn.init_all_states(net)

    @brainstate.transform.jit
    def run(steps):
        return brainstate.transform.for_loop(net.update, steps)

    return np.asarray(run(jnp.arange(n_steps)))


def simulate_pure_jax(weights, v_init, n_steps, dt, delay=1.5, i_ext=12.0):
    """The same network in plain JAX: ``lax.scan`` over steps, spikes kept in a ring buffer of
    ``ceil(delay / dt) + 1`` slots."""
    n = weights.shape[0]
    delay_steps = int(np.ceil(delay / dt))
    length = delay_steps + 1
    weights = jnp.asarray(weights)

    def exp_euler(x, drift, jac):   # x + dt * phi(dt * J) * f(x), phi(z) = (e^z - 1) / z
        z = dt * jac
        return x + dt * (jnp.expm1(z) / z) * drift

    def step(carry, _):
        v, g, buffer, ptr = carry
        delayed = buffer[(ptr - 1 - delay_steps) % length]
        g = exp_euler(g, -g / TAU_SYN, -1.0 / TAU_SYN) + delayed @ weights
        current = g + i_ext
        v = exp_euler(v, (-(v - V_REST) + current) / TAU_M, -1.0 / TAU_M)
        spike = (v >= V_TH).astype(v.dtype)
        v = jnp.where(spike > 0, V_RESET, v)
        buffer = buffer.at[ptr].set(spike)
        return (v, g, buffer, (ptr + 1) % length), spike

    init = (jnp.asarray(v_init), jnp.zeros(n), jnp.zeros((length, n)), 0)
    _, spikes = jax.jit(lambda c: jax.lax.scan(step, c, None, length=n_steps))(init)
    return np.asarray(spikes)


def firing_rates(spikes, n_exc, dt):
    """Mean rates (Hz) of the excitatory and inhibitory populations."""
    seconds = spikes.shape[0] * dt / 1000.0
    return (float(spikes[:, :n_exc].sum() / (n_exc * seconds)),
            float(spikes[:, n_exc:].sum() / ((spikes.shape[1] - n_exc) * seconds)))


def save_raster(spikes, n_exc, dt, path):
    """Save a raster plot (needs matplotlib; returns False without it)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t, i = np.nonzero(spikes)
    fig, ax = plt.subplots(figsize=(8, 4))
    exc = i < n_exc
    ax.scatter(t[exc] * dt, i[exc], s=1, c='tab:blue', label='excitatory')
    ax.scatter(t[~exc] * dt, i[~exc], s=1, c='tab:red', label='inhibitory')
    ax.set_xlabel('time (ms)')
    ax.set_ylabel('neuron')
    ax.legend(loc='upper right', markerscale=5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(n_exc=400, n_inh=100, duration=200.0, dt=0.1, raster='ei_raster.png', seed=0):
    brainstate.environ.set(dt=dt)
    weights, v_init = make_connectivity(n_exc, n_inh, seed=seed)
    n_steps = int(round(duration / dt))
    spikes = simulate(weights, v_init, n_steps)
    reference = simulate_pure_jax(weights, v_init, n_steps, dt)
    rates = firing_rates(spikes, n_exc, dt)
    reference_rates = firing_rates(reference, n_exc, dt)
    print(f'excitatory rate {rates[0]:.3f} Hz, inhibitory rate {rates[1]:.3f} Hz')
    print(f'pure JAX:       {reference_rates[0]:.3f} Hz,                 '
          f'{reference_rates[1]:.3f} Hz')
    if raster and save_raster(spikes, n_exc, dt, raster):
        print(f'raster saved to {raster}')
    return rates, reference_rates, spikes, reference


if __name__ == '__main__':
    main()
