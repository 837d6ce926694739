"""State-aware loops and branches: values against hand-written pure JAX, state updates kept
eagerly and under jit and grad, nesting, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxpr_as_fun

import brainstate
from brainstate.transform import (bounded_while_loop, checkpoint, checkpointed_for_loop,
                                  checkpointed_scan, cond, for_loop, ifelse, jit, make_jaxpr,
                                  scan, switch, while_loop)

TOL = dict(rtol=1e-5, atol=1e-5)


# -- a population of leaky integrate-and-fire neurons ------------------------------------------

class LIF(brainstate.Module):
    def __init__(self, n, tau=10., v_th=1., dt=0.1):
        super().__init__()
        self.tau, self.v_th, self.dt = tau, v_th, dt
        self.V = brainstate.HiddenState(jnp.zeros(n))
        self.spikes = brainstate.ShortTermState(jnp.zeros(n))

    def update(self, current):
        V = self.V.value + self.dt / self.tau * (-self.V.value + current)
        spike = (V >= self.v_th).astype(jnp.float32)
        self.V.value = V * (1. - spike)
        self.spikes.value = spike
        return spike


def lif_reference(v0, currents, tau=10., v_th=1., dt=0.1):
    def step(V, current):
        V = V + dt / tau * (-V + current)
        spike = (V >= v_th).astype(jnp.float32)
        V = V * (1. - spike)
        return V, spike
    return jax.lax.scan(step, v0, currents)


def currents(steps=200, n=16):
    return 12. + 4. * jnp.sin(jnp.arange(steps * n, dtype=jnp.float32).reshape(steps, n) * .37)


def test_lif_for_loop_in_jit_matches_lax_scan():
    net = LIF(16)
    inputs = currents()

    @jit
    def simulate(inputs):
        return for_loop(net.update, inputs)

    spikes = simulate(inputs)
    v_ref, spikes_ref = lif_reference(jnp.zeros(16), inputs)
    np.testing.assert_allclose(spikes, spikes_ref, **TOL)
    np.testing.assert_allclose(net.V.value, v_ref, **TOL)
    assert float(spikes.sum()) > 0  # the neurons did fire
    np.testing.assert_allclose(net.spikes.value, spikes_ref[-1], **TOL)
    # a second run continues from the state the first one left
    spikes2 = simulate(inputs)
    v_ref2, spikes_ref2 = lif_reference(v_ref, inputs)
    np.testing.assert_allclose(spikes2, spikes_ref2, **TOL)
    np.testing.assert_allclose(net.V.value, v_ref2, **TOL)


def test_lif_for_loop_eager_matches_lax_scan():
    net = LIF(16)
    inputs = currents(50)
    spikes = for_loop(net.update, inputs)
    v_ref, spikes_ref = lif_reference(jnp.zeros(16), inputs)
    np.testing.assert_allclose(spikes, spikes_ref, **TOL)
    np.testing.assert_allclose(net.V.value, v_ref, **TOL)


# -- accumulation and scan semantics ----------------------------------------------------------

def test_accumulation_into_states_eager_and_jit():
    total = brainstate.ShortTermState(jnp.zeros(3), name='total')
    count = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='count')
    xs = jnp.arange(12.).reshape(4, 3)

    def body(x):
        total.value = total.value + x
        count.value = count.value + 1
        return total.value

    partial = for_loop(body, xs)
    np.testing.assert_allclose(partial, jnp.cumsum(xs, axis=0), **TOL)
    np.testing.assert_allclose(total.value, xs.sum(0), **TOL)
    assert int(count.value) == 4

    jit(lambda xs: for_loop(body, xs))(xs)
    np.testing.assert_allclose(total.value, 2 * xs.sum(0), **TOL)
    assert int(count.value) == 8


def test_eager_loop_traces_each_call_but_compiles_once():
    from brainstate.transform._eager import eager_cache_info
    traces = []
    acc = brainstate.ShortTermState(jnp.zeros(()), name='acc')

    def body(x):
        traces.append(1)
        acc.value = acc.value + x
        return x

    for_loop(body, jnp.arange(5.))
    compiled = eager_cache_info()['compiled_programs']
    for _ in range(2):
        for_loop(body, jnp.arange(5.))
    assert len(traces) == 3                                    # Python semantics: traced anew
    assert eager_cache_info()['compiled_programs'] == compiled  # the same program: no compile
    np.testing.assert_allclose(acc.value, 30., **TOL)


def test_eager_control_flow_sees_current_attributes():
    """Issue 8.2: an eager loop, branch or while loop follows Python semantics."""
    class M:
        k = 6.0

        def body(self, x):
            return x * self.k

        def branch(self, x):
            return x + self.k

        def cond(self, c):
            return c < self.k

        def step(self, c):
            return c + 1.0

    m = M()
    xs = jnp.arange(3.)
    assert float(for_loop(m.body, xs).sum()) == 18.0
    assert float(brainstate.transform.cond(True, m.branch, m.branch, 1.0)) == 7.0
    assert float(brainstate.transform.while_loop(m.cond, m.step, 0.0)) == 6.0
    m.k = 11.0
    assert float(for_loop(m.body, xs).sum()) == 33.0
    assert float(brainstate.transform.cond(True, m.branch, m.branch, 1.0)) == 12.0
    assert float(brainstate.transform.while_loop(m.cond, m.step, 0.0)) == 11.0


def test_scan_carry_reverse_and_pytrees():
    state = brainstate.ShortTermState({'a': jnp.zeros(2), 'b': jnp.ones(())}, name='tree')
    xs = {'u': jnp.arange(10.).reshape(5, 2), 'k': jnp.arange(5)}

    def step(carry, x):
        s = state.value
        state.value = {'a': s['a'] + x['u'], 'b': s['b'] * 2.}
        new = (carry[0] + x['u'].sum(), carry[1] + x['k'])
        return new, {'prod': carry[0] * x['k'], 'u': x['u']}

    def reference(carry, xs, reverse):
        return jax.lax.scan(lambda c, x: ((c[0] + x['u'].sum(), c[1] + x['k']),
                                          {'prod': c[0] * x['k'], 'u': x['u']}),
                            carry, xs, reverse=reverse)

    for reverse in (False, True):
        state.value = {'a': jnp.zeros(2), 'b': jnp.ones(())}
        init = (jnp.float32(0.), jnp.int32(0))
        out = jit(lambda xs: scan(step, init, xs, reverse=reverse, unroll=2))(xs)
        ref = reference(init, xs, reverse)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), out, ref)
        np.testing.assert_allclose(state.value['a'], xs['u'].sum(0), **TOL)
        np.testing.assert_allclose(state.value['b'], 32., **TOL)


def test_scan_without_xs_and_python_number_carry():
    counter = brainstate.ShortTermState(jnp.zeros(()), name='counter')

    def step(c, _):
        counter.value = counter.value + 1.
        return c + 1, c * 2

    carry, ys = scan(step, 0, None, length=4)
    assert int(carry) == 4
    np.testing.assert_array_equal(ys, [0, 2, 4, 6])
    assert float(counter.value) == 4.
    with pytest.raises(ValueError, match='length'):
        scan(step, 0, None)


def test_loop_reads_only_state_not_written():
    w = brainstate.ParamState(jnp.arange(3.), name='w')
    ys = for_loop(lambda x: x * w.value, jnp.ones((4, 3)))
    np.testing.assert_allclose(ys, jnp.tile(jnp.arange(3.), (4, 1)), **TOL)
    np.testing.assert_allclose(w.value, jnp.arange(3.), **TOL)


def test_closure_over_traced_values_and_nested_jit():
    acc = brainstate.ShortTermState(jnp.zeros(2), name='acc')

    @jit
    def helper(x):
        acc.value = acc.value + x
        return acc.value

    @jit
    def run(scale, xs):
        offset = scale * 2.  # a traced value the body closes over
        return for_loop(lambda x: helper(x * scale + offset), xs)

    xs = jnp.ones((3, 2))
    out = run(jnp.float32(2.), xs)
    np.testing.assert_allclose(out, jnp.array([[6., 6.], [12., 12.], [18., 18.]]), **TOL)
    np.testing.assert_allclose(acc.value, [18., 18.], **TOL)


# -- nesting --------------------------------------------------------------------------------

def test_loop_inside_cond_inside_loop():
    count = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='count')
    trace = brainstate.ShortTermState(jnp.zeros(()), name='trace')

    def outer(i):
        def busy():
            def inner(j):
                count.value = count.value + j
                trace.value = trace.value * 0.5 + j
            for_loop(inner, jnp.arange(3))

        def idle():
            trace.value = trace.value - 1.

        cond(i % 2 == 0, busy, idle)
        return count.value

    def reference():
        c, t, outs = 0, 0., []
        for i in range(6):
            if i % 2 == 0:
                for j in range(3):
                    c, t = c + j, t * 0.5 + j
            else:
                t = t - 1.
            outs.append(c)
        return c, t, outs

    c, t, outs = reference()
    for run in (lambda xs: for_loop(outer, xs), jit(lambda xs: for_loop(outer, xs))):
        count.value = jnp.zeros((), jnp.int32)
        trace.value = jnp.zeros(())
        np.testing.assert_array_equal(run(jnp.arange(6)), outs)
        assert int(count.value) == c
        np.testing.assert_allclose(trace.value, t, **TOL)


def test_while_inside_scan_inside_checkpoint():
    steps = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='steps')

    @checkpoint
    def block(xs):
        def body(c, x):
            def grow(v):
                steps.value = steps.value + 1
                return v * 2.
            return while_loop(lambda v: v < x, grow, c), c
        return scan(body, 1., xs)

    carry, ys = jit(block)(jnp.array([3., 10., 100.]))
    assert float(carry) == 128.
    np.testing.assert_allclose(ys, [1., 4., 16.])
    assert int(steps.value) == 7


# -- branches -------------------------------------------------------------------------------

def test_state_written_in_one_branch_only():
    hits = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='hits')
    level = brainstate.ShortTermState(jnp.ones(2), name='level')

    def hit(x):
        hits.value = hits.value + 1
        return x + level.value

    def miss(x):
        return x * 0.

    @jit
    def step(x):
        return cond(x.sum() > 0, hit, miss, x)

    np.testing.assert_allclose(step(jnp.ones(2)), [2., 2.])
    np.testing.assert_allclose(step(-jnp.ones(2)), [0., 0.])
    np.testing.assert_allclose(step(jnp.ones(2)), [2., 2.])
    assert int(hits.value) == 2
    np.testing.assert_allclose(level.value, [1., 1.])


def test_switch_clamps_and_keeps_states():
    log = brainstate.ShortTermState(jnp.zeros(3), name='log')

    def branch(k):
        def run(x):
            log.value = log.value.at[k].add(x)
            return x * (k + 1)
        return run

    branches = [branch(k) for k in range(3)]
    assert float(switch(-4, branches, 1.)) == 1.
    assert float(switch(1, branches, 1.)) == 2.
    assert float(switch(7, branches, 1.)) == 3.
    np.testing.assert_allclose(log.value, [1., 1., 1.])
    out = jit(lambda i, x: switch(i, branches, x))(jnp.int32(2), 5.)
    assert float(out) == 15.
    np.testing.assert_allclose(log.value, [1., 1., 6.])


def test_ifelse_first_true_condition_wins():
    def pick(x):
        return ifelse([x > 5, x > 0, True],
                      [lambda x: x * 100, lambda x: x * 10, lambda x: -x], x, check_cond=False)

    assert float(pick(7.)) == 700.
    assert float(pick(2.)) == 20.
    assert float(pick(-3.)) == 3.
    assert float(jit(pick)(2.)) == 20.


def test_ifelse_checks_exactly_one_condition_by_default():
    def pick(x):
        return ifelse([x > 5, (x > 0) & (x <= 5), x <= 0],
                      [lambda x: x * 100, lambda x: x * 10, lambda x: -x], x)

    assert float(pick(7.)) == 700.
    assert float(pick(2.)) == 20.
    assert float(jit(pick)(-3.)) == 3.
    with pytest.raises(ValueError, match='exactly one condition'):
        ifelse([True, True], [lambda: 1., lambda: 2.])
    with pytest.raises(Exception, match='exactly one condition'):
        jit(lambda x: ifelse([x > 0, x > 1], [lambda: 1., lambda: 2.]))(5.)


def test_branch_errors_are_clear():
    with pytest.raises(TypeError, match='structure'):
        cond(True, lambda: (1., 2.), lambda: 1.)
    with pytest.raises(TypeError, match='f32'):
        cond(True, lambda: jnp.ones(2), lambda: jnp.ones(3))
    state = brainstate.ShortTermState(jnp.zeros(()), name='s')
    with pytest.raises(brainstate.StateArgumentError, match='State s'):
        cond(True, lambda s: 1., lambda s: 2., state)


# -- while loops ----------------------------------------------------------------------------

def test_while_loop_with_states():
    n = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='n')
    limit = brainstate.ParamState(jnp.float32(50.), name='limit')

    def body(x):
        n.value = n.value + 1
        return x * 3.

    out = while_loop(lambda x: x < limit.value, body, 1.)
    assert float(out) == 81. and int(n.value) == 4
    out = jit(lambda x: while_loop(lambda x: x < limit.value, body, x))(2.)
    assert float(out) == 54. and int(n.value) == 7


def test_state_written_in_while_condition_is_an_error():
    flag = brainstate.ShortTermState(jnp.zeros(()), name='flag')

    def bad_cond(x):
        flag.value = flag.value + 1.
        return x < 3.

    with pytest.raises(brainstate.BrainStateError, match='State flag .*condition'):
        while_loop(bad_cond, lambda x: x + 1., 0.)
    assert float(flag.value) == 0.


def test_bounded_while_loop_value_and_grad():
    hits = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='hits')

    def body(x):
        hits.value = hits.value + 1
        return x * 1.5

    assert float(bounded_while_loop(lambda x: x < 10., body, 1., max_steps=20)) == \
        pytest.approx(1.5 ** 6)
    assert int(hits.value) == 6
    # stops at max_steps
    assert float(bounded_while_loop(lambda x: x < 1e9, body, 1., max_steps=3)) == \
        pytest.approx(1.5 ** 3)

    def loss(x):
        return bounded_while_loop(lambda v: v < 10., lambda v: v * x, 1., max_steps=50)

    cj, states = make_jaxpr(loss)(jnp.float32(1.5))
    assert not states
    g = jax.grad(lambda x: jaxpr_as_fun(cj)(x)[0])(jnp.float32(1.5))
    np.testing.assert_allclose(g, 6 * 1.5 ** 5, rtol=1e-5)


# -- gradients ------------------------------------------------------------------------------

def _bptt_setup(n=6, steps=25):
    w = brainstate.ParamState(jnp.linspace(0.2, 1.1, n), name='w')
    V = brainstate.HiddenState(jnp.zeros(n), name='V')
    xs = jnp.sin(jnp.arange(steps * n, dtype=jnp.float32)).reshape(steps, n)

    def reference(wv, xs):
        def step(v, x):
            v = 0.9 * v + jnp.tanh(x * wv)
            return v, v
        _, ys = jax.lax.scan(step, jnp.zeros(n), xs)
        return (ys ** 2).mean()

    return w, V, xs, reference


@pytest.mark.parametrize('loop', ['for_loop', 'checkpointed_for_loop'])
def test_grad_through_for_loop_matches_lax_scan(loop):
    w, V, xs, reference = _bptt_setup()

    def step(x):
        V.value = 0.9 * V.value + jnp.tanh(x * w.value)
        return V.value

    def loss(xs):
        if loop == 'for_loop':
            ys = for_loop(step, xs)
        else:
            ys = checkpointed_for_loop(step, xs, base=4)
        return (ys ** 2).mean()

    cj, states = make_jaxpr(loss)(xs)
    assert [s.label() for s in states] == ['w', 'V']

    def pure(wv, xs):
        return jaxpr_as_fun(cj)(xs, wv, jnp.zeros(6))[0]  # (args, then states)

    np.testing.assert_allclose(jax.grad(pure)(w.value, xs), jax.grad(reference)(w.value, xs),
                               **TOL)
    np.testing.assert_allclose(pure(w.value, xs), reference(w.value, xs), **TOL)


def test_brainstate_grad_through_for_loop():
    grad = brainstate.transform.grad
    w, V, xs, reference = _bptt_setup()

    def loss(xs):
        V.value = jnp.zeros(6)

        def step(x):
            V.value = 0.9 * V.value + jnp.tanh(x * w.value)
            return V.value
        return (for_loop(step, xs) ** 2).mean()

    g = grad(loss, w)(xs)
    np.testing.assert_allclose(g, jax.grad(reference)(w.value, xs), **TOL)
    g = jit(lambda xs: grad(loss, w)(xs))(xs)
    np.testing.assert_allclose(g, jax.grad(reference)(w.value, xs), **TOL)


def test_checkpointed_scan_matches_scan():
    state = brainstate.ShortTermState(jnp.zeros(()), name='s')

    def step(c, x):
        state.value = state.value + x
        return c * 0.9 + x, c

    xs = jnp.arange(11.)
    expected = jax.lax.scan(lambda c, x: (c * 0.9 + x, c), 1., xs)
    for base in (2, 3, 4, 11, 16):  # base >= 2, as published
        state.value = jnp.zeros(())
        out = checkpointed_scan(step, 1., xs, base=base)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), out, expected)
        np.testing.assert_allclose(state.value, xs.sum(), **TOL)


def test_checkpoint_with_states_and_grad():
    w = brainstate.ParamState(jnp.float32(2.), name='w')
    calls = brainstate.ShortTermState(jnp.zeros(()), name='calls')

    @checkpoint
    def layer(x):
        calls.value = calls.value + 1.
        return jnp.sin(x * w.value)

    def loss(x):
        return layer(layer(x))

    cj, states = make_jaxpr(loss)(jnp.float32(0.3))
    assert [s.label() for s in states] == ['calls', 'w']
    g = jax.grad(lambda wv: jaxpr_as_fun(cj)(jnp.float32(0.3), jnp.float32(0.), wv)[0])(
        jnp.float32(2.))
    ref = jax.grad(lambda wv: jnp.sin(jnp.sin(0.3 * wv) * wv))(jnp.float32(2.))
    np.testing.assert_allclose(g, ref, **TOL)
    out = jit(loss)(jnp.float32(0.3))
    np.testing.assert_allclose(out, jnp.sin(jnp.sin(0.6) * 2.), **TOL)
    assert float(calls.value) == 2.


# -- safety -----------------------------------------------------------------------------------

def test_failed_loop_leaves_states_unchanged():
    s = brainstate.ShortTermState(jnp.ones(2), name='s')

    def body(x):
        s.value = s.value + x
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        for_loop(body, jnp.ones((3, 2)))
    np.testing.assert_array_equal(s.value, jnp.ones(2))
    assert type(s.value) is type(jnp.ones(2))


def test_carry_type_change_is_an_error():
    with pytest.raises(TypeError, match=r'carry.*f32\[3\]'):
        scan(lambda c, x: (jnp.ones(3), x), jnp.ones(2), jnp.ones(4))
    with pytest.raises(TypeError, match='pair'):
        scan(lambda c, x: c, 0., jnp.ones(4))


def test_state_written_with_new_shape_in_loop_is_an_error():
    s = brainstate.ShortTermState(jnp.zeros(2), name='net.V')

    def body(x):
        s.value = jnp.zeros(3)

    with pytest.raises(brainstate.StateValueError, match='net.V'):
        for_loop(body, jnp.ones(4))


def test_progress_bar_keeps_the_compilation_cache(capsys, monkeypatch):
    from brainstate.transform import _progress_bar
    # exercise the plain-text bar even if tqdm exists
    monkeypatch.setattr(_progress_bar, 'tqdm_installed', False)
    traces = []
    acc = brainstate.ShortTermState(jnp.zeros(()), name='acc')

    def body(x):
        traces.append(1)
        acc.value = acc.value + x
        return acc.value

    bar = brainstate.transform.ProgressBar(freq=5, desc='sim')
    run = jit(lambda xs: for_loop(body, xs, pbar=bar))
    for _ in range(2):
        out = run(jnp.ones(20))
        jax.effects_barrier()
    np.testing.assert_allclose(out, jnp.arange(21., 41.), **TOL)
    assert len(traces) == 1
    err = capsys.readouterr().err
    finals = [line for line in err.splitlines() if line.startswith('sim: 100%')]
    assert len(finals) == 2 and all('20/20' in line for line in finals)
    assert '5/20' in err
    # pbar=True and an int frequency work too
    np.testing.assert_allclose(for_loop(lambda x: x, jnp.ones(4), pbar=True), jnp.ones(4))
    np.testing.assert_allclose(scan(lambda c, x: (c + x, c), 0., jnp.ones(4), pbar=2)[0], 4.)
    jax.effects_barrier()


def test_checkpointed_scan_reverse_and_published_checks():
    xs = jnp.arange(1., 8.)

    def step(c, x):
        return c * 0.5 + x, c

    ref = jax.lax.scan(step, 1., xs, reverse=True)
    out = checkpointed_scan(step, 1., xs, base=3, reverse=True)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-6)
    with pytest.raises(ValueError, match='base'):
        checkpointed_scan(step, 1., xs, base=1)
    with pytest.raises(ValueError, match='length'):
        checkpointed_scan(step, 1., jnp.zeros((0,)))
    with pytest.raises(ValueError, match='pair'):
        checkpointed_scan(lambda c, x: c + x, 1., xs)


def test_scan_under_disable_jit_is_a_python_loop():
    order = []

    def step(c, x):
        order.append(float(x))
        return c + x, c

    with jax.disable_jit():
        carry, ys = brainstate.transform.scan(step, 0., jnp.arange(1., 4.), reverse=True)
    assert order == [3., 2., 1.]
    ref = jax.lax.scan(lambda c, x: (c + x, c), 0., jnp.arange(1., 4.), reverse=True)
    np.testing.assert_allclose(ys, ref[1])
    assert float(carry) == 6.
