"""Issue 8's reproducers, one test each: what an adversarial user found, and what must happen."""

import collections
import threading
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import cond, for_loop, grad, jit, vmap, vmap_new_states, while_loop


# -- 1. tree structure change retraces ---------------------------------------------------------

Pair = collections.namedtuple('Pair', 'w x')


@pytest.mark.parametrize('before, after, key', [
    ({'b': 0, 'w': 0}, {'w': 0, 'x': 0}, 'w'),
    (Pair(0, 0), {'w': 0, 'x': 0}, 'w'),
    ({'w': 0, 'x': 0}, {'w': 0, 'x': {'y': 0}}, 'w'),
])
def test_item1_tree_structure_change_retraces(before, after, key):
    make = lambda tree: jax.tree.map(lambda _: jnp.zeros(2), tree)
    s = brainstate.State(make(before))

    @jit
    def step():
        v = s.value
        if isinstance(v, dict):
            v = dict(v)
            v[key] = v[key] + 1
        else:
            v = v._replace(w=v.w + 1)
        s.value = v

    step()
    s.value = make(after)
    step()
    assert np.array_equal(s.value['w'], np.ones(2))
    assert np.array_equal(jax.tree.leaves(s.value['x'])[0], np.zeros(2))


# -- 2. eager loops follow Python semantics ----------------------------------------------------

@pytest.mark.parametrize('kind', ['for_loop', 'cond', 'while_loop'])
def test_item2_eager_control_flow_sees_current_attributes(kind):
    class M:
        k = 1.

        def body(self, i):
            return self.k * i

    m = M()

    def run():
        if kind == 'for_loop':
            return for_loop(m.body, jnp.arange(3.))[-1]
        if kind == 'cond':
            return cond(True, lambda: m.body(2.), lambda: 0.)
        return while_loop(lambda c: c[0] < 1, lambda c: (c[0] + 1, m.body(2.)), (0, 0.))[1]

    assert float(run()) == 2.
    m.k = 10.
    assert float(run()) == 20.


# -- 3. threads share the default random state -------------------------------------------------

def test_item3_threads_drawing_from_default_random_state_get_distinct_numbers():
    brainstate.random.seed(0)
    out = []

    def worker():
        draws = [float(brainstate.random.normal()) for _ in range(50)]
        out.extend(draws)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 200
    assert len(set(out)) == 200
    # the same 200 numbers as a serial run (any interleaving gives the same key sequence)
    brainstate.random.seed(0)
    serial = [float(brainstate.random.normal()) for _ in range(200)]
    assert sorted(out) == sorted(serial)


# -- 4. one dtype rule for eager and jit writes ------------------------------------------------

def _write_both_ways(init, new):
    eager = brainstate.State(init)
    eager.value = new
    compiled = brainstate.State(init)

    @jit
    def f():
        compiled.value = new

    f()
    return eager.value, compiled.value


@pytest.mark.parametrize('init, new, expected', [
    (jnp.zeros(()), 0, np.float32(0)),
    (jnp.zeros((), jnp.float16), 1.5, np.float16(1.5)),
    (jnp.int32(0), 1.5, np.int32(1)),
    (jnp.int32(0), True, np.int32(1)),
    (jnp.zeros((), bool), 1, np.True_),
])
def test_item4_python_scalar_takes_the_state_dtype(init, new, expected):
    eager, compiled = _write_both_ways(init, new)
    for v in (eager, compiled):
        assert v.dtype == expected.dtype
        assert not v.weak_type
        assert v == expected


def test_item4_state_holds_a_definite_dtype():
    s = brainstate.State(1.0)
    assert s.value.dtype == jnp.float32 and not s.value.weak_type
    t = brainstate.State(jnp.asarray(2.0))  # a weakly typed array
    assert not t.value.weak_type
    b = jnp.ones(2, jnp.bfloat16)
    eager = s.value + b
    compiled = jit(lambda: s.value + b)()
    assert eager.dtype == compiled.dtype == jnp.float32


