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


def test_setting_the_pipeline_or_options_to_what_they_are_retraces_nothing(
        restore_pipeline, counted_step):
    """``set_pass_options()`` with nothing to change, or ``set_default_pipeline`` of the
    pipeline already in force, changes no program: nothing retraces (docs/writing-a-pass.md:
    'while nothing changes, nothing retraces')."""
    step, w, traces = counted_step()
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


def test_a_pipeline_set_back_reuses_its_program_and_entries_do_not_pile_up(
        restore_pipeline, counted_step):
    """Switching the global pipeline back and forth traces once per pipeline; the programs
    compiled under each are reused when it comes back (one jit entry per pipeline, not one per
    switch), and the grad family's cache does the same."""
    step, w, traces = counted_step()
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


def _count_runs(entry):
    """Count the runs of a jit entry's compiled program (an entry that donates its state runs
    ``jitted`` on both paths)."""
    assert entry.may_donate
    runs = []
    compiled = entry.jitted

    def counted(*args, **kwargs):
        runs.append(1)
        return compiled(*args, **kwargs)

    entry.jitted = counted
    entry._fast_calls.clear()
    entry.owner.__dict__.pop('_call', None)  # (the general path makes it anew)
    return runs


def test_each_thread_runs_the_program_of_its_own_pipeline(restore_pipeline, counted_step):
    """While one thread is in a ``default_pipeline`` block, a call of the same jitted function
    in another thread runs the program traced under the global pipeline, and a call in the
    block runs the block's, whichever thread called last (jit's cached call included)."""
    step, w, traces = counted_step()
    x = jnp.float32(1.)
    step(x)
    step(x)
    global_runs = _count_runs(step._last)

    def other_thread():
        step(x)
        step(x)

    with passes.default_pipeline([]):
        step(x)
        step(x)
        block_entry = step._last
        assert len(traces) == 2 and not global_runs
        block_runs = _count_runs(block_entry)
        step(x)
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(global_runs) == 2 and len(block_runs) == 1
        step(x)
        step(x)
        assert len(global_runs) == 2 and len(block_runs) == 3
    step(x)
    assert len(global_runs) == 3 and len(traces) == 2
    np.testing.assert_allclose(w.value, np.full(3, 11.))  # ten calls


def test_a_grad_inside_jit_retraces_its_function_once_after_a_pipeline_change(restore_pipeline):
    """A grad run directly inside a jit's trace, then traced into a program when the pipeline
    changes (a user pipeline cannot run directly), traces the function once for that, not a
    second time for the same signature (the direct call it remembered for ``stateful_target``
    is the one just traced)."""
    w = brainstate.ParamState(jnp.ones(3))
    traces = []

    def loss(x):
        traces.append(1)
        return (w.value * x).sum()

    grad = brainstate.transform.grad(loss, {'w': w})

    @brainstate.transform.jit
    def outer(x):
        return grad(x)['w'].sum()

    x = jnp.ones(3)
    outer(x)
    assert len(traces) == 1
    passes.set_default_pipeline(['dce'])
    np.testing.assert_allclose(outer(x), 3.)
    assert len(traces) == 2
    assert grad.stateful_target.get_jaxpr(x) is not None
    assert len(traces) == 2


def test_make_jaxpr_in_two_threads_under_two_pipelines_traces_each_once(restore_pipeline):
    """While one thread is in a ``default_pipeline`` block, a StatefulFunction called in turn
    by that thread and another keeps one compilation for each pipeline: each thread traces once,
    gets the jaxpr of its own pipeline, and then retraces no more (it retraced at every call,
    each thread replacing the other's compilation)."""
    w = brainstate.ParamState(jnp.ones(3))
    traces = []

    def f(x):
        traces.append(1)
        unused = jnp.sin(x) * 3.  # dead: the default pipeline removes it
        return (w.value * x).sum()

    sf = brainstate.transform.StatefulFunction(f)
    x = jnp.ones(3)
    sf.get_jaxpr(x)
    go, done = threading.Event(), threading.Event()
    seen = []

    def in_block():
        with passes.default_pipeline([]):
            for _ in range(4):
                go.wait()
                go.clear()
                seen.append('sin' in str(sf.get_jaxpr(x)))
                done.set()

    thread = threading.Thread(target=in_block)
    thread.start()
    mine = []
    for _ in range(4):
        mine.append('sin' in str(sf.get_jaxpr(x)))
        go.set()
        done.wait()
        done.clear()
    thread.join()
    assert seen == [True] * 4 and mine == [False] * 4
    assert len(traces) == 2


