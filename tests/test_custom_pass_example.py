"""The custom passes of docs/writing-a-pass.md (examples/custom_passes.py) work as documented."""

import importlib.util
import os

import jax.numpy as jnp
import numpy as np

import brainstate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example():
    spec = importlib.util.spec_from_file_location(
        'custom_passes_example', os.path.join(ROOT, 'examples', 'custom_passes.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_documented_passes_analyze_and_rewrite():
    example = load_example()
    manager = brainstate.passes.PassManager(
        'hoist-states,drop-multiply-by-one,dce,state-flops')
    graph = manager.run(brainstate.ir.trace(example.step, jnp.ones(8)))
    assert not graph.find_nodes(name='mul')
    writes = {n.state.label(): n.meta['flops'] for n in graph.find_nodes('state_write')}
    # 8x8 matvec (2*8*8) + add (8) + tanh (8) = 144; the total adds one more add.
    assert writes == {'Layer.h': 144, 'Layer.total': 145}
    stats = manager.statistics()
    assert stats['drop-multiply-by-one']['multiplies removed'] == 1
    assert '# flops=144' in graph.format()


def test_documented_passes_in_jit_compute_the_same_values():
    example = load_example()
    x = jnp.linspace(-1, 1, 8)
    custom = brainstate.transform.jit(
        example.step, passes='hoist-states,drop-multiply-by-one,dce,state-flops')(x)
    h_custom = example.layer.h.value
    example.layer.h.value = jnp.zeros(8)
    example.layer.total.value = jnp.zeros(())
    plain = brainstate.transform.jit(example.step, passes=[])(x)
    np.testing.assert_allclose(custom, plain, rtol=1e-6)
    np.testing.assert_allclose(h_custom, example.layer.h.value, rtol=1e-6)


def test_a_multiply_by_another_number_is_kept():
    example = load_example()
    graph = brainstate.ir.trace(lambda x: (x * 2.0) * 1.0, jnp.ones(3))
    stats = brainstate.passes.PassStatistics()
    brainstate.passes.get_pass('drop-multiply-by-one')(graph, stats)
    assert stats['multiplies removed'] == 1
    (mul,) = graph.find_nodes(name='mul')
    assert float(mul.inputs[1].val) == 2.0
    assert example is not None
