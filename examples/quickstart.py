"""brainstate in one screen: a stateful step, compiled, run, and its state IR shown.

    python examples/quickstart.py

A tiny recurrent network keeps its hidden activity and a step counter in States. The step
function reads and writes them like ordinary Python attributes; brainstate.transform.jit traces
it into the state IR, hoists the state operations to the edges, lowers it to a jaxpr and
compiles it with XLA. Under raw `jax.jit` the updates would be lost; here they are kept.
"""

import jax
import jax.numpy as jnp

import brainstate


class RNN(brainstate.Module):
    def __init__(self, n_in, n_hidden):
        super().__init__()
        k1, k2 = jax.random.split(jax.random.key(0))
        self.w = brainstate.ParamState({
            'input': jax.random.normal(k1, (n_in, n_hidden)) / n_in ** 0.5,
            'recurrent': jax.random.normal(k2, (n_hidden, n_hidden)) / n_hidden ** 0.5,
        })
        self.h = brainstate.HiddenState(jnp.zeros(n_hidden))
        self.steps = brainstate.ShortTermState(jnp.zeros((), jnp.int32))


net = RNN(n_in=3, n_hidden=4)


@brainstate.transform.jit
def step(x):
    net.h.value = jnp.tanh(x @ net.w.value['input'] + net.h.value @ net.w.value['recurrent'])
    net.steps.value = net.steps.value + 1
    return net.h.value.sum()


def main():
    x = jnp.ones(3)
    for _ in range(5):
        out = step(x)
    print(f'after 5 calls: steps = {int(net.steps.value)}, output = {float(out):.4f}')
    print('hidden state:', net.h.value)
    print()
    print('The state IR of one call, as traced:')
    print(step.ir(x))
    print()
    print('After the passes: hoist-states leaves one read per state at entry and one write at')
    print('exit; the analyses mark read-only states and the buffers donated to XLA:')
    print(step.optimized_ir(x))
    print()
    print('States by role:', {k: type(v).__name__ for k, v in net.states().items()})


if __name__ == '__main__':
    main()