def test_an_eager_grad_called_in_turn_under_two_pipelines_stops_tracing(restore_pipeline):
    """An eager grad called in turn by a thread in a ``default_pipeline`` block and by another
    thread keeps a compiled program for each: after each thread's first calls, calls run it
    untraced (the eager runner kept one program per function and signature, so each thread
    replaced the other's and every call traced again or ran op by op)."""
    w = brainstate.ParamState(jnp.ones(3))
    grad = brainstate.transform.grad(lambda x: (w.value * x).sum(), {'w': w})
    x = jnp.ones(3)
    go, done = threading.Event(), threading.Event()
    results = []

    def in_block():
        with passes.default_pipeline(['dce']):
            for _ in range(6):
                go.wait()
                go.clear()
                results.append(grad(x)['w'])
                done.set()

    thread = threading.Thread(target=in_block)
    thread.start()
    info = None
    for i in range(6):
        if i == 3:
            info = brainstate.transform.eager_cache_info()
        results.append(grad(x)['w'])
        go.set()
        done.wait()
        done.clear()
    thread.join()
    after = brainstate.transform.eager_cache_info()
    assert after['traces'] == info['traces'] and after['direct'] == info['direct']
    assert after['untraced_hits'] == info['untraced_hits'] + 6
    for r in results:
        np.testing.assert_allclose(r, np.ones(3))


def test_a_jit_given_a_pass_manager_does_not_retrace_for_the_default_pipeline(restore_pipeline):
    """``jit(passes=PassManager(...))`` runs its manager, with the manager's own options,
    whatever the default pipeline and pass options are: changing them (globally, or in a
    ``default_pipeline`` block) retraces nothing, and its cached call stays armed. A function
    that calls a grad with the default passes inside it still retraces: that inner program
    follows the default pipeline."""
    w = brainstate.ParamState(jnp.ones(3))
    traces = []

    @brainstate.transform.jit(passes=passes.PassManager(['dce']))
    def step(x):
        traces.append(1)
        w.value = w.value + x
        return w.value.sum()

    x = jnp.float32(1.)
    step(x)
    step(x)
    passes.set_default_pipeline([])
    passes.set_pass_options(verify=True)
    step(x)
    with passes.default_pipeline(['cse']):
        step(x)
    step(x)
    step(x)
    assert len(traces) == 1 and len(step._entries) == 1
    assert step.__call__ is step._last.fast_call(1)
    np.testing.assert_allclose(w.value, np.full(3, 7.))

    inner = []

    def loss(x):
        inner.append(1)
        return (w.value * x).sum()

    grad = brainstate.transform.grad(loss, {'w': w})

    @brainstate.transform.jit(passes=passes.PassManager(['dce']))
    def outer(x):
        return grad(x)['w'].sum()

    outer(jnp.ones(3))
    outer(jnp.ones(3))
    assert len(inner) == 1
    passes.set_default_pipeline(passes.DEFAULT_PIPELINE)
    outer(jnp.ones(3))
    assert len(inner) == 2


def test_a_pass_manager_jit_keeps_its_cached_call_while_a_block_is_open(restore_pipeline):
    """A jit whose programs do not follow the default pipeline (``passes=PassManager``) runs
    its cached call also while a ``default_pipeline`` block is open in another thread."""
    w = brainstate.ParamState(jnp.ones(3))

    @brainstate.transform.jit(passes=passes.PassManager(['dce']))
    def step(x):
        w.value = w.value + x
        return w.value.sum()

    x = jnp.float32(1.)
    step(x)
    entered, leave = threading.Event(), threading.Event()

    def in_block():
        with passes.default_pipeline([]):
            entered.set()
            leave.wait()

    thread = threading.Thread(target=in_block)
    thread.start()
    entered.wait()
    try:
        step(x)
        step(x)
        assert step._last.armed == brainstate._state.CALL_EPOCH[0]
        assert step.__call__ is step._last.fast_call(1)
    finally:
        leave.set()
        thread.join()
    np.testing.assert_allclose(w.value, np.full(3, 4.))


