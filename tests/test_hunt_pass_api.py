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
