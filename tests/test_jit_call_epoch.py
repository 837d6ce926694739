"""The cached jit call's one check, ``CALL_EPOCH`` (brainstate/_state.py): every event after which
a cached entry may no longer fit bumps it, and the generated call then takes the general path,
which checks, runs and arms the entry again. Each test here fails if its event stops bumping
the epoch (or stops being checked); numbers are compared with hand-written pure JAX. Also the
flat form of the compiled function (state leaves and arguments as positional arguments)."""

import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import _state


def epoch():
    return _state.CALL_EPOCH[0]


def armed_step(state, other=None):
    """A jitted ``state += x`` (and ``other *= 2``), called until its cached call is armed."""
    @brainstate.transform.jit
    def step(x):
        state.value = state.value + x
        if other is not None:
            other.value = other.value * 2.
        return state.value.sum()

    for _ in range(3):
        step(jnp.ones(3))
    assert step._last.armed == epoch(), 'the cached call should be armed by now'
    return step


# -- every event that must invalidate bumps the epoch -------------------------------------------

def test_a_new_shape_dtype_or_structure_bumps_the_epoch():
    s = brainstate.ShortTermState(jnp.zeros(3))
    before = epoch()
    s.value = jnp.ones(3)  # same avals: nothing to recheck
    assert epoch() == before
    s.value = jnp.ones(4)
    assert epoch() == before + 1
    s.value = jnp.ones(4, jnp.int32)
    assert epoch() == before + 2
    s.value = (jnp.ones(4), jnp.ones(2))
    assert epoch() == before + 3


def test_a_replaced_state_attribute_bumps_the_epoch():
    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = brainstate.ParamState(jnp.ones(3))

    net = Net()
    before, set_before = epoch(), _state.STATE_SET_EPOCH[0]
    net.w = brainstate.ParamState(jnp.ones(3))
    assert epoch() == before + 1 and _state.STATE_SET_EPOCH[0] == set_before + 1


def test_a_brainstate_trace_starting_bumps_the_epoch():
    s = brainstate.ShortTermState(jnp.zeros(3))
    step = armed_step(s)
    seen = []

    @brainstate.transform.jit
    def other(x):
        seen.append(epoch())
        return x * 2

    before = epoch()
    other(jnp.ones(2))
    assert seen and seen[0] > before
    assert step._last.armed != epoch()  # disarmed: the next call checks again


def test_debug_checks_switched_on_bump_the_epoch(restore_debug_flag):
    before = epoch()
    with jax.debug_infs(True):
        assert epoch() > before


def test_packing_releasing_and_unpacking_bump_the_epoch():
    states = [brainstate.ShortTermState(jnp.zeros(3)) for _ in range(3)]
    before = epoch()
    pack = brainstate.pack_states(states)
    assert epoch() > before
    before = epoch()
    pack.unpack()
    assert epoch() > before


# -- and the cached call then does the right thing ---------------------------------------------

def test_a_replaced_state_attribute_is_the_one_written():
    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.h = brainstate.ShortTermState(jnp.zeros(3))

    net = Net()

    @brainstate.transform.jit
    def step(x):
        net.h.value = net.h.value + x
        return net.h.value.sum()

    for _ in range(3):
        step(jnp.ones(3))
    old = net.h
    net.h = brainstate.ShortTermState(jnp.full(3, 10.))
    np.testing.assert_allclose(step(jnp.ones(3)), 33.)
    np.testing.assert_allclose(net.h.value, 11.)
    np.testing.assert_allclose(old.value, 3.)  # the replaced state is left alone


def test_a_state_given_another_structure_is_read_as_it_is_now():
    s = brainstate.ShortTermState(jnp.zeros(3))

    @brainstate.transform.jit
    def step(x):
        s.value = jax.tree.map(lambda v: v + x, s.value)
        return x.sum()

    for _ in range(3):
        step(jnp.ones(3))
    s.value = {'a': jnp.zeros(3), 'b': jnp.ones(3)}
    step(jnp.ones(3))
    step(jnp.ones(3))
    np.testing.assert_allclose(s.value['a'], 2.)
    np.testing.assert_allclose(s.value['b'], 3.)


