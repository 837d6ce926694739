"""The grad family called inside an enclosing brainstate trace (``grad`` inside ``jit``, a loop
body, ``vmap``, another grad) runs the function directly under the JAX transform: the enclosing
trace records only JAX's primitives. Results are those of hand-written JAX, bit for bit; what
the direct run does not handle goes through the IR as before."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import ParamState, ShortTermState
from brainstate.transform import _autograd
from brainstate.transform import (for_loop, grad, hessian, jacfwd, jacrev, jit, jvp, make_jaxpr,
                                  value_and_grad, vector_grad, vmap)


def counts():
    return dict(_autograd.DIRECT_IN_TRACE)


def ran(before, direct=0, fallbacks=0):
    now = counts()
    assert now['direct'] - before['direct'] == direct, (before, now)
    assert now['fallbacks'] - before['fallbacks'] == fallbacks, (before, now)


def assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b), (jax.tree.structure(a),
                                                          jax.tree.structure(b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class Net(brainstate.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = ParamState(jnp.array([[0.5, -1.0], [1.5, 0.25], [-0.3, 0.8]]))
        self.b = ParamState({'bias': jnp.array([0.1, -0.2])})
        self.calls = ShortTermState(jnp.array(0))


def pure_loss(w, b, x, scale):
    return jnp.sum(jnp.tanh(x @ w + b['bias']) ** 2) * scale


X = jnp.array([[1.0, 2.0, -1.0], [0.5, -0.5, 0.3]])
SCALE = jnp.array(1.5)


@pytest.fixture
def net():
    return Net()


def make_loss(net):
    def loss(x, scale):
        net.calls.value = net.calls.value + 1  # written, never differentiated
        return pure_loss(net.w.value, net.b.value, x, scale)
    return loss


def test_sgd_step_in_jit_runs_directly_and_matches_jax(net):
    loss = make_loss(net)
    params = net.states(ParamState)
    w0, b0 = net.w.value, net.b.value

    @jit
    def step(x, scale):
        grads = grad(loss, params)(x, scale)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - 0.1 * g, params[key].value,
                                             grads[key])
        return grads

    @jax.jit
    def raw_step(w, b, x, scale):
        gw, gb = jax.grad(pure_loss, argnums=(0, 1))(w, b, x, scale)
        return (gw, gb), w - 0.1 * gw, jax.tree.map(lambda p, g: p - 0.1 * g, b, gb)

    before = counts()
    grads = step(X, SCALE)
    ran(before, direct=1)
    (gw, gb), w1, b1 = raw_step(w0, b0, X, SCALE)
    assert_same((grads[('w',)], grads[('b',)]), (gw, gb))
    assert_same((net.w.value, net.b.value), (w1, b1))
    assert int(net.calls.value) == 1  # the write inside the loss landed, once
    step(X, SCALE)
    assert int(net.calls.value) == 2


def test_the_function_runs_once_under_the_jax_transform_and_is_not_traced_into_the_ir(net):
    runs = []

    def loss(x):
        runs.append(isinstance(net.w.value, jax.core.Tracer))
        return pure_loss(net.w.value, net.b.value, x, SCALE)

    g = grad(loss, net.w)
    closed, _ = make_jaxpr(lambda x: g(x))(X)
    assert runs == [True]  # once, with the JAX transform's tracer swapped in
    assert g._cache == {}  # no program of the function was traced, passed and lowered
    raw = jax.make_jaxpr(lambda w, b, x: jax.grad(pure_loss)(w, b, x, SCALE))(
        net.w.value, net.b.value, X)
    assert len(closed.jaxpr.eqns) <= len(raw.jaxpr.eqns)


@pytest.mark.parametrize('form', ['plain', 'aux', 'value', 'aux_value', 'argnums', 'both'])
def test_return_forms_in_jit_match_jax(net, form):
    w0, b0 = net.w.value, net.b.value

    def loss(x, scale):
        out = pure_loss(net.w.value, net.b.value, x, scale)
        return (out, {'twice': 2 * out}) if 'aux' in form else out

    def pure(w, x, scale):
        out = pure_loss(w, b0, x, scale)
        return (out, {'twice': 2 * out}) if 'aux' in form else out

    has_aux = 'aux' in form
    ret = 'value' in form
    if form == 'argnums':
        g = grad(loss, argnums=(0, 1))
        ref = jax.jit(lambda x, s: jax.grad(lambda x_, s_: pure(w0, x_, s_),
                                            argnums=(0, 1))(x, s))
    elif form == 'both':
        g = grad(loss, net.w, argnums=1)
        ref = jax.jit(lambda x, s: jax.grad(pure, argnums=(0, 2))(w0, x, s))
    else:
        g = grad(loss, net.w, has_aux=has_aux, return_value=ret)
        ref = jax.jit(lambda x, s: (jax.value_and_grad if ret else jax.grad)(
            pure, has_aux=has_aux)(w0, x, s))
    before = counts()
    got = jit(g)(X, SCALE)
    ran(before, direct=1)
    want = ref(X, SCALE)
    if ret:  # ours: (grads, value[, aux]); jax: ((value[, aux]), grads)
        (value, *aux), grads = (want[0] if has_aux else (want[0],)), want[1]
        want = (grads, value, *aux)
    elif form == 'both':
        want = (want[0], want[1])
    assert_same(got, want)


def test_the_rest_of_the_family_in_jit_matches_jax(net):
    w0, b0 = net.w.value, net.b.value

    def vec(x):
        return jnp.tanh(x @ net.w.value)

    def scalar(x):
        return jnp.sum(jnp.tanh(x @ net.w.value) ** 2)

    cases = [
        (vector_grad(vec, net.w),
         lambda x: jax.vjp(lambda w: jnp.tanh(x @ w), w0)[1](jnp.ones((2, 2)))[0]),
        (value_and_grad(scalar, net.w),
         lambda x: jax.value_and_grad(lambda w: jnp.sum(jnp.tanh(x @ w) ** 2))(w0)),
        (jacrev(vec, net.w), lambda x: jax.jacrev(lambda w: jnp.tanh(x @ w))(w0)),
        (jacfwd(vec, net.w), lambda x: jax.jacfwd(lambda w: jnp.tanh(x @ w))(w0)),
        (hessian(scalar, net.w),
         lambda x: jax.hessian(lambda w: jnp.sum(jnp.tanh(x @ w) ** 2))(w0)),
    ]
    for transform, reference in cases:
        before = counts()
        got = jit(transform)(X)
        ran(before, direct=1)
        assert_same(got, jax.jit(reference)(X))


def test_jvp_in_jit_matches_jax(net):
    w0 = net.w.value
    tw = jnp.ones_like(w0)

    @jit
    def f(x, tx):
        return jvp(lambda x_: jnp.tanh(x_ @ net.w.value), (x,), (tx,), grad_states=net.w,
                   state_tangents=tw)

    before = counts()
    got = f(X, jnp.ones_like(X))
    ran(before, direct=1)
    want = jax.jit(lambda x, tx: jax.jvp(lambda x_, w: jnp.tanh(x_ @ w), (x, w0),
                                          (tx, tw)))(X, jnp.ones_like(X))
    assert_same(got, want)


def test_grad_of_grad_in_jit(net):
    w0 = net.w.value

    def inner(x):
        return jnp.sum(jnp.sin(x @ net.w.value))

    def outer(x):
        return jnp.sum(grad(inner, net.w)(x) ** 2)

    before = counts()
    got = jit(grad(outer, net.w))(X)
    ran(before, direct=2)
    want = jax.jit(jax.grad(lambda w: jnp.sum(jax.grad(
        lambda w_: jnp.sum(jnp.sin(X @ w_)))(w) ** 2)))(w0)
    assert_same(got, want)


def test_grad_inside_a_loop_a_vmap_and_a_branch_in_jit(net):
    w0, b0 = net.w.value, net.b.value
    loss = make_loss(net)
    xs = jnp.stack([X, 2 * X, -X])

    @jit
    def in_loop(xs):
        def body(x):
            g = grad(loss, net.w)(x, SCALE)
            net.w.value = net.w.value - 0.1 * g
            return g
        return for_loop(body, xs)

    def raw_body(w, x):
        g = jax.grad(pure_loss)(w, b0, x, SCALE)
        return w - 0.1 * g, g

    before = counts()
    gs = in_loop(xs)
    ran(before, direct=1)
    w_end, raw_gs = jax.jit(lambda w, xs: jax.lax.scan(raw_body, w, xs))(w0, xs)
    assert_same(gs, raw_gs)
    assert_same(net.w.value, w_end)
    assert int(net.calls.value) == 3

    net.w.value = w0
    before = counts()
    got = jit(vmap(lambda x: grad(lambda x_: pure_loss(net.w.value, net.b.value, x_, SCALE),
                                  net.w)(x)))(xs)
    ran(before, direct=1)
    assert_same(got, jax.jit(jax.vmap(lambda x: jax.grad(pure_loss)(w0, b0, x, SCALE)))(xs))

    @jit
    def in_branch(x, flag):
        return brainstate.transform.cond(flag, lambda: grad(loss, net.w)(x, SCALE),
                                         lambda: jnp.zeros_like(net.w.value))

    before = counts()
    got = in_branch(X, True)
    ran(before, direct=1)
    assert_same(got, jax.jit(lambda x: jax.grad(pure_loss)(w0, b0, x, SCALE))(X))


def test_a_loop_inside_the_differentiated_function(net):
    w0 = net.w.value

    def loss(x):
        def body(i):
            net.calls.value = net.calls.value + 1
            return jnp.sum(jnp.tanh(x @ net.w.value) * i)
        return jnp.sum(for_loop(body, jnp.arange(3.)))

    def pure(w, x):
        return jnp.sum(jax.lax.scan(lambda c, i: (c, jnp.sum(jnp.tanh(x @ w) * i)), None,
                                    jnp.arange(3.))[1])

    before = counts()
    got = jit(grad(loss, net.w))(X)
    ran(before, direct=1)
    np.testing.assert_allclose(got, jax.jit(jax.grad(pure))(w0, X), rtol=1e-6)
    assert int(net.calls.value) == 3


def test_a_state_read_only_inside_the_function_is_read_in_the_enclosing_trace(net):
    other = ShortTermState(jnp.array(3.0))

    @jit
    def step(x):
        g = grad(lambda x_: jnp.sum(net.w.value * other.value * x_.sum()), net.w)(x)
        other.value = other.value + 1.0
        return g

    got = step(X)
    assert_same(got, jnp.full_like(net.w.value, 3.0 * X.sum()))
    got = step(X)
    assert_same(got, jnp.full_like(net.w.value, 4.0 * X.sum()))
    assert float(other.value) == 5.0


def test_a_state_created_inside_the_function(net):
    made = []

    def loss(x):
        s = ShortTermState(jnp.sum(x))
        s.value = s.value * 2.0
        made.append(s)
        return jnp.sum(net.w.value) * s.value

    @jit
    def step(x):
        g = grad(loss, net.w)(x)
        return g, made[-1].value

    g, v = step(X)
    assert_same(g, jnp.full_like(net.w.value, 2.0 * X.sum()))
    assert float(v) == float(2.0 * X.sum())


def test_what_the_direct_run_refuses_goes_through_the_ir(net):
    # A user's pipeline is never bypassed.
    before = counts()
    got = jit(grad(lambda x: jnp.sum(net.w.value * x.sum()), net.w, passes=[]))(X)
    ran(before)
    assert_same(got, jnp.full_like(net.w.value, X.sum()))
    # A grad state never read: the IR path names it.
    before = counts()
    with pytest.raises(brainstate.GradientError, match='never read'):
        jit(grad(lambda x: jnp.sum(x), net.w))(X)
    ran(before, fallbacks=1)
    # has_aux without a pair: the IR path explains.
    with pytest.raises(TypeError, match='pair'):
        jit(grad(lambda x: jnp.sum(net.w.value * x.sum()), net.w, has_aux=True))(X)
    # An integer grad state.
    with pytest.raises(brainstate.GradientError, match='integer'):
        jit(grad(lambda x: jnp.sum(net.calls.value * x), net.calls))(X)


def test_an_error_inside_the_function_leaves_every_state_as_it_was(net):
    w0, calls0 = net.w.value, net.calls.value

    def loss(x):
        net.calls.value = net.calls.value + 1
        net.w.value = net.w.value * 2.0
        raise ValueError('boom')

    @jit
    def step(x):
        return grad(loss, net.w)(x)

    with pytest.raises(ValueError, match='boom'):
        step(X)
    assert net.w.value is w0 and net.calls.value is calls0
    assert not any(isinstance(leaf, jax.core.Tracer) for s in (net.w, net.calls, net.b)
                   for leaf in jax.tree.leaves(s.value))


def test_no_tracer_leaks(net):
    loss = make_loss(net)

    def step(x):
        g = grad(loss, net.w)(x, SCALE)
        net.w.value = net.w.value - 0.1 * g
        return grad(lambda x_: jnp.sum(grad(lambda y: jnp.sum(jnp.sin(y @ net.w.value)),
                                            net.w)(x_)), net.w)(x)

    with jax.checking_leaks():
        before = counts()
        jit(step)(X)
        ran(before, direct=3)
        make_jaxpr(step)(X)


def test_a_direct_run_lets_go_of_its_tracers_inside_the_jax_transform(net, monkeypatch):
    # JAX 0.11+ checks, under jax.checking_leaks, that no tracer of jax.grad's trace outlives
    # it: the context of the run forgets the values (that trace's tracers) when the function
    # returns, while jax.grad's trace is still the current one, not after jax.grad returned.
    from brainstate._compat import current_jax_trace
    from brainstate.transform._direct import DirectContext
    seen = []
    original = DirectContext.release

    def release(self):
        seen.append((self.outer_trace, current_jax_trace()))
        original(self)

    monkeypatch.setattr(DirectContext, 'release', release)
    before = counts()
    jit(lambda x: grad(make_loss(net), net.w)(x, SCALE))(X)
    ran(before, direct=1)
    assert seen and all(outer is not None and now is not outer for outer, now in seen), seen


def test_last_program_and_stateful_target_are_traced_when_asked(net):
    g = grad(lambda x: jnp.sum(jnp.cos(net.w.value * x.sum())), net.w)

    @jit
    def outer(x):
        return g(x)

    before = counts()
    outer(X)
    ran(before, direct=1)
    assert g._cache == {}  # nothing traced into the IR during the call
    program = g.last_program
    assert program is not None and 'cos' in str(program.graph)
    sf = g.stateful_target
    keys = sf._compilation_cache.keys()
    assert len(keys) == 1
    assert list(sf.get_states_by_cache(keys[0])) == [net.w]


def test_random_draws_inside_the_function_match_the_ir_path(net):
    def loss(x):
        noise = brainstate.random.normal(size=x.shape)
        return jnp.sum(jnp.tanh((x + noise) @ net.w.value))

    results = []
    for passes in (None, []):  # the direct run; a pipeline given: through the IR
        brainstate.random.seed(7)
        before = counts()
        g = jit(grad(loss, net.w, passes=passes))(X)
        ran(before, direct=1 if passes is None else 0)
        results.append((g, jax.random.key_data(brainstate.random.DEFAULT.value)))
    assert_same(results[0], results[1])


def test_a_write_the_enclosing_context_refuses_is_its_error(net):
    def loss(x):
        net.calls.value = net.calls.value + 1
        return jnp.sum(net.w.value * x.sum())

    def cond(i):
        return jnp.sum(grad(loss, net.w)(X)) > i

    with pytest.raises(brainstate.StateValueError, match='condition function'):
        jit(lambda: brainstate.transform.while_loop(cond, lambda i: i + 1., 0.))()
    assert int(net.calls.value) == 0


def test_vjp_in_jit_matches_jax(net):
    w0 = net.w.value

    @jit
    def f(x, ct):
        def fun(x_):
            net.calls.value = net.calls.value + 1
            return jnp.tanh(x_ @ net.w.value)
        out, pullback = brainstate.transform.vjp(fun, x, grad_states=net.w)
        return out, pullback(ct)

    ct = jnp.ones((2, 2))
    before = counts()
    got = f(X, ct)
    ran(before, direct=1)

    @jax.jit  # (compiled as ours is: XLA may fuse the matmul's transpose differently eagerly)
    def expected(w, x, ct):
        out, pullback = jax.vjp(lambda w, x: jnp.tanh(x @ w), w, x)
        return out, pullback(ct)

    assert_same(got, expected(w0, X, ct))
    assert int(net.calls.value) == 1


def test_a_state_the_enclosing_trace_created_is_read_and_written_inside(net):
    @jit
    def step(x):
        acc = ShortTermState(jnp.zeros(()))

        def loss(x_):
            acc.value = acc.value + jnp.sum(x_)
            return jnp.sum(net.w.value) * acc.value

        g = grad(loss, net.w)(x)
        return g, acc.value

    before = counts()
    g, acc = step(X)
    ran(before, direct=1)
    assert float(acc) == float(jnp.sum(X))
    assert_same(g, jnp.full_like(net.w.value, jnp.sum(X)))
