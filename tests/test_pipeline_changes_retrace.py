"""A compiled program is reused only under the pass pipeline it was traced with: changing the
default pipeline (``set_default_pipeline``, a ``default_pipeline`` block) or the pass options
(``set_pass_options``: print the IR, verify) after a function ran makes its next call trace
again under the new choice, as a changed ``brainstate.environ`` setting does. Nothing retraces
while the choice stays as it was."""

import io
import threading

import jax.numpy as jnp
import numpy as np

import brainstate
from brainstate import passes


def test_set_default_pipeline_after_a_call_retraces_under_the_new_one(
        restore_pipeline, counted_step):
    step, w, traces = counted_step()
    x = jnp.float32(1.)
    step(x)
    step(x)
    assert len(traces) == 1
    passes.set_default_pipeline([])  # nothing but what lowering needs: the dead sin stays
    step(x)
    assert len(traces) == 2
    assert 'sin' in str(step._last.last_program.graph)
    step(x)
    assert len(traces) == 2  # nothing changed since
    passes.set_default_pipeline(passes.DEFAULT_PIPELINE)
    step(x)
    assert len(traces) == 2  # back to the first choice: its program, traced under it, again
    assert 'sin' not in str(step._last.last_program.graph)
    np.testing.assert_allclose(w.value, np.full(3, 6.))


def test_print_ir_set_after_the_first_call_prints_at_the_next(restore_pipeline, counted_step):
    step, w, traces = counted_step()
    step(jnp.float32(1.))
    out = io.StringIO()
    passes.set_pass_options(print_ir='after', stream=out)
    step(jnp.float32(1.))
    assert len(traces) == 2 and 'state_write' in out.getvalue()
    passes.set_pass_options(print_ir=None)
    printed = out.getvalue()
    step(jnp.float32(1.))
    step(jnp.float32(1.))
    assert len(traces) == 3 and out.getvalue() == printed  # traced once more, printing nothing


def test_a_default_pipeline_block_retraces_inside_and_after_in_its_thread_only(
        restore_pipeline, counted_step):
    step, w, traces = counted_step()
    x = jnp.float32(1.)
    step(x)
    seen = {}

    def other_thread():
        step(x)  # the global pipeline, as traced: no retrace
        seen['traces'] = len(traces)

    with passes.default_pipeline([]):
        step(x)
        assert len(traces) == 2 and 'sin' in str(step._last.last_program.graph)
        step(x)
        assert len(traces) == 2
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen['traces'] == 2  # the other thread reused the first program (the global one)
    step(x)
    assert len(traces) == 2  # the program traced under the global pipeline is still there
    assert 'sin' not in str(step._last.last_program.graph)
    np.testing.assert_allclose(w.value, np.full(3, 6.))  # five calls


def test_make_jaxpr_and_grad_follow_the_pipeline_too(restore_pipeline):
    w = brainstate.ParamState(jnp.ones(3))
    traces = []

    def loss(x):
        traces.append(1)
        unused = jnp.sin(x) * 3.
        return (w.value * x).sum()

    make = brainstate.transform.StatefulFunction(loss)
    x = jnp.ones(3)
    before = str(make.get_jaxpr(x))
    passes.set_default_pipeline([])
    after = str(make.get_jaxpr(x))
    assert 'sin' not in before and 'sin' in after
    grad = brainstate.transform.grad(loss, {'w': w})
    traces.clear()
    g1 = grad(x)
    grad(x)
    assert len(traces) == 1
    passes.set_default_pipeline(passes.DEFAULT_PIPELINE)
    g2 = grad(x)
    assert len(traces) == 2
    np.testing.assert_allclose(g1['w'], g2['w'])


def test_a_jit_given_its_own_pipeline_still_follows_the_pass_options(restore_pipeline):
    """``jit(passes=...)`` fixes the passes, but the options (printing, verifying) are global:
    changing them retraces too; changing the default pipeline costs it one harmless retrace."""
    w = brainstate.ParamState(jnp.ones(3))
    traces = []

    @brainstate.transform.jit(passes=['dce'])
    def step(x):
        traces.append(1)
        w.value = w.value + x
        return w.value.sum()

    step(1.)
    out = io.StringIO()
    passes.set_pass_options(print_ir='after', stream=out)
    step(1.)
    assert len(traces) == 2 and 'after dce' in out.getvalue()