def test_item4_weak_value_written_under_jit_is_stored_strong():
    s = brainstate.State(jnp.zeros(()))

    @jit
    def f():
        s.value = jnp.where(s.value > 0, 1.0, 2.0)  # a weakly typed result

    f()
    assert not s.value.weak_type and s.value.dtype == jnp.float32


# -- 5. a run-time failure keeps every state ---------------------------------------------------

def _raising(_):
    raise ValueError('boom')


@pytest.mark.parametrize('where', ['jit', 'jit_for_loop', 'eager_for_loop', 'eager_cond',
                                   'eager_while', 'jit_grad_for_loop'])
def test_item5_run_time_failure_keeps_states(where):
    s = brainstate.ParamState(jnp.arange(3.))
    before = np.asarray(s.value)

    def body(i):
        s.value = s.value + 1
        jax.debug.callback(_raising, s.value)
        return s.value.sum()

    def run():
        if where == 'jit':
            return jit(lambda: body(0))()
        if where == 'jit_for_loop':
            return jit(lambda: for_loop(body, jnp.arange(2)))()
        if where == 'eager_for_loop':
            return for_loop(body, jnp.arange(2))
        if where == 'eager_cond':
            return cond(True, lambda: body(0), lambda: 0.)
        if where == 'eager_while':
            return while_loop(lambda c: c < 1, lambda c: (body(0), c + 1)[1], 0)
        return jit(lambda: grad(lambda: for_loop(body, jnp.arange(2)).sum(), [s])())()

    with pytest.raises(Exception):
        run()
        jax.effects_barrier()
    np.testing.assert_array_equal(s.value, before)
    s.value = s.value + 1  # still usable
    jit(lambda: s.value * 2)()


# -- 6. donation never deletes what the user holds ---------------------------------------------

def test_item6_held_nested_containers_survive_donation():
    x = jnp.ones(3)
    s = brainstate.State({'a': {'b': x}, 'l': [x + 1]})
    inner, sub = s.value['a'], s.value['l']
    view = jax.device_put(s.value['a']['b'], jax.devices()[0])
    shard = s.value['l'][0].addressable_data(0)
    step = jit(lambda: setattr(s, 'value', jax.tree.map(lambda v: v + 1, s.value)))
    for _ in range(3):
        step()
    np.testing.assert_array_equal(inner['b'], np.ones(3))
    np.testing.assert_array_equal(sub[0], 2 * np.ones(3))
    np.testing.assert_array_equal(view, np.ones(3))
    np.testing.assert_array_equal(shard, 2 * np.ones(3))
    np.testing.assert_array_equal(s.value['a']['b'], 4 * np.ones(3))


# -- 7. a State created inside grad nested in a loop or branch ---------------------------------

def _loss_creating_state(p):
    def loss(x):
        t = brainstate.State(jnp.zeros(3))
        t.value = p.value * x
        return t.value.sum()
    return loss


@pytest.mark.parametrize('outer_jit', [False, True])
@pytest.mark.parametrize('kind', ['for_loop', 'cond', 'while_loop'])
def test_item7_state_created_in_grad_in_control_flow(kind, outer_jit):
    p = brainstate.ParamState(jnp.ones(3))
    g = lambda x: grad(_loss_creating_state(p), grad_states=[p])(x)[0]

    def run():
        if kind == 'for_loop':
            return for_loop(lambda i: g(i), jnp.arange(1., 3.))[-1]
        if kind == 'cond':
            return cond(True, lambda: g(2.), lambda: g(3.))
        return while_loop(lambda c: c[0] < 2., lambda c: (c[0] + 1., g(c[0] + 1.)),
                          (0., jnp.zeros(3)))[1]

    out = jit(run)() if outer_jit else run()
    np.testing.assert_allclose(out, 2. * np.ones(3))


# -- 8. a State created in a traced function written in a loop body ----------------------------

def test_item8_new_state_written_in_loop_body():
    def make_and_run(x):
        h = brainstate.HiddenState(jnp.zeros(()))

        def body(i):
            h.value = h.value + x
            return h.value

        return for_loop(body, jnp.arange(4))

    np.testing.assert_allclose(jit(make_and_run)(1.5), [1.5, 3., 4.5, 6.])