def test_a_cached_call_inside_another_trace_is_traced_into_it():
    s = brainstate.ShortTermState(jnp.zeros(3))
    step = armed_step(s)  # s == 3

    def outer(x):
        step(x)
        return s.value * 2

    out = brainstate.transform.jit(outer)(jnp.ones(3))
    np.testing.assert_allclose(out, 8.)  # inner write seen by the outer trace
    np.testing.assert_allclose(s.value, 4.)
    np.testing.assert_allclose(step(jnp.ones(3)), 15.)
    np.testing.assert_allclose(s.value, 5.)


def test_debug_infs_switched_on_after_arming_keeps_the_state(armed_doubling_step):
    s, step = armed_doubling_step
    assert step._last.armed == epoch()
    bad = jnp.full(3, jnp.inf)
    with jax.debug_infs(True):
        with pytest.raises(FloatingPointError):
            step(bad)
    np.testing.assert_allclose(s.value, 8.)  # not donated away, not half-written


def test_an_environ_setting_first_read_on_a_later_retrace_is_checked():
    s = brainstate.ShortTermState(jnp.zeros(()))

    @brainstate.transform.jit
    def step(x):
        scale = brainstate.environ.get('dt') if x.shape[0] == 4 else 1.
        s.value = s.value + x.sum() * scale
        return s.value

    with brainstate.environ.context(dt=0.5):
        for _ in range(3):
            step(jnp.ones(3))  # reads no setting: a cached call without the environ check
        np.testing.assert_allclose(step(jnp.ones(4)), 11.)  # JAX retraces: dt is read now
        np.testing.assert_allclose(step(jnp.ones(4)), 13.)
        with brainstate.environ.context(dt=2.):
            np.testing.assert_allclose(step(jnp.ones(4)), 21.)
        np.testing.assert_allclose(step(jnp.ones(4)), 23.)


