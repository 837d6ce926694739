"""Transforms built inline and called eagerly: one trace and one compile per function and
signature, and a new trace whenever what the function reads changed (issue 15, issue 8.2)."""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import eager_cache_info

T = brainstate.transform

_K = 2.0  # a global read by a function below


def _counts():
    info = eager_cache_info()
    return info['traces'], info['untraced_hits']


def test_inline_grad_is_traced_once_and_matches_jax():
    w = brainstate.ParamState(jnp.linspace(0.5, 1.5, 16))
    x = jnp.linspace(-1., 1., 16)
    calls = collections.deque()  # (keyed by identity: appending does not change the key)

    def loss(x):
        calls.append(1)  # runs only while tracing
        return jnp.sum(jnp.tanh(w.value * x))

    expected = jax.grad(lambda w_, x_: jnp.sum(jnp.tanh(w_ * x_)))(w.value, x)
    traces0, hits0 = _counts()
    for _ in range(5):
        g = T.grad(loss, w)(x)
        np.testing.assert_allclose(g, expected, rtol=1e-6)
    traces1, hits1 = _counts()
    # The first call runs `loss` directly under jax.grad (like raw JAX's eager grad: no
    # trace), the second traces and compiles the program, the rest run it untraced.
    assert traces1 - traces0 == 1 and hits1 - hits0 == 3
    assert len(calls) == 2


@pytest.mark.parametrize('make, runs', [
    (lambda f: (lambda x: T.vector_grad(f)(x)), 2),  # (run directly, then traced once)
    (lambda f: (lambda x: T.vmap(f)(x)), 2),
    (lambda f: (lambda x: T.for_loop(f, x)), 1),
    (lambda f: (lambda x: T.checkpoint(f)(x).sum()), 1),
    (lambda f: (lambda x: T.map(f, x)), 1),
])
def test_every_inline_eager_transform_reuses_its_program(make, runs):
    calls = collections.deque()  # (keyed by identity: appending does not change the key)

    def f(x):
        calls.append(1)
        return jnp.sin(x) * 3.0

    run = make(f)
    x = jnp.linspace(0., 1., 8)
    first = run(x)
    # (The grad family and vmap run a first call directly, without a trace, and trace and
    # compile on the second: count from there.)
    np.testing.assert_allclose(run(x), first, rtol=1e-6)
    traces0, _ = _counts()
    for _ in range(3):
        np.testing.assert_allclose(run(x), first, rtol=1e-6)
    assert _counts()[0] == traces0
    assert len(calls) == runs


def test_a_changed_closure_value_retraces():
    def make(scale):
        def f(x):
            return jnp.sum(scale * x ** 2)
        return f

    x = jnp.arange(3.)
    np.testing.assert_allclose(T.grad(make(1.0), argnums=0)(x), 2 * x)
    np.testing.assert_allclose(T.grad(make(3.0), argnums=0)(x), 6 * x)
    # A cell rebound in place (nonlocal) is seen too.
    scale = 1.0

    def f(x):
        return jnp.sum(scale * x ** 2)

    np.testing.assert_allclose(T.grad(f, argnums=0)(x), 2 * x)
    scale = 0.0
    assert not np.any(np.signbit(T.grad(f, argnums=0)(x)))
    scale = -0.0  # the same function, its cell now -0.0: keyed by bits, not by ==
    assert np.all(np.signbit(T.grad(f, argnums=0)(x)))


def test_a_changed_global_retraces():
    global _K
    x = jnp.arange(4.)

    def f(x):
        return jnp.sum(_K * x)

    try:
        _K = 2.0
        np.testing.assert_allclose(T.grad(f, argnums=0)(x), 2.0)
        _K = 5.0
        np.testing.assert_allclose(T.grad(f, argnums=0)(x), 5.0)
    finally:
        _K = 2.0


def test_a_changed_attribute_retraces_and_an_equal_one_does_not():
    class Model(brainstate.Module):
        def __init__(self):
            super().__init__()
            self.v = brainstate.HiddenState(jnp.zeros(()))
            self.k = 2.0

        def body(self, i):
            self.v.value = self.v.value + self.k * i

    m = Model()
    T.for_loop(m.body, jnp.arange(3.))
    assert float(m.v.value) == 6.0
    m.k = 10.
    T.for_loop(m.body, jnp.arange(3.))
    assert float(m.v.value) == 36.0
    traces0, _ = _counts()
    T.for_loop(m.body, jnp.arange(3.))
    assert float(m.v.value) == 66.0
    assert _counts()[0] == traces0


def test_a_new_array_in_a_closure_retraces_with_its_value():
    x = jnp.ones(3)
    outs = []
    for bias in (jnp.zeros(3), jnp.full(3, 2.0)):
        outs.append(T.vmap(lambda v: v + bias)(x))
    np.testing.assert_array_equal(outs[0], 1.0)
    np.testing.assert_array_equal(outs[1], 3.0)


def test_partial_and_bound_methods_are_keyed_by_their_contents():
    def f(a, x):
        return jnp.sum(a * x)

    x = jnp.arange(3.)
    np.testing.assert_allclose(T.grad(functools.partial(f, 2.0), argnums=0)(x), 2.0)
    np.testing.assert_allclose(T.grad(functools.partial(f, 7.0), argnums=0)(x), 7.0)


