"""The published transform API (brainstate 0.5.4) on top of our pipeline, checked against
hand-written JAX."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxpr_as_fun

import brainstate
from brainstate import transform as T

TOL = dict(rtol=1e-5, atol=1e-6)


# -- StatefulFunction and make_jaxpr ----------------------------------------------------------

def _counter_step():
    s = brainstate.State(jnp.array([1.0, 2.0]), name='s')
    r = brainstate.State(jnp.array([3.0, 4.0]), name='r')

    def f(x):
        s.value = s.value + x * r.value
        return (s.value * 2).sum()

    return s, r, f


def test_stateful_function_jaxpr_is_args_then_states():
    s, r, f = _counter_step()
    sf = T.StatefulFunction(f, return_only_write=False)
    x = jnp.array([0.5, -1.0])
    key = sf.make_jaxpr(x).get_arg_cache_key(x)
    states = sf.get_states_by_cache(key)
    assert set(states) == {s, r}
    assert sf.get_write_states_by_cache(key) == (s,)
    assert sf.get_read_states_by_cache(key) == (r,)
    jaxpr = sf.get_jaxpr_by_cache(key)
    outs = jaxpr_as_fun(jaxpr)(x, *[st.value for st in states])
    new_s = s.value + x * r.value
    np.testing.assert_allclose(outs[0], (new_s * 2).sum(), **TOL)
    by_state = dict(zip(states, outs[1:]))
    np.testing.assert_allclose(by_state[s], new_s, **TOL)
    np.testing.assert_allclose(by_state[r], r.value, **TOL)   # read-only: passed through
    # nothing ran: the states are unchanged
    np.testing.assert_allclose(s.value, [1.0, 2.0])


def test_stateful_function_call_updates_states_and_caches():
    s, r, f = _counter_step()
    sf = T.StatefulFunction(f)
    x = jnp.array([1.0, 1.0])
    out = sf(x)
    np.testing.assert_allclose(s.value, [4.0, 6.0])
    np.testing.assert_allclose(out, 20.0)
    sf(x)
    np.testing.assert_allclose(s.value, [7.0, 10.0])
    stats = sf.get_cache_stats()['compilation_cache']
    assert stats['size'] == 1 and set(stats) >= {'hits', 'misses', 'maxsize', 'hit_rate'}
    new_vals, out = sf.jaxpr_call([st.value for st in sf.get_states(x)], x)
    np.testing.assert_allclose(s.value, [7.0, 10.0])   # jaxpr_call touches no State
    with pytest.raises(ValueError, match='State length mismatch'):
        sf.jaxpr_call([], x)
    with pytest.raises(ValueError, match='not compiled'):
        sf.get_jaxpr(jnp.ones(3), compile_if_miss=False)
    sf.clear_cache()
    assert sf.get_cache_stats()['compilation_cache']['size'] == 0


def test_stateful_function_recompiles_after_a_state_changes_shape():
    st = brainstate.State(jnp.ones(2))

    def f(x):
        st.value = st.value + 1.
        return st.value.sum() + x

    sf = T.StatefulFunction(f)
    assert float(sf(jnp.float32(0.))) == 4.
    st.value = jnp.ones(3)
    assert float(sf(jnp.float32(0.))) == 6.


def test_stateful_function_refuses_states_as_arguments():
    st = brainstate.State(jnp.zeros(3))
    with pytest.raises(ValueError, match='cannot be an instance of State'):
        T.StatefulFunction(lambda s: s.value).make_jaxpr(st)
    with pytest.raises(ValueError, match='static_argnums contains index 2'):
        T.StatefulFunction(lambda x: x, static_argnums=2).make_jaxpr(jnp.ones(1))


def test_make_jaxpr_return_only_write_and_shape():
    s, r, f = _counter_step()
    x = jnp.ones(2)
    jaxpr, states, out_shape = T.make_jaxpr(f, return_only_write=True, return_shape=True)(x)
    assert len(jaxpr.jaxpr.outvars) == 2   # the result, the written state s
    assert out_shape.shape == () and out_shape.dtype == jnp.float32


# -- jit -------------------------------------------------------------------------------------

def test_jit_published_attributes_and_staging():
    st = brainstate.State(jnp.zeros(3))

    def f(x):
        st.value = st.value + x
        return st.value * 2

    jf = T.jit(f, name='stepper')
    assert jf.origin_fun is f
    x = jnp.arange(3.)
    np.testing.assert_allclose(jf(x), 2 * x)
    key = jf.stateful_fun.get_arg_cache_key(x)
    assert jf.stateful_fun.get_states_by_cache(key) == (st,)
    assert callable(jf.jitted_fun)
    assert 'stepper' in jf.lower(x).as_text()
    compiled = jf.compile(x)
    assert compiled is not None
    assert jf.eval_shape(x).shape == (3,)
    assert jf.trace(x) is not None
    np.testing.assert_allclose(st.value, x)   # staging ran nothing


def test_jit_shardings_and_argnums_checks():
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    sharding = NamedSharding(Mesh(np.array(jax.devices()[:1]), ('x',)), P('x'))
    st = brainstate.State(jnp.zeros(4))

    @T.jit(in_shardings=(sharding,), out_shardings=sharding)
    def f(x):
        st.value = st.value + x
        return x * 2.

    np.testing.assert_allclose(f(jnp.arange(4.)), jnp.arange(4.) * 2)
    np.testing.assert_allclose(st.value, jnp.arange(4.))
    with pytest.raises(NotImplementedError):
        T.jit(lambda x: x, in_shardings=sharding)
    with pytest.raises(ValueError):
        T.jit(lambda x: x, donate_argnums=-1)
    with pytest.raises(ValueError):
        T.jit(lambda x, n: x * n, static_argnums=-1)


def test_deprecated_alias_modules_warn_and_forward():
    with pytest.warns(DeprecationWarning, match='brainstate.transform.jit'):
        jit = brainstate.compile.jit
    assert jit is T.jit
    with pytest.warns(DeprecationWarning):
        assert brainstate.augment.grad is T.grad
    with pytest.raises(AttributeError):
        brainstate.compile.vmap_new_states


# -- unvmap, jit_error_if, checkify ---------------------------------------------------------

def test_unvmap_reduces_over_the_batch():
    xs = jnp.array([[1.0, -1.0], [-1.0, -3.0]])
    out = jax.vmap(lambda row: T.unvmap(row > 0, op='any'))(xs)
    np.testing.assert_array_equal(out, [True, True])
    out = jax.vmap(lambda row: T.unvmap(row, op='max'))(xs)
    np.testing.assert_allclose(out, [1.0, 1.0])
    out = T.vmap(lambda row: T.unvmap(row > -2, op='all'))(xs)
    np.testing.assert_array_equal(out, [False, False])
    assert bool(T.unvmap(jnp.array([False, True]), 'any'))
    with pytest.raises(ValueError):
        T.unvmap(xs, op='sum')


def test_jit_error_if_eager_jit_and_vmap():
    T.jit_error_if(False, 'never')
    with pytest.raises(ValueError, match='bad 3'):
        T.jit_error_if(True, 'bad {}', 3)

    @T.jit
    def f(x):
        T.jit_error_if(x < 0, 'negative: {x}', x=x)
        return x * 2

    assert float(f(1.)) == 2.
    with pytest.raises(Exception, match='negative'):
        f(-1.)
        jax.block_until_ready(f(-1.))
    jax.vmap(lambda x: T.jit_error_if(x, 'lane {x}', x=x))(jnp.array([False, False]))
    with pytest.raises(Exception, match='lane'):
        jax.vmap(lambda x: T.jit_error_if(x, 'lane {x}', x=x))(jnp.array([False, True]))


def test_checkify_keeps_state_writes_and_reports():
    acc = brainstate.State(jnp.array(0.0))

    def f(x):
        T.check(x > 0, 'x must be positive')
        acc.value = acc.value + x
        return jnp.log(x)

    err, out = T.checkify(f)(jnp.array(2.0))
    assert err.get() is None
    np.testing.assert_allclose(out, np.log(2.0), **TOL)
    assert float(acc.value) == 2.
    err, _ = T.checkify(f)(jnp.array(-1.0))
    assert 'positive' in err.get()
    err, _ = T.checkify(lambda x: x / 0., errors=T.float_checks)(jnp.array(1.))
    assert 'division' in err.get().lower()


# -- StateFinder, named_call, named_scope -------------------------------------------------

def test_state_finder_reads_writes_and_filters():
    buf = brainstate.State(jnp.array(1.0), name='buf')
    w = brainstate.ParamState(jnp.array(3.0), name='w')

    def fn(x):
        _ = buf.value        # read, value unused: still found
        w.value = w.value + x
        return w.value

    assert T.StateFinder(fn, usage='read', return_type='list')(1.0) == [buf]
    assert T.StateFinder(fn, usage='write', return_type='tuple')(1.0) == (w,)
    assert list(T.StateFinder(fn, filter=brainstate.ParamState)(1.0).values()) == [w]
    both = T.StateFinder(fn, usage='both', return_type='list')(1.0)
    assert both == {'read': [buf], 'write': [w]}
    assert float(w.value) == 3.   # nothing ran
    with pytest.raises(ValueError):
        T.StateFinder(fn, usage='bogus')


def test_named_call_names_the_equations_and_keeps_states():
    counter = brainstate.State(jnp.array(0.0))

    @T.named_call(name='block')
    def step(x):
        counter.value = counter.value + 1.
        return jnp.sin(x)

    jaxpr = jax.make_jaxpr(T.named_call(jnp.sin, name='block'))(1.)
    assert any('block' in str(e.source_info.name_stack) for e in jaxpr.jaxpr.eqns)
    np.testing.assert_allclose(T.jit(step)(1.), np.sin(1.), **TOL)
    assert float(counter.value) == 1.
    wrapped = T.named_scope('power', static_argnums=1)(lambda x, n: x ** n)
    np.testing.assert_allclose(wrapped(jnp.array([2., 3.]), 2), [4., 9.])


# -- autodiff forms ----------------------------------------------------------------------

def test_grad_unit_aware_matches_hand_math():
    u = pytest.importorskip('brainunit')
    x = jnp.array([1., 2., 3.]) * u.ms
    g = T.grad(lambda x: u.math.sum(x ** 2), unit_aware=True)(x)
    assert u.math.allclose(g, 2 * x)
    g = T.vector_grad(lambda x: x ** 3, unit_aware=True)(x)
    assert u.math.allclose(g, 3 * x ** 2)


def test_check_states_false_gives_zero_gradient():
    used = brainstate.ParamState(jnp.array([1., 2.]))
    unused = brainstate.ParamState(jnp.array([5., 6.]))

    def loss():
        return jnp.sum(used.value ** 2)

    with pytest.raises(ValueError):
        T.grad(loss, grad_states=[used, unused])()
    g = T.grad(loss, grad_states=[used, unused], check_states=False)()
    np.testing.assert_allclose(g[0], jax.grad(lambda w: jnp.sum(w ** 2))(used.value), **TOL)
    np.testing.assert_allclose(g[1], [0., 0.])


def test_gradient_transform_published_constructor_matches_jax():
    p = brainstate.ParamState(jnp.array([3.0, 4.0]))

    def loss(x):
        return jnp.sum(p.value ** 2 * x)

    x = jnp.array([1., 2.])
    gt = T.GradientTransform(target=loss, transform=jax.grad, grad_states=p, argnums=0)
    gs, gx = gt(x)
    ref = jax.grad(lambda w, x: jnp.sum(w ** 2 * x), argnums=(0, 1))(p.value, x)
    np.testing.assert_allclose(gs, ref[0], **TOL)
    np.testing.assert_allclose(gx, ref[1], **TOL)
    assert 'grad_states' in repr(gt)
    assert isinstance(T.grad(loss), T.GradientTransform)
    assert isinstance(T.jacrev(loss), T.GradientTransform)
    with pytest.raises(TypeError, match='has_aux'):
        T.grad(lambda x: jnp.sum(x), has_aux=True)(x)
    with pytest.raises(TypeError):
        T.grad(lambda x: (jnp.sum(x), 1.))(x)
    with pytest.raises(ValueError):
        T.grad(loss, argnums=0.5)


def test_debug_nan_on_gradients():
    g = T.vector_grad(lambda x: x ** 2, debug_nan=True)(jnp.array([1., 2.]))
    np.testing.assert_allclose(g, [2., 4.])
    with pytest.raises(Exception, match='NaN'):
        T.vector_grad(jnp.sqrt, debug_nan=True)(jnp.array([-1.]))


def test_fwd_grad_tangent_size_and_clip():
    x = jnp.ones(4)
    g = T.fwd_grad(lambda x: jnp.sum(x ** 2), tangent_size=4000, key=0)(x)
    np.testing.assert_allclose(g, 2 * x, atol=0.2)   # an unbiased estimate of 2x
    g = T.fwd_grad(lambda x: jnp.sum(x ** 2), drct_der_clip=0.0, key=np.array([1]))(x)
    np.testing.assert_allclose(g, 0 * x)
    with pytest.raises(TypeError, match='inexact'):
        T.fwd_grad(lambda x: jnp.sum(x.astype(jnp.float32)), key=0)(jnp.array([1, 2]))


# -- control flow inside raw JAX transforms --------------------------------------------------

def test_switch_and_loops_inside_raw_jax_transforms():
    branches = [lambda x: x + 1., lambda x: x * 10.]
    out = jax.vmap(lambda i, x: T.switch(i, branches, x))(jnp.array([0, 1]), jnp.array([2., 3.]))
    np.testing.assert_allclose(out, [3., 30.])
    f = lambda x: T.bounded_while_loop(lambda v: v < 5., lambda v: v * 2., x, max_steps=8,
                                       base=2)
    assert float(f(1.)) == 8.
    assert float(jax.grad(f)(1.)) == 8.
    np.testing.assert_allclose(jax.vmap(f)(jnp.array([1., 3.])), [8., 6.])
    st = brainstate.State(jnp.zeros(()))

    def writes(x):
        st.value = st.value + x
        return x

    with pytest.raises(brainstate.TracerLeakError):
        jax.jit(lambda x: T.cond(x > 0, writes, writes, x))(1.)
    assert float(st.value) == 0.
    with pytest.raises(ValueError, match='base'):
        T.bounded_while_loop(lambda v: v < 5., lambda v: v, 1., max_steps=3, base=1)


def test_checkpoint_refuses_negative_static_argnums():
    with pytest.raises(ValueError, match='negative'):
        T.checkpoint(lambda x, n: x * n, static_argnums=-1)
    f = T.checkpoint(lambda x, n: jnp.sin(x) * n, static_argnums=1)
    np.testing.assert_allclose(jax.grad(lambda x: f(x, 3))(0.5), 3 * np.cos(0.5), **TOL)


def test_shard_map_with_replicated_and_sharded_states():
    from jax.sharding import PartitionSpec as P
    n = jax.device_count()
    mesh = jax.make_mesh((n,), ('x',))
    w = brainstate.ParamState(jnp.array(2.0))
    buf = brainstate.State(jnp.zeros(n * 2))

    def step(x):
        y = x * w.value
        buf.value = buf.value + y
        return y

    f = T.shard_map(step, mesh, in_specs=(P('x'),), out_specs=P('x'),
                    state_in_specs={buf: P('x')})
    x = jnp.arange(n * 2, dtype=jnp.float32)
    np.testing.assert_allclose(f(x), x * 2., **TOL)
    np.testing.assert_allclose(buf.value, x * 2., **TOL)
    assert float(w.value) == 2.
    total = T.shard_map(lambda x: jax.lax.psum(jnp.sum(x, keepdims=True), 'x'), mesh,
                        in_specs=(P('x'),), out_specs=P())(x)
    np.testing.assert_allclose(total, jnp.sum(x), **TOL)
    with pytest.raises(ValueError, match='in_specs'):
        T.shard_map(lambda a, b: a + b, mesh, in_specs=(P('x'),), out_specs=P('x'))(x, x)


def test_jaxpr_utilities_inline_and_rebuild():
    @jax.jit
    def inner(x):
        return jnp.sin(x) * 2.

    def outer(x):
        return inner(x) + inner(x + 1.)

    closed = jax.make_jaxpr(outer)(1.)
    flat = T.inline_jit(closed)
    assert not any(e.primitive.name in ('jit', 'pjit') for e in flat.jaxpr.eqns)
    np.testing.assert_allclose(jaxpr_as_fun(flat)(0.3)[0], outer(0.3), **TOL)
    rebuilt = T.eqns_to_closed_jaxpr(flat.jaxpr.eqns, invars=flat.jaxpr.invars,
                                     outvars=flat.jaxpr.outvars)
    np.testing.assert_allclose(jaxpr_as_fun(rebuilt)(0.3)[0], outer(0.3), **TOL)
    jaxpr = T.eqns_to_jaxpr(jax.make_jaxpr(lambda a, b: a * b + a)(1., 2.).jaxpr.eqns)
    assert len(jaxpr.invars) == 2 and len(jaxpr.outvars) == 1
    with pytest.raises(ValueError):
        T.eqns_to_closed_jaxpr(jaxpr.eqns, invars=[1])
    with pytest.raises(ValueError):
        T.inline_jit(123)