class _LIF(brainstate.nn.Module):
    def __init__(self, n, tau=10.):
        super().__init__()
        self.n, self.tau = n, tau
        self.v = brainstate.HiddenState(jnp.zeros(n))

    def update(self, x):
        self.v.value = self.v.value + (x - self.v.value) / self.tau
        return self.v.value


def test_item8_vmap_new_states_parameter_sweep():
    def make_and_run(drive):
        neuron = _LIF(3)
        return for_loop(lambda i: neuron.update(drive), jnp.arange(5))[-1]

    drives = jnp.array([1., 2.])
    out = vmap_new_states(make_and_run, state_tag='sweep')(drives)

    def reference(d):
        v = jnp.zeros(3)
        for _ in range(5):
            v = v + (d - v) / 10.
        return v

    np.testing.assert_allclose(out, jax.vmap(reference)(drives), rtol=1e-6)


# -- 9 / 10. threads ----------------------------------------------------------------------------

def _run_threads(fn, n=4):
    errors = []

    def wrapped(i):
        try:
            fn(i)
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(''.join(traceback.format_exception(e)))

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_item9_trace_stack_is_per_thread():
    shared = brainstate.State(jnp.zeros(()))
    mine = [brainstate.State(jnp.zeros(())) for _ in range(4)]

    def slow(x):
        for _ in range(50):
            x = jnp.sin(x) + shared.value
        return x

    def work(i):
        if i % 2 == 0:
            for n in range(1, 6):  # tracing, again and again
                jit(slow)(jnp.ones(n + 10 * i))
        else:
            for _ in range(300):  # eager use at the same time
                mine[i].value = mine[i].value + 1.
                _ = shared.value

    _run_threads(work)
    assert float(mine[1].value) == 300. and float(mine[3].value) == 300.


def test_item9_threads_tracing_different_functions():
    states = [brainstate.State(jnp.zeros(3)) for _ in range(4)]

    def work(i):
        def f(x):
            for _ in range(20):
                states[i].value = states[i].value + x
            return states[i].value.sum()
        out = jit(f)(jnp.ones(3) * (i + 1))
        assert float(out) == 60. * (i + 1)

    _run_threads(work)


def test_item10_threads_calling_one_cached_step():
    s = brainstate.State(jnp.zeros(100))

    @jit
    def step():
        s.value = s.value + 1

    step()
    _run_threads(lambda i: [step() for _ in range(50)])
    np.testing.assert_array_equal(s.value, 201 * np.ones(100))


def test_item10_threads_calling_a_jitted_random_draw():
    rng = brainstate.random.RandomState(0)
    draw = jit(lambda: rng.normal(size=2))
    draw()
    out = []
    _run_threads(lambda i: out.extend(tuple(np.asarray(draw()).tolist()) for _ in range(25)))
    assert len(set(out)) == 100


# -- 11. tracers and placeholders left in States -----------------------------------------------

def test_item11_state_created_under_raw_jit_raises_on_read():
    box = []

    @jax.jit
    def f(x):
        box.append(brainstate.State(x))
        return box[-1].value * 2   # using it in the same trace is fine

    assert float(f(1.)) == 2.
    with pytest.raises(brainstate.TraceContextError, match='test_adv_items.py'):
        box[0].value


def test_item11_state_created_in_failed_trace_raises_on_read():
    box = []

    @jit
    def f(x):
        box.append(brainstate.State(x))
        raise ValueError('user error')

    with pytest.raises(ValueError, match='user error'):
        f(1.)
    with pytest.raises(brainstate.TraceContextError, match='test_adv_items.py'):
        box[0].value


