"""cse and fold-constants treat constants as equal only when dtype, shape and bits are equal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import ir, passes


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize('fun, x', [
    (lambda x: (x * 0.0, x * -0.0), -1.0),
    (lambda x: (x * 0.0, x * -0.0), 2.0),
    (lambda x: (1 / (x * 0.0), 1 / (x * -0.0)), 1.0),
    (lambda x: (1 / (x * 0.0), 1 / (x * -0.0)), -3.0),
    (lambda x: (x + 0.0, x + -0.0), -0.0),
    # Folded literal arithmetic: 0.0 * 1.0 and -0.0 * 1.0 are different constants.
    (lambda x: (x + 0.0 * 1.0, x + -0.0 * 1.0), -0.0),
])
def test_signed_zeros_match_raw_jax_under_the_default_pipeline(fun, x):
    ours = brainstate.transform.jit(fun)(x)
    want = jax.jit(fun)(x)
    for a, b in zip(ours, want):
        assert same_bits(a, b), (ours, want)


def test_cse_keeps_zero_and_negative_zero_apart():
    graph = ir.trace(lambda x: (x * 0.0, x * -0.0, x * 0.0), 1.0)
    stats = passes.PassStatistics()
    passes.common_subexpression_elimination(graph, stats)
    assert stats['nodes merged'] == 1  # only the repeated x * 0.0
    assert len(graph.find_nodes(name='mul')) == 2


def test_nans_compare_by_bit_pattern():
    f32 = jax.core.ShapedArray((), jnp.float32)
    nan_a = np.frombuffer(np.uint32(0x7fc00000).tobytes(), np.float32)[0]
    nan_b = np.frombuffer(np.uint32(0x7fc00001).tobytes(), np.float32)[0]
    assert ir.Literal(nan_a, f32).key() == ir.Literal(np.float32(nan_a), f32).key()
    assert ir.Literal(nan_a, f32).key() != ir.Literal(nan_b, f32).key()
    assert ir.Literal(0.0, f32).key() != ir.Literal(-0.0, f32).key()
    assert ir.Literal(1, jax.core.ShapedArray((), jnp.int32)).key() != \
        ir.Literal(1.0, f32).key()


def test_fold_constants_caches_signed_zeros_apart():
    f32 = jax.core.ShapedArray((), jnp.float32)
    graph = ir.Graph('g')
    x = graph.add_input(f32)
    results = []
    for zero in (0.0, -0.0):
        product = graph.create_node('primitive', op=jax.lax.mul_p, output_avals=[f32], inputs=[
            ir.Literal(np.float32(zero), f32), ir.Literal(np.float32(2.0), f32)])
        total = graph.create_node('primitive', op=jax.lax.add_p, output_avals=[f32],
                                  inputs=[x, product.outputs[0]])
        results.append(total.outputs[0])
    graph.set_outputs(results)
    stats = passes.PassStatistics()
    passes.fold_constants(graph, stats)
    assert stats['operations folded'] == 2
    folded = [np.signbit(np.asarray(n.inputs[1].val)) for n in graph.find_nodes(name='add')]
    assert folded == [False, True]
