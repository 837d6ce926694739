"""The example passes of docs/writing-a-pass.md (examples/custom_passes.py), written only against
the public API: they run through PassManager(verify=True) and jit(passes=...), and compute what
passes=[] computes, final State values included."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate

from _project_files import load_project_file  # (tests/)


def load_example():
    # (registers its passes again: the same definitions)
    return load_project_file('examples/custom_passes.py', 'custom_passes_example')


@pytest.fixture(scope='module')
def example():
    return load_example()


def body_text(graph):
    return [line.split('    #')[0].strip() for line in graph.format().splitlines()]


def reset(layer):
    layer.w.value = jnp.arange(64, dtype=jnp.float32).reshape(8, 8) / 100 - 0.3
    layer.h.value = jnp.linspace(-1, 1, 8)
    layer.total.value = jnp.float32(-0.0)


def run_twice(example, passes, x):
    """Two calls (the second reads what the first wrote); returns results and final states."""
    reset(example.layer)
    f = brainstate.transform.jit(example.step, passes=passes)
    results = [f(x), f(x * 2)]
    states = {s.label(): np.asarray(s.value) for s in example.layer.states().values()}
    return results, states


def pure_jax_step(w, h, total, x):
    """The same math in plain JAX."""
    h = jnp.tanh(x @ w + h)
    for i in range(8):
        total = total + h[i]
    return h, h, total


def test_the_rewrite_removes_every_identity_and_only_those(example):
    manager = brainstate.passes.PassManager('hoist-states,drop-identity-arithmetic',
                                            verify=True)
    graph = manager.run(brainstate.ir.trace(example.step, jnp.ones(8)))
    stats = manager.statistics()['drop-identity-arithmetic']
    assert stats == {'mul removed': 1, 'add removed': 2}  # one of them inside the loop body
    text = '\n'.join(body_text(graph))
    assert ' 1.0:f32[]' not in text and '-0.0:f32[]' not in text


def test_the_rewrite_keeps_non_identities(example):
    graph = brainstate.ir.trace(
        lambda x: (x + 0.0, x * 2.0, x * jnp.ones((2, 3)), jnp.int32(2) * 3, x - -0.0),
        jnp.ones(3))
    before = graph.format()
    brainstate.passes.PassManager('drop-identity-arithmetic', verify=True).run(graph)
    assert graph.format() == before


def test_the_analysis_counts_flops_depending_on_each_read(example):
    manager = brainstate.passes.PassManager(example.PIPELINE, verify=True)
    graph = manager.run(brainstate.ir.trace(example.step, jnp.ones(8)))
    flops = {n.state.label(): n.meta['flops'] for n in graph.find_nodes('state_read')}
    # w: the 8x8 matvec (2*8*8) + add (8) + tanh (8) + the loop (8 trips of one add);
    # h: add + tanh + the loop; total: only the loop.
    assert flops == {'Layer.w': 128 + 8 + 8 + 8, 'Layer.h': 8 + 8 + 8, 'Layer.total': 8}
    assert manager.statistics()['state-read-flops']['flops depending on state reads'] == 184
    assert '# flops=152' in graph.format()
    assert [r.changed for r in manager.records][-1] is False  # an analysis edits nothing


@pytest.mark.parametrize('passes', [
    'hoist-states,drop-identity-arithmetic,dce,state-read-flops',
    'drop-identity-arithmetic',
    'state-read-flops,cse',
    brainstate.passes.DEFAULT_PIPELINE + ',drop-identity-arithmetic,state-read-flops',
])
def test_jit_with_the_example_passes_matches_no_passes(example, passes):
    x = jnp.linspace(-2, 2, 8)
    want_results, want_states = run_twice(example, [], x)
    got_results, got_states = run_twice(example, passes, x)
    for got, want in zip(got_results, want_results):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert got_states.keys() == want_states.keys()
    for key in want_states:
        np.testing.assert_array_equal(got_states[key], want_states[key])
    # ... and both compute the math itself.
    reset(example.layer)
    w, h, total = (np.asarray(v) for v in (example.layer.w.value, example.layer.h.value,
                                           example.layer.total.value))
    out, h, total = pure_jax_step(w, h, total, x)
    out2, h, total = pure_jax_step(w, h, total, x * 2)
    np.testing.assert_allclose(want_results[1], out2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(want_states['Layer.h'], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(want_states['Layer.total'], total, rtol=1e-5, atol=1e-6)


def test_verified_pipeline_under_jit(example, monkeypatch):
    monkeypatch.setitem(brainstate.passes._default_pipeline._settings, 'verify', True)
    x = jnp.linspace(-1, 1, 8)
    got, _ = run_twice(example, example.PIPELINE, x)
    want, _ = run_twice(example, [], x)
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))


def test_negative_zero_stays_negative_through_the_rewrite(example):
    f = lambda x: (x + (-0.0)) * 1.0
    ours = brainstate.transform.jit(f, passes='drop-identity-arithmetic')(-0.0)
    assert np.signbit(np.asarray(ours)) and np.signbit(np.asarray(jax.jit(f)(-0.0)))
