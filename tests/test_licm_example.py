"""Example pass 3 of docs/writing-a-pass.md (examples/licm_pass.py): loop-invariant code motion
out of a for_loop body, written against the public region API."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import brainstate

from _project_files import load_project_file  # (tests/)


@functools.lru_cache(maxsize=None)  # registering the pass twice would be an error
def load_example():
    return load_project_file('examples/licm_pass.py', 'licm_pass_example')


def _loop(graph):
    loop, = [n for n in graph.walk() if n.kind == 'region']
    return loop


def test_licm_moves_the_invariant_computation_out_of_the_loop_body():
    example = load_example()
    currents = jnp.ones((20, 4))
    traced = brainstate.ir.trace(example.simulate, currents)
    assert {'exp', 'div'} <= {n.name for n in _loop(traced).subgraphs[0].nodes}

    manager = brainstate.passes.PassManager(example.PIPELINE, verify=True)
    graph = manager.run(brainstate.ir.trace(example.simulate, currents))
    loop = _loop(graph)
    body_ops = {n.name for n in loop.subgraphs[0].nodes}
    assert not {'exp', 'div', 'sub'} & body_ops
    assert {'exp', 'div', 'sub'} <= {n.name for n in graph.nodes}
    assert manager.statistics()['loop-invariant-code-motion'][
        'operations hoisted out of loops'] == 3
    # dce dropped tau and -0.1/tau, which the body no longer uses: exp and 1-exp remain.
    assert loop.params['num_consts'] == 2
    assert [v.producer.name for v in brainstate.ir.region_kind(loop).signature(loop).consts] \
        == ['exp', 'sub']


def test_licm_in_jit_gives_the_values_of_no_optional_pass_and_of_pure_jax():
    example = load_example()
    neuron = example.neuron
    currents = jax.random.normal(jax.random.key(0), (30, 4))
    runs = {}
    for passes in ([], example.PIPELINE):
        neuron.V.value = jnp.full(4, 0.25)
        ys = brainstate.transform.jit(example.simulate, passes=passes)(currents)
        runs[str(passes)] = (np.asarray(ys), np.asarray(neuron.V.value))
    for plain, moved in zip(runs['[]'], runs[example.PIPELINE]):
        np.testing.assert_array_equal(plain, moved)

    tau = np.linspace(5., 20., 4).astype(np.float32)

    def pure(v, xs):
        decay = jnp.exp(-0.1 / tau)

        def step(v, x):
            v = v * decay + x * (1. - decay)
            return v, v
        return jax.lax.scan(step, v, xs)

    v_final, ys = pure(jnp.full(4, 0.25), currents)
    np.testing.assert_allclose(runs['[]'][0], ys, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(runs['[]'][1], v_final, rtol=1e-6, atol=1e-7)


def test_licm_leaves_a_loop_without_invariant_work_unchanged():
    load_example()

    def run(xs):
        return brainstate.transform.scan(lambda c, x: (c * x, c), 1., xs)

    graph = brainstate.passes.PassManager('hoist-states', verify=True).run(
        brainstate.ir.trace(run, jnp.arange(1., 4.)))
    before = str(graph)
    stats = brainstate.passes.PassStatistics()
    brainstate.passes.get_pass('loop-invariant-code-motion')(graph, stats)
    assert str(graph) == before and not stats
