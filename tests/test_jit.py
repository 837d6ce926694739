"""brainstate.transform.jit: updates kept, caching, retracing, arguments, donation, views."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.count = brainstate.ShortTermState(jnp.zeros(()))
        self.w = brainstate.ParamState({'weight': jnp.ones((3, 2)), 'bias': jnp.zeros(2)})


def test_issue_example_updates_are_kept():
    net = Net()

    @brainstate.transform.jit
    def step(x):
        net.count.value = net.count.value + 1
        return x @ net.w.value['weight'] + net.w.value['bias']

    out = step(jnp.ones(3))
    step(jnp.ones(3))
    assert net.count.value == 2
    np.testing.assert_allclose(out, np.full(2, 3.0))
    text = str(step.ir(jnp.ones(3)))
    assert 'state_write @Net.count' in text and 'state_read @Net.w' in text


def test_matches_pure_jax_over_many_steps():
    key = jax.random.key(0)
    w0 = jax.random.normal(key, (4, 4)) * 0.3
    h = brainstate.HiddenState(jnp.zeros(4))
    w = brainstate.ParamState(w0)
    total = brainstate.LongTermState(jnp.zeros(()))

    @brainstate.transform.jit
    def step(x):
        h.value = jnp.tanh(h.value @ w.value + x)
        total.value = total.value + h.value.sum()
        return h.value * 2

    def pure(h, total, x):
        h = jnp.tanh(h @ w0 + x)
        return h, total + h.sum(), h * 2

    ph, pt = jnp.zeros(4), jnp.zeros(())
    for i in range(5):
        x = jnp.arange(4.0) * i
        out = step(x)
        ph, pt, pout = pure(ph, pt, x)
        np.testing.assert_allclose(out, pout, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.value, ph, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total.value, pt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.value, w0)


def test_cached_calls_do_not_retrace():
    s = brainstate.State(jnp.zeros(2))
    traces = []

    @brainstate.transform.jit
    def step(x):
        traces.append(1)
        s.value = s.value + x

    for _ in range(4):
        step(jnp.ones(2))
    assert len(traces) == 1
    step(jnp.ones(2, dtype=jnp.int32))  # new argument dtype: one more trace
    assert len(traces) == 2
    np.testing.assert_allclose(s.value, np.full(2, 5.0))


def test_state_shape_change_between_calls_retraces():
    s = brainstate.State(jnp.zeros(2))
    traces = []

    @brainstate.transform.jit
    def step():
        traces.append(1)
        s.value = s.value + 1
        return s.value.shape

    assert step() == (2,)
    s.value = jnp.zeros(5)
    assert step() == (5,)
    np.testing.assert_allclose(s.value, np.ones(5))
    s.value = jnp.zeros(2)  # back to the first shape: the first program is reused
    assert step() == (2,)
    assert len(traces) == 2


def test_keyword_and_static_arguments():
    s = brainstate.State(jnp.zeros(()))
    traces = []

    @brainstate.transform.jit(static_argnums=1, static_argnames='mode')
    def step(x, n, scale=1.0, mode='add'):
        traces.append((n, mode))
        for _ in range(n):
            s.value = s.value + 1 if mode == 'add' else s.value - 1
        return x * scale

    np.testing.assert_allclose(step(jnp.ones(2), 3, scale=2.0), np.full(2, 2.0))
    assert s.value == 3
    step(jnp.ones(2), 3, scale=5.0)
    assert len(traces) == 1
    step(jnp.ones(2), 2, mode='sub')
    assert s.value == 4 and len(traces) == 2
    with pytest.raises(TypeError, match='unhashable'):
        step(jnp.ones(2), [1])


def test_read_only_states_are_not_written_back():
    w = brainstate.ParamState(jnp.ones(3))
    before = w.value

    @brainstate.transform.jit
    def f(x):
        return x * w.value

    f(jnp.ones(3))
    assert w.value is before
    jaxpr, states = brainstate.transform.make_jaxpr(f)(jnp.ones(3))
    # published layout: outputs are the result, then every state (a read-only one passes through)
    assert states == (w,) and len(jaxpr.jaxpr.outvars) == 2
    assert jaxpr.jaxpr.outvars[1] is jaxpr.jaxpr.invars[1]


def test_written_state_buffers_are_donated_unless_held_elsewhere():
    s = brainstate.State(jnp.zeros(1000))

    @brainstate.transform.jit
    def step():
        s.value = s.value + 1

    step()
    step()
    held = s.value           # the user keeps the old value: it must stay valid
    step()
    assert not held.is_deleted()
    np.testing.assert_allclose(held, np.full(1000, 2.0))
    del held
    unheld_id = id(s.value)
    buffer_ref = [None]

    # Without outside references the old buffer is handed to XLA.
    import weakref
    buffer_ref[0] = weakref.ref(s.value)
    step()
    old = buffer_ref[0]()
    assert old is None or old.is_deleted()
    np.testing.assert_allclose(s.value, np.full(1000, 4.0))
    assert unheld_id is not None


def test_two_states_sharing_one_array_are_both_correct():
    a = jnp.ones(3)
    s1 = brainstate.State(a)
    s2 = brainstate.State(a)

    @brainstate.transform.jit
    def step():
        s1.value = s1.value + 1
        s2.value = s2.value + 2

    step()
    np.testing.assert_allclose(s1.value, np.full(3, 2.0))
    np.testing.assert_allclose(s2.value, np.full(3, 3.0))
    np.testing.assert_allclose(a, np.ones(3))


def test_user_donated_arguments():
    s = brainstate.State(jnp.zeros(3))

    @brainstate.transform.jit(donate_argnums=0)
    def step(x):
        s.value = s.value + x
        return x * 2

    x = jnp.ones(3)
    out = step(x)
    np.testing.assert_allclose(out, np.full(3, 2.0))
    np.testing.assert_allclose(s.value, np.ones(3))


def test_nested_jit_is_inlined_into_the_outer_trace():
    s = brainstate.State(jnp.zeros(()))

    @brainstate.transform.jit
    def inner(x):
        s.value = s.value + x
        return s.value

    @brainstate.transform.jit
    def outer(x):
        a = inner(x)
        b = inner(x)
        return a + b

    assert float(outer(1.0)) == 3.0
    assert float(s.value) == 2.0
    graph = outer.optimized_ir(1.0)
    assert len(graph.find_nodes('state_read')) == 1 and len(graph.find_nodes('state_write')) == 1


def test_pytree_results_and_arguments():
    s = brainstate.State(jnp.zeros(2))

    @brainstate.transform.jit
    def step(inputs):
        s.value = s.value + inputs['a'] * inputs['b'][0]
        return {'sum': s.value.sum(), 'pair': (inputs['a'], 1.0)}

    out = step({'a': jnp.ones(2), 'b': [jnp.full(2, 3.0)]})
    assert float(out['sum']) == 6.0
    assert isinstance(out['pair'], tuple)


def test_methods_can_be_jitted():
    class Counter(brainstate.Module):
        def __init__(self):
            super().__init__()
            self.n = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

        @brainstate.transform.jit
        def tick(self, k):
            self.n.value = self.n.value + k
            return self.n.value

    c = Counter()
    c.tick(2)
    assert int(c.tick(3)) == 5


def test_ir_lower_timings_and_clear_cache():
    s = brainstate.State(jnp.zeros(2), name='acc')
    traces = []

    @brainstate.transform.jit
    def step(x):
        traces.append(1)
        s.value = s.value + x
        return s.value

    x = jnp.ones(2)
    graph = step.ir(x)
    assert isinstance(graph, brainstate.ir.Graph)
    assert 'state_read @acc' in str(graph)
    lowered = step.lower(x)
    assert 'stablehlo' in lowered.as_text() or 'func.func' in lowered.as_text()
    timings = step.timings(x)
    assert set(timings) >= {'trace', 'passes', 'lower', 'compile'}
    assert all(t >= 0 for t in timings.values())
    step(x)
    n = len(traces)
    step(x)
    assert len(traces) == n  # the call used the cached program
    step.clear_cache()
    step(x)
    assert len(traces) == n + 1


def test_states_created_inside_jit_hold_real_values_afterwards():
    holder = {}

    @brainstate.transform.jit
    def init(x):
        holder['h'] = brainstate.HiddenState(jnp.zeros(3) + x)
        holder['h'].value = holder['h'].value * 2
        return x

    init(jnp.ones(3))
    value = holder['h'].value
    assert isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer)
    np.testing.assert_allclose(value, np.full(3, 2.0))


def test_python_scalar_written_into_float_state_is_cast():
    s = brainstate.State(jnp.ones(()))

    @brainstate.transform.jit
    def reset():
        s.value = 0

    reset()
    assert s.value.dtype == jnp.float32 and float(s.value) == 0.0


def test_states_chosen_by_argument_shape_are_handled():
    a = brainstate.State(jnp.zeros(()), name='a')
    b = brainstate.State(jnp.zeros(()), name='b')

    @brainstate.transform.jit
    def step(x):
        target = a if x.shape[0] == 2 else b
        target.value = target.value + x.sum()

    step(jnp.ones(2))
    step(jnp.ones(3))
    step(jnp.ones(2))
    step(jnp.ones(3))
    assert float(a.value) == 4.0 and float(b.value) == 6.0


def test_state_tree_structure_change_between_calls():
    s = brainstate.State({'a': jnp.zeros(2)}, name='tree')

    @brainstate.transform.jit
    def step():
        s.value = jax.tree.map(lambda v: v + 1, s.value)

    step()
    s.value = {'a': jnp.zeros(2), 'b': jnp.full(3, 5.0)}
    step()
    np.testing.assert_allclose(s.value['a'], np.ones(2))
    np.testing.assert_allclose(s.value['b'], np.full(3, 6.0))


def test_raw_jitted_helper_traced_outside_first_is_not_stale_inside():
    s = brainstate.State(jnp.ones(3), name='scale')

    @jax.jit
    def helper(x):
        return x * s.value

    helper(jnp.ones(3))  # traced outside brainstate: JAX bakes the value in as a constant
    s.value = jnp.full(3, 5.0)
    out = brainstate.transform.jit(lambda x: helper(x))(jnp.ones(3))
    np.testing.assert_allclose(out, np.full(3, 5.0))


def test_timings_measure_lowering_and_compiling_afresh_after_the_first_call():
    # JAX caches lowered and compiled programs: a timings() answered from those caches would
    # say compile: 0.00002 s. Each call must lower and compile anew (milliseconds at least),
    # and must not disturb the program the calls run.
    s = brainstate.State(jnp.zeros(8), name='acc')

    @brainstate.transform.jit
    def step(x):
        s.value = s.value + jnp.sin(x) @ jnp.ones((8, 8))
        return s.value

    x = jnp.ones(8)
    first = step.timings(x)
    step(x)
    for later in (step.timings(x), step.timings(x)):
        assert later['lower_to_hlo'] > 1e-4, later
        assert later['compile'] > 1e-3, later
    np.testing.assert_allclose(step(x), 2 * (np.sin(np.ones(8)) @ np.ones((8, 8))), rtol=1e-5)
    assert first['compile'] > 1e-3