def test_item11_orphan_of_a_retrace_raises_on_read_and_can_be_set():
    box = []

    @jit
    def f(x):
        st = brainstate.State(x)
        box.append(st)
        st.value = st.value + 1
        return st.value

    f(jnp.ones(2))
    f(jnp.ones(3))
    np.testing.assert_array_equal(box[0].value, 2 * np.ones(2))
    np.testing.assert_array_equal(box[-1].value, 2 * np.ones(3))
    orphans = [s for s in box[1:-1]]
    for s in orphans:
        with pytest.raises(brainstate.TraceContextError, match='created'):
            s.value
        s.value = jnp.zeros(3)  # setting a value revives it
        np.testing.assert_array_equal(s.value, np.zeros(3))


# -- 12. bad values written under jit name the state -------------------------------------------

@pytest.mark.parametrize('bad', ['abc', object(), 'state', 1 + 2j])
@pytest.mark.parametrize('compiled', [False, True])
def test_item12_bad_write_names_the_state(bad, compiled):
    s = brainstate.State(jnp.zeros(()), name='membrane')
    if bad == 'state':
        bad = brainstate.State(1.)

    def f():
        s.value = bad

    with pytest.raises(brainstate.StateValueError, match='membrane'):
        jit(f)() if compiled else f()
    assert s.value.dtype == jnp.float32 and float(s.value) == 0.


# -- 13. returning a Module --------------------------------------------------------------------

def test_item13_returning_a_module_names_function_path_and_fix():
    def build():
        return {'net': _LIF(2)}

    with pytest.raises(brainstate.StateArgumentError, match=r"build.*_LIF.*\['net'\]"):
        jit(build)()
    with pytest.raises(brainstate.StateArgumentError, match=r"build.*\['net'\]"):
        vmap_new_states(build, state_tag='t', axis_size=2)()


# -- 14. donate_argnums on a state's value -----------------------------------------------------

def test_item14_donating_a_state_value_is_explained():
    s = brainstate.State(jnp.ones(3), name='weights')
    f = jit(lambda x: s.value + x, donate_argnums=0)
    with pytest.raises(brainstate.ArgumentValueError, match='weights'):
        f(s.value)
    np.testing.assert_array_equal(f(jnp.ones(3)), 2 * np.ones(3))
    np.testing.assert_array_equal(s.value, np.ones(3))


# -- 15. vmap in_states on a state without the batch axis --------------------------------------

def test_item15_in_states_without_batch_axis_is_a_batch_axis_error():
    s = brainstate.State(jnp.zeros(50), name='potential')

    def f(x):
        s.value = s.value + x

    with pytest.raises(brainstate.BatchAxisError, match=r'potential.*8'):
        vmap(f, in_states=s)(jnp.ones(8))
    np.testing.assert_array_equal(s.value, np.zeros(50))


# -- 16. JAX's tracer errors name the user's function and argument -----------------------------

def test_item16_tracer_error_names_user_function_and_argument():
    def user_step(threshold, drive):
        if drive > threshold:
            return drive
        return -drive

    with pytest.raises(jax.errors.TracerBoolConversionError) as info:
        jit(user_step)(1., 2.)
    message = str(info.value)
    assert 'user_step' in message and 'drive' in message
    assert 'leaves[0]' not in message and '_trace.py' not in message
    frames = [f.filename for f in traceback.extract_tb(info.value.__traceback__)]
    inside = [f for f in frames if '/brainstate/' in f.replace('\\', '/')]
    assert len(inside) <= 1, inside  # at most the entry point, as JAX keeps its own
    assert any('test_adv_items.py' in f for f in frames)


# -- found by the fuzzer: an eager transform's first (op-by-op) run ------------------------------

def test_eager_first_run_stores_and_returns_jax_arrays():
    """Evaluated op by op, a constant-folded output is a jaxpr literal (a NumPy scalar): the
    state and the caller still get JAX arrays of a definite dtype."""
    s = brainstate.State(jnp.zeros(()))

    def f():
        s.value = jnp.float32(3.) * 2
        return jnp.float32(1.) + 1

    out = brainstate.transform.checkpoint(f)()
    assert isinstance(out, jax.Array) and float(out) == 2.
    assert isinstance(s.value, jax.Array) and float(s.value) == 6.
    assert s.value.dtype == jnp.float32 and not s.value.weak_type