def test_threads_with_their_own_environ_contexts_get_their_own_programs():
    @brainstate.transform.jit
    def step(x):
        return x * brainstate.environ.get('dt')

    results, errors = {}, []

    def worker(dt):
        try:
            with brainstate.environ.context(dt=dt):
                results[dt] = [float(step(jnp.ones(()))) for _ in range(30)]
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(dt,)) for dt in (0.1, 0.2, 0.3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for dt, values in results.items():
        np.testing.assert_allclose(values, dt, rtol=1e-6)


# -- the flat compiled function ----------------------------------------------------------------

def test_pytree_states_static_and_donated_arguments_match_pure_jax():
    tree = brainstate.ShortTermState({'a': jnp.zeros(3), 'b': (jnp.ones(2), jnp.ones(()))})
    kept = brainstate.ParamState((jnp.full(3, 2.), jnp.full(2, 3.)))

    @brainstate.transform.jit(static_argnums=1, donate_argnums=2)
    def step(x, n, y):
        value = tree.value
        w, v = kept.value
        tree.value = {'a': value['a'] + x * w * n, 'b': (value['b'][0] * v, value['b'][1] + 1)}
        return (x + y).sum() * n, {'y': y * 2}

    def pure(value, w, v, x, n, y):
        new = {'a': value['a'] + x * w * n, 'b': (value['b'][0] * v, value['b'][1] + 1)}
        return new, ((x + y).sum() * n, {'y': y * 2})

    ref = {'a': np.zeros(3), 'b': (np.ones(2), np.ones(()))}
    for i in range(4):
        x = jnp.arange(3.) + i
        out = step(x, 2, jnp.ones(3))
        ref, ref_out = pure(ref, np.full(3, 2.), np.full(2, 3.), np.asarray(x), 2, np.ones(3))
        np.testing.assert_allclose(out[0], ref_out[0])
        np.testing.assert_allclose(out[1]['y'], ref_out[1]['y'])
    np.testing.assert_allclose(tree.value['a'], ref['a'])
    np.testing.assert_allclose(tree.value['b'][0], ref['b'][0])
    np.testing.assert_allclose(tree.value['b'][1], ref['b'][1])
    np.testing.assert_allclose(kept.value[1], 3.)
    # Ahead of time, the states are the leading flat arguments.
    assert 'func' in step.lower(jnp.ones(3), 2, jnp.ones(3)).as_text()
    assert step.eval_shape(jnp.ones(3), 2, jnp.ones(3))[1]['y'].shape == (3,)


def test_the_compiled_function_takes_flat_state_leaves():
    a = brainstate.ShortTermState(jnp.zeros(3))
    b = brainstate.ShortTermState(jnp.ones(2))
    w = brainstate.ParamState(jnp.full(3, 2.))

    @brainstate.transform.jit
    def step(x):
        a.value = a.value + x * w.value
        b.value = b.value * 2
        return x.sum()

    step(jnp.ones(3))
    entry = step._last
    assert (entry.num_donated, entry.num_kept) == (2, 1)
    out = entry.jitted(jnp.zeros(3), jnp.ones(2), jnp.full(3, 2.), jnp.ones(3))
    assert isinstance(out, tuple) and len(out) == 3  # (result, *written leaves)
    np.testing.assert_allclose(out[1], 2.)
    np.testing.assert_allclose(out[2], 2.)


def test_a_call_in_one_thread_does_not_arm_while_another_thread_traces():
    s = brainstate.ShortTermState(jnp.zeros(3))
    step = armed_step(s)  # s == 3
    inside, release, out = threading.Event(), threading.Event(), []

    def trace_in_thread():
        @brainstate.transform.jit
        def outer(x):
            inside.set()
            release.wait(10)
            step(x)  # this thread traces: the call must become part of `outer`
            return s.value * 2

        out.append(outer(jnp.ones(3)))

    thread = threading.Thread(target=trace_in_thread)
    thread.start()
    assert inside.wait(10)
    try:
        step(jnp.ones(3))  # the general path: it must not arm the entry meanwhile
        np.testing.assert_allclose(s.value, 4.)
    finally:
        release.set()
        thread.join()
    np.testing.assert_allclose(out[0], 10.)  # the outer trace saw its own step
    np.testing.assert_allclose(s.value, 5.)


def test_a_call_in_one_thread_does_not_arm_donation_under_another_threads_debug_checks(
        armed_doubling_step):
    s, step = armed_doubling_step  # s == 8
    bad = jnp.full(3, jnp.inf)
    inside, called, errors = threading.Event(), threading.Event(), []

    def checked_thread():
        with jax.debug_infs(True):
            inside.set()
            called.wait(10)
            try:
                step(bad)
            except FloatingPointError as error:
                errors.append(error)

    thread = threading.Thread(target=checked_thread)
    thread.start()
    assert inside.wait(10)
    step(jnp.full(3, 1.))  # this thread: no checks; it must not arm the donating call
    called.set()
    thread.join()
    assert errors
    np.testing.assert_allclose(s.value, 8.)  # the failed call donated and stored nothing


@pytest.mark.skipif(sys.implementation.name != 'cpython', reason='CPython dict layout')
def test_a_state_keeps_its_attributes_in_a_plain_dict():
    # A "split" instance dict (CPython's default once __dict__ is used) defeats the
    # interpreter's attribute caches: each `state._value` of a cached call would cost ~4x. A
    # plain (combined) dict has the size of its own copy; a split one does not.
    for cls in (brainstate.State, brainstate.ShortTermState, brainstate.ParamState):
        state = cls(jnp.zeros(3))
        state.value  # (reads and stores through __dict__ along the way)
        state.value = jnp.ones(3)
        assert sys.getsizeof(state.__dict__) == sys.getsizeof(dict(state.__dict__)), cls


def test_in_and_out_shardings_apply_to_the_arguments_past_the_state_leaves():
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    sharding = NamedSharding(Mesh(np.array(jax.devices()[:1]), ('x',)), P('x'))
    a = brainstate.ShortTermState((jnp.zeros(4), jnp.ones(4)))  # two donated leaves
    w = brainstate.ParamState(jnp.full(4, 3.))  # one read-only leaf

    @brainstate.transform.jit(in_shardings=(sharding, sharding), static_argnums=1,
                              out_shardings=sharding)
    def step(x, n, y):
        u, v = a.value
        a.value = (u + x * n, v * w.value)
        return x + y

    for _ in range(3):
        out = step(jnp.arange(4.), 2, jnp.ones(4))
    np.testing.assert_allclose(out, np.arange(4.) + 1)
    assert out.sharding == sharding
    np.testing.assert_allclose(a.value[0], np.arange(4.) * 6)
    np.testing.assert_allclose(a.value[1], 27.)


def test_a_bump_never_gives_back_a_value_the_epoch_had():
    # Two threads bumping at once may leave a stale value stored (a lost update); the next bump
    # must still not land on a value some entry may have been armed with.
    values = [epoch()]
    for _ in range(3):
        _state.recheck_cached_calls()
        values.append(epoch())
    stale = values[-1] - 1  # (what `+= 1` from a stale read would have stored)
    _state.CALL_EPOCH[0] = stale
    _state.recheck_cached_calls()
    assert epoch() not in values