def test_state_writes_of_reused_programs_are_kept():
    counter = brainstate.State(jnp.zeros(()))

    def body(i):
        counter.value = counter.value + i

    for _ in range(3):
        T.for_loop(body, jnp.arange(4.))
    assert float(counter.value) == 18.0


def test_a_state_whose_structure_changed_is_retraced():
    s = brainstate.State({'a': jnp.zeros(2)})

    def body(i):
        s.value = jax.tree.map(lambda v: v + i, s.value)

    T.for_loop(body, jnp.arange(2.))
    s.value = {'b': jnp.zeros(2), 'c': jnp.ones(2)}
    T.for_loop(body, jnp.arange(2.))
    np.testing.assert_array_equal(s.value['b'], 1.0)
    np.testing.assert_array_equal(s.value['c'], 2.0)


def test_grad_with_passes_empty_runs_no_optional_pass():
    w = brainstate.ParamState(jnp.ones(4))

    def loss(x):
        y = jnp.sin(w.value * x)
        unused = jnp.cos(x) * 3.0  # dce would remove it; with passes=[] it stays
        return jnp.sum(y)

    x = jnp.arange(4.)
    g = T.grad(loss, w, passes=[])
    expected = jax.grad(lambda w_: jnp.sum(jnp.sin(w_ * x)))(w.value)
    np.testing.assert_allclose(g(x), expected, rtol=1e-6)
    ran = [r.name for r in g.last_program.pass_manager.records]
    assert ran == ['hoist-states']  # what lowering needs, nothing optional
    assert 'cos' in str(g.last_program.graph)
    np.testing.assert_allclose(T.jit(lambda x: g(x), passes=[])(x), expected, rtol=1e-6)
    default = T.grad(loss, w)
    np.testing.assert_allclose(default(x), expected, rtol=1e-6)  # (run directly: no trace)
    assert default.last_program is None
    np.testing.assert_allclose(default(x), expected, rtol=1e-6)
    assert 'dce' in [r.name for r in default.last_program.pass_manager.records]
    assert 'cos' not in str(default.last_program.graph)


def test_bad_arguments_to_an_eager_transform_name_the_users_function():
    w = brainstate.ParamState(jnp.ones(3))

    def loss(x):
        return jnp.sum(w.value * x)

    with pytest.raises(brainstate.ArgumentTypeError, match=r'^loss received a str'):
        T.grad(loss, w)('abc')
    np.testing.assert_array_equal(w.value, np.ones(3))


def test_a_first_inline_grad_runs_directly_and_the_second_compiles():
    w = brainstate.ParamState(jnp.linspace(0.5, 1.5, 16))
    x = jnp.linspace(-1., 1., 16)
    calls = collections.deque()

    def loss(x):
        calls.append(1)
        w.value = w.value * 1.0  # a state write: stored after the direct run too
        return jnp.sum(jnp.tanh(w.value * x))

    expected = jax.grad(lambda w_, x_: jnp.sum(jnp.tanh(w_ * x_)))(w.value, x)
    info0 = eager_cache_info()
    np.testing.assert_allclose(T.grad(loss, w)(x), expected, rtol=1e-6)
    info1 = eager_cache_info()
    assert info1['direct'] - info0['direct'] == 1 and info1['traces'] == info0['traces']
    assert info1['compiled_programs'] == info0['compiled_programs']
    assert not isinstance(w.value, jax.core.Tracer)
    np.testing.assert_allclose(T.grad(loss, w)(x), expected, rtol=1e-6)
    info2 = eager_cache_info()
    assert info2['traces'] - info1['traces'] == 1 and info2['op_by_op'] == info1['op_by_op']
    assert len(calls) == 2  # once directly, once traced
    np.testing.assert_allclose(T.grad(loss, w)(x), expected, rtol=1e-6)
    assert eager_cache_info()['traces'] == info2['traces'] and len(calls) == 2


def test_a_failing_first_direct_grad_leaves_states_intact():
    w = brainstate.ParamState(jnp.ones(3))
    other = brainstate.ShortTermState(jnp.zeros(3))

    def loss(x):
        other.value = other.value + 1.0
        if x.shape[0] == 3:
            raise ValueError('bad input')
        return jnp.sum(w.value * x)

    with pytest.raises(ValueError, match='bad input'):
        T.grad(loss, w)(jnp.ones(3))
    np.testing.assert_array_equal(other.value, np.zeros(3))
    np.testing.assert_array_equal(w.value, np.ones(3))


def test_a_library_function_in_a_key_is_described_by_identity():
    from brainstate.transform._fun_key import BUDGET, _Walker
    walker = _Walker()
    walker.key(T.vmap(lambda x: x * 2.))  # holds jax.vmap as its `mapping` option
    assert BUDGET - walker.left < 100  # (walking jax.vmap's globals took ~600 items)
    same = lambda x: x * 2.
    assert _Walker().key(T.vmap(same)) == _Walker().key(T.vmap(same))
    assert _Walker().key(T.vmap(same)) != _Walker().key(T.vmap(same, out_axes=1))