def test_the_global_pipeline_set_inside_a_block_does_not_retrace_the_blocks_programs(
        restore_pipeline, counted_step):
    """Inside a ``default_pipeline`` block the block's pipeline is the one in force: setting
    the global pipeline there retraces nothing traced in the block (the pass options, global
    also there, still do); the global one applies again after the block."""
    step, w, traces = counted_step()
    x = jnp.float32(1.)
    with passes.default_pipeline([]):
        step(x)
        passes.set_default_pipeline(['dce'])
        step(x)
        assert len(traces) == 1
        passes.set_pass_options(verify=True)
        step(x)
        assert len(traces) == 2
    step(x)
    assert len(traces) == 3 and 'sin' not in str(step._last.last_program.graph)
    np.testing.assert_allclose(w.value, np.full(3, 5.))


def test_stateful_function_getters_give_each_thread_its_own_compilation(restore_pipeline):
    """After a thread in a ``default_pipeline`` block compiled a key that another thread
    compiled under the global pipeline, the ``*_by_cache`` getters (and the calls that use
    them) give each thread the compilation of its own pipeline, not the latest of either."""
    w = brainstate.ParamState(jnp.ones(3))

    def f(x):
        unused = jnp.sin(x) * 3.  # dead: the default pipeline removes it
        return (w.value * x).sum()

    sf = brainstate.transform.StatefulFunction(f)
    x = jnp.ones(3)
    key = sf.get_arg_cache_key(x, compile_if_miss=True)
    seen = []

    def in_block():
        with passes.default_pipeline([]):
            sf.make_jaxpr(x)
            seen.append('sin' in str(sf.get_jaxpr_by_cache(key)))

    thread = threading.Thread(target=in_block)
    thread.start()
    thread.join()
    assert seen == [True]
    assert 'sin' not in str(sf.get_jaxpr_by_cache(key))
    assert 'sin' not in str(sf.get_jaxpr(x))
    np.testing.assert_allclose(sf(x), 3.)


def test_a_block_entered_inside_the_traced_function_keys_on_the_pipeline_outside(
        restore_pipeline):
    """A ``default_pipeline`` block the traced function enters itself is part of the function:
    a jit given a PassManager, calling a grad inside such a block, keys its program on the
    pipeline in force outside, and is not traced again at each call that takes the general
    path."""
    w = brainstate.ParamState(jnp.ones(3))
    traces = []
    grad = brainstate.transform.grad(lambda x: (w.value * x).sum(), {'w': w})

    @brainstate.transform.jit(passes=passes.PassManager(['dce']))
    def outer(x):
        traces.append(1)
        with passes.default_pipeline(['cse']):
            return grad(x)['w'].sum()

    x = jnp.ones(3)
    for _ in range(3):
        outer(x)
        brainstate._state.recheck_cached_calls()  # (the next call takes the general path)
    assert len(traces) == 1
    passes.set_pass_options(verify=True)  # global, in force in the block too: retrace
    np.testing.assert_allclose(outer(x), 3.)
    assert len(traces) == 2


def test_the_cached_call_arms_again_after_each_kind_of_change(restore_pipeline, counted_step):
    """After the pipeline or the options change, or a ``default_pipeline`` block closes, the
    next call takes the general path (retracing where the choice changed) and the one after
    runs jit's cached call again."""
    step, w, traces = counted_step()
    x = jnp.float32(1.)

    def armed():
        entry = step._last
        return entry.armed == brainstate._state.CALL_EPOCH[0] and \
            step.__call__ is entry.fast_call(1)

    step(x)
    step(x)
    assert armed()
    for change, changes in ((lambda: passes.set_default_pipeline([]), True),
                            (lambda: passes.set_pass_options(verify=True), True),
                            (lambda: passes.set_pass_options(verify=True), False),
                            (lambda: passes.set_default_pipeline(passes.DEFAULT_PIPELINE), True)):
        change()
        assert armed() is not changes
        step(x)
        step(x)
        assert armed()
    with passes.default_pipeline(['dce']):
        step(x)
        step(x)
        assert not armed()  # (a block is open: see _Entry.arm)
    step(x)
    step(x)
    assert armed()
    assert len(traces) == 5
    np.testing.assert_allclose(w.value, np.full(3, 15.))  # fourteen calls


def test_a_block_left_in_another_context_still_counts_as_closed(restore_pipeline):
    """A ``default_pipeline`` block whose exit fails (left from another context than it was
    entered in: the context variable refuses the reset) still counts as closed: jit's cached
    calls arm again afterwards."""
    import contextvars
    from brainstate.passes._default_pipeline import OPEN_BLOCKS
    open_before = OPEN_BLOCKS[0]
    block = passes.default_pipeline([])
    contextvars.copy_context().run(block.__enter__)
    with pytest.raises(ValueError):
        block.__exit__(None, None, None)
    assert OPEN_BLOCKS[0] == open_before
