"""Adversarial checks of the pass and IR public API, as a user writing a pass uses it."""

import threading

import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import passes


def test_default_pipeline_blocks_in_two_threads_restore_their_own_choice():
    """Two threads enter and leave ``default_pipeline`` blocks interleaved (A enters, B enters,
    A leaves, B leaves): each sees its own pipeline inside its block, and afterwards the global
    default is what it was (before, B's exit restored A's pipeline for good)."""
    before = passes.get_default_pipeline()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with passes.default_pipeline('dce'):
            a_in.set()
            b_in.wait(5)
            seen['a'] = passes.get_default_pipeline()
        a_out.set()

    def b():
        a_in.wait(5)
        with passes.default_pipeline('cse'):
            b_in.set()
            a_out.wait(5)
            seen['b'] = passes.get_default_pipeline()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {'a': 'dce', 'b': 'cse'}
    assert passes.get_default_pipeline() == before


def test_default_pipeline_block_nested_with_an_exception_restores_and_is_used():
    state = brainstate.State(jnp.ones(3))
    ran = []

    def spy(graph):
        ran.append(len(graph.nodes))

    def step(x):
        state.value = state.value + x
        return state.value * 2.0

    before = passes.get_default_pipeline()
    with pytest.raises(RuntimeError):
        with passes.default_pipeline('dce'):
            with passes.default_pipeline([spy]):
                out = brainstate.transform.jit(step)(jnp.ones(3))
                assert ran
                raise RuntimeError('inside')
    assert passes.get_default_pipeline() == before
    np.testing.assert_array_equal(out, (np.ones(3) + 1) * 2)


def test_a_user_pass_registered_under_a_builtin_name_runs_on_the_first_eager_call():
    """``register('dce', replace=True)``: the default pipeline string is unchanged, but it now
    names the user's pass, which must run on the first eager ``grad`` call as on later ones
    (a first call may skip only brainstate's own passes)."""
    from brainstate.passes import _pass
    builtin_origin = _pass._REGISTERED_FROM['dce']
    builtin = passes.get_pass('dce')
    ran = []

    @passes.register('dce', replace=True)
    def counting_dce(graph, stats):
        ran.append(True)
        builtin.run(graph, stats)

    try:
        weight = brainstate.ParamState(jnp.arange(3.0))
        grads = brainstate.transform.grad(lambda x: jnp.sum(weight.value * x), weight)
        np.testing.assert_array_equal(grads(jnp.full(3, 2.0)), np.full(3, 2.0))
        assert ran, 'the first eager call skipped the pass registered as dce'
    finally:
        passes.register('dce', replace=True)(builtin.function)
    assert _pass._REGISTERED_FROM['dce'] == builtin_origin and _pass.BUILTINS['intact']
