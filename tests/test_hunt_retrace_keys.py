"""Compiled programs are keyed on the pass pipeline and options in force when they were traced,
and on nothing else: a call retraces exactly when the choice it would be traced under differs
from its program's, in its own thread; a choice set again to what it was reuses what was
compiled under it."""

import threading

import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import passes


@pytest.fixture
def restore_pipeline():
    saved = passes.get_default_pipeline()
    yield
    passes.set_default_pipeline(saved)
    passes.set_pass_options(print_ir=None, verify=False)


def _counted_step():
    w = brainstate.ParamState(jnp.ones(3))
    traces = []

    @brainstate.transform.jit
    def step(x):
        traces.append(1)
        unused = jnp.sin(x) * 3.  # dead: dce removes it
        w.value = w.value + x
        return w.value.sum()

    return step, w, traces


def test_setting_the_pipeline_or_options_to_what_they_are_retraces_nothing(restore_pipeline):
    """``set_pass_options()`` with nothing to change, or ``set_default_pipeline`` of the
    pipeline already in force, changes no program: nothing retraces (docs/writing-a-pass.md:
    'while nothing changes, nothing retraces')."""
    step, w, traces = _counted_step()
    x = jnp.float32(1.)
    step(x)
    passes.set_pass_options()
    step(x)
    passes.set_pass_options(verify=False, print_ir=None)
    step(x)
    passes.set_default_pipeline(passes.get_default_pipeline())
    step(x)
    assert len(traces) == 1
    np.testing.assert_allclose(w.value, np.full(3, 5.))


def test_a_pipeline_set_back_reuses_its_program_and_entries_do_not_pile_up(restore_pipeline):
    """Switching the global pipeline back and forth traces once per pipeline; the programs
    compiled under each are reused when it comes back (one jit entry per pipeline, not one per
    switch), and the grad family's cache does the same."""
    step, w, traces = _counted_step()
    x = jnp.float32(1.)
    for _ in range(4):
        passes.set_default_pipeline([])
        step(x)
        passes.set_default_pipeline(passes.DEFAULT_PIPELINE)
        step(x)
    assert len(traces) == 2 and len(step._entries) == 2
    np.testing.assert_allclose(w.value, np.full(3, 9.))

    grad_traces = []

    def loss(x):
        grad_traces.append(1)
        return (w.value * x).sum()

    grad = brainstate.transform.grad(loss, {'w': w})
    for _ in range(4):
        passes.set_default_pipeline([])
        grad(jnp.ones(3))
        passes.set_default_pipeline(passes.DEFAULT_PIPELINE)
        grad(jnp.ones(3))
    assert len(grad_traces) <= 4  # (a first call may run directly, then trace)
    assert sum(len(v) for v in grad._cache.values()) <= 2
