"""The jaxpr optimizers of brainstate.transform (constant_fold, optimize_jaxpr...) and the
passes behind them (algebraic-simplify, copy-propagation): every optimized jaxpr computes what
the unoptimized one computes, bit for bit where the pass promises it, and keeps its interface.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import (algebraic_simplification, common_subexpression_elimination,
                                  constant_fold, copy_propagation, dead_code_elimination,
                                  optimize_jaxpr)

OPTIMIZERS = [constant_fold, dead_code_elimination, common_subexpression_elimination,
              copy_propagation, algebraic_simplification, optimize_jaxpr]


def _run(jaxpr, consts, *args):
    return jax.core.eval_jaxpr(jaxpr, consts, *args)


def _raw(x):
    """An array's bits (floats: -0.0 differs from 0.0, NaNs compare equal)."""
    x = np.atleast_1d(np.asarray(x))
    return x.view(np.uint8) if x.dtype.kind in 'fc' else x


def _same_results(closed, optimized, *args, exact=True):
    expected = _run(closed.jaxpr, closed.consts, *args)
    if isinstance(optimized, jax.extend.core.ClosedJaxpr):
        got = _run(optimized.jaxpr, optimized.consts, *args)
    else:
        got = _run(optimized, closed.consts, *args)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        g, e = np.asarray(g), np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape
        if exact:
            np.testing.assert_array_equal(_raw(g), _raw(e))
        else:
            np.testing.assert_allclose(g, e, rtol=1e-6)


def _kitchen_sink(x, y):
    a = x + 0.0
    b = a * 1.0
    c = (2.0 + 3.0) * b
    d = jax.lax.copy_p.bind(c)
    e = x * y
    f = x * y                      # the same as e
    unused = jnp.sin(y) * 10.0     # noqa: F841 - dead
    g = jax.lax.convert_element_type(d, jnp.float32)  # a no-op convert
    return g + e + f, e, f, x


ARGS = (jnp.float32([1.5, -2.0, 0.0]), jnp.float32([3.0, 0.25, -1.0]))


@pytest.mark.parametrize('optimizer', OPTIMIZERS, ids=lambda f: f.__name__)
def test_every_optimizer_keeps_results_and_interface(optimizer):
    closed = jax.make_jaxpr(_kitchen_sink)(*ARGS)
    for given in (closed.jaxpr, closed):
        optimized = optimizer(given)
        assert type(optimized) is type(given)
        plain = optimized.jaxpr if isinstance(optimized, jax.extend.core.ClosedJaxpr) \
            else optimized
        assert list(plain.invars) == list(closed.jaxpr.invars)
        assert list(plain.outvars) == list(closed.jaxpr.outvars)
        _same_results(closed, optimized, *ARGS)


def test_optimize_jaxpr_shrinks_the_kitchen_sink():
    closed = jax.make_jaxpr(_kitchen_sink)(*ARGS)
    optimized = optimize_jaxpr(closed)
    names = [e.primitive.name for e in optimized.jaxpr.eqns]
    assert 'sin' not in names and 'copy' not in names
    assert names.count('mul') == 2  # 5 * b and one x * y
    assert len(optimized.jaxpr.eqns) < len(closed.jaxpr.eqns)


def test_results_match_pure_jax_on_random_inputs():
    rng = np.random.default_rng(0)

    def f(x, w):
        h = jnp.tanh(x @ w + 0.0) * 1.0
        return jnp.sum(h * h) / 1.0, h - 0.0

    x = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    closed = jax.make_jaxpr(f)(x, w)
    optimized = optimize_jaxpr(closed)
    expected = f(x, w)
    got = jax.core.eval_jaxpr(optimized.jaxpr, optimized.consts, x, w)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


def test_closed_jaxpr_constants_stay_arguments():
    table = jnp.arange(6.0).reshape(2, 3)

    def f(x):
        return x * table + table

    closed = jax.make_jaxpr(f)(jnp.ones((2, 3)))
    optimized = optimize_jaxpr(closed)
    assert len(optimized.consts) == len(closed.consts)
    _same_results(closed, optimized, jnp.full((2, 3), 2.0))


def test_constants_of_inlined_jit_calls():
    table = np.arange(3.0, dtype=np.float32)

    @jax.jit
    def inner(x):
        return x + table

    closed = jax.make_jaxpr(lambda x: inner(x) * 1.0)(jnp.ones(3))
    for given in (closed, closed.jaxpr):
        optimized = optimize_jaxpr(given)
        jaxpr = optimized.jaxpr if hasattr(optimized, 'jaxpr') else optimized
        consts = optimized.consts if hasattr(optimized, 'consts') else closed.consts
        assert all(e.primitive.name not in ('pjit', 'jit') for e in jaxpr.eqns)
        out = jax.core.eval_jaxpr(jaxpr, consts, jnp.ones(3))
        np.testing.assert_array_equal(out[0], np.ones(3) + table)


def test_outputs_that_become_inputs_literals_or_duplicates_get_defined():
    def f(x):
        a = x * 1.0
        b = x * 1.0
        return a, b, x + 0.0, jnp.float32(2.0) * jnp.float32(3.0)

    closed = jax.make_jaxpr(f)(jnp.float32(4.0))
    optimized = optimize_jaxpr(closed.jaxpr)
    assert list(optimized.outvars) == list(closed.jaxpr.outvars)
    defined = {id(v) for e in optimized.eqns for v in e.outvars}
    for var in optimized.outvars:
        assert id(var) in defined
    out = jax.core.eval_jaxpr(optimized, closed.consts, jnp.float32(4.0))
    assert [float(o) for o in out] == [4.0, 4.0, 4.0, 6.0]


def test_control_flow_bodies_survive():
    def f(x):
        y = jax.lax.fori_loop(0, 3, lambda i, c: c * 1.0 + 1.0, x)
        z = jax.lax.cond(y > 2.0, lambda v: v * 2.0, lambda v: v - 0.0, y)
        return jax.lax.while_loop(lambda v: v < 20.0, lambda v: v + 3.0, z)

    closed = jax.make_jaxpr(f)(jnp.float32(0.5))
    optimized = optimize_jaxpr(closed)
    for x in (0.5, -5.0, 3.0):
        _same_results(closed, optimized, jnp.float32(x))


def test_jaxpr_of_a_stateful_function():
    state = brainstate.State(jnp.array([1.0, 2.0]))

    def f(x):
        state.value = state.value + (2.0 + 3.0) * (x + 0.0)
        return state.value * 1.0

    closed, states = brainstate.transform.make_jaxpr(f)(jnp.array([1.0, 2.0]))
    optimized = optimize_jaxpr(closed)
    assert optimized.in_avals == closed.in_avals
    args = (jnp.array([3.0, 4.0]), jnp.array([0.5, -1.0]))
    _same_results(closed, optimized, *args)


def test_unknown_names_and_types_are_refused():
    closed = jax.make_jaxpr(lambda x: x + 1.0)(1.0)
    with pytest.raises(ValueError, match='Invalid optimization.*Available'):
        optimize_jaxpr(closed, optimizations=['constant_folding'])
    with pytest.raises(TypeError, match='Expected Jaxpr or ClosedJaxpr'):
        constant_fold('not a jaxpr')
    with pytest.raises(ValueError, match='max_iterations'):
        optimize_jaxpr(closed, max_iterations=0)


def test_verbose_reports_what_each_pass_did(capsys):
    closed = jax.make_jaxpr(lambda x: (x * 7.0, x + (jnp.float32(2) + jnp.float32(3)))[1])(1.0)
    optimize_jaxpr(closed, verbose=True)
    text = capsys.readouterr().out
    assert 'Iteration 1' in text and 'dce' in text and 'constant_fold' in text


# -- the passes themselves, on brainstate programs ------------------------------------------

def _floats_with_specials():
    return jnp.float32([0.0, -0.0, 1.5, -2.5, np.inf, -np.inf, np.nan])


def _bits(x):
    return np.atleast_1d(np.asarray(x)).view(np.uint32)


def test_algebraic_simplify_is_bit_exact_by_default():
    def f(x):
        return (x + 0.0, x - 0.0, x * 1.0, 1.0 * x, x / 1.0, x + -0.0, 0.0 * x, x - x, 0.0 + x)

    x = _floats_with_specials()
    for args in [(x,)] + [(v,) for v in x]:
        closed = jax.make_jaxpr(f)(*args)
        graph = brainstate.ir.graph_from_jaxpr(closed)
        brainstate.passes.get_pass('algebraic-simplify')(graph)
        brainstate.passes.get_pass('dce')(graph)
        names = [n.op.name for n in graph.nodes if n.kind == 'primitive']
        if args[0].shape == ():
            # x - 0.0, x * 1.0, 1.0 * x, x / 1.0 and x + -0.0 go; 0 * x, x - x, x + 0.0 stay.
            assert names.count('mul') == 1 and names.count('sub') == 1
            assert names.count('add') == 2 and 'div' not in names
        brainstate.passes.get_pass('hoist-states')(graph)
        lowered = brainstate.ir.lower_to_jaxpr(graph).closed_jaxpr
        got = jax.core.eval_jaxpr(lowered.jaxpr, lowered.consts, *args)
        # (Against the unoptimized jaxpr run op by op: XLA's own simplifier, under jax.jit,
        # turns -0.0 + 0.0 into -0.0.)
        want = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *args)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(_bits(g), _bits(w))


def test_algebraic_simplify_integers():
    def f(x):
        return x * 0, 0 * x, x - x, x + 0, x * 1, jax.lax.div(x, 1)

    closed = jax.make_jaxpr(f)(jnp.int32(7))
    optimized = algebraic_simplification(closed)
    assert not any(e.primitive.name in ('mul', 'sub', 'add', 'div')
                   for e in optimized.jaxpr.eqns)
    for v in (7, -3, 0):
        _same_results(closed, optimized, jnp.int32(v))


def test_published_algebraic_simplification_may_flip_a_zero_sign_only():
    closed = jax.make_jaxpr(lambda x: x + 0.0)(jnp.float32(1.0))
    optimized = algebraic_simplification(closed)
    assert not any(e.primitive.name == 'add' for e in optimized.jaxpr.eqns)
    for v in (1.5, np.inf, np.nan):
        _same_results(closed, optimized, jnp.float32(v))
    out = jax.core.eval_jaxpr(optimized.jaxpr, optimized.consts, jnp.float32(-0.0))[0]
    assert float(out) == 0.0  # -0.0 (the published identity) instead of +0.0


def test_algebraic_simplify_under_jit_matches_default_pipeline():
    w = brainstate.ParamState(jnp.float32([1.0, -0.0, np.inf]))

    def step(x):
        w.value = w.value * 1.0 - 0.0 + x / 1.0
        return w.value * 0.0

    x = jnp.float32([0.5, -0.0, 2.0])
    w_before = w.value
    plain = brainstate.transform.jit(step)(x)
    after_plain = w.value
    w.value = w_before
    passes = 'algebraic-simplify,copy-propagation,cse,dce'
    simplified = brainstate.transform.jit(step, passes=passes)(x)
    np.testing.assert_array_equal(_bits(simplified), _bits(plain))
    np.testing.assert_array_equal(_bits(w.value), _bits(after_plain))


def _jaxpr_with_a_noop_convert():
    """x -> (copy(x) converted to its own type) + 1, int32 of it, copy(x). (JAX's own tracing
    drops a no-op convert_element_type, so the equation is written by hand.)"""
    core = jax.extend.core
    f32, i32 = jax.core.ShapedArray((), jnp.float32), jax.core.ShapedArray((), jnp.int32)
    x, y, same, i, out, y2 = (core.Var(a) for a in (f32, f32, f32, i32, f32, f32))
    convert = jax.lax.convert_element_type_p
    info = jax.extend.source_info_util.new_source_info()

    def eqn(ins, outs, prim, **params):
        return core.new_jaxpr_eqn(ins, outs, prim, params, frozenset(), info)

    eqns = [eqn([x], [y], jax.lax.copy_p),
            eqn([y], [same], convert, new_dtype=jnp.dtype('float32'), weak_type=False,
                sharding=None),
            eqn([same], [i], convert, new_dtype=jnp.dtype('int32'), weak_type=False,
                sharding=None),
            eqn([same, core.Literal(np.float32(1.0), f32)], [out], jax.lax.add_p),
            eqn([x], [y2], jax.lax.copy_p)]
    debug = core.DebugInfo('test', 'noop_convert', None, None)
    return core.ClosedJaxpr(core.Jaxpr([], [x], [out, i, y2], eqns, frozenset(), debug), [])


def test_copy_propagation_pass():
    closed = _jaxpr_with_a_noop_convert()
    graph = brainstate.ir.graph_from_jaxpr(closed)
    stats = brainstate.passes.PassStatistics()
    brainstate.passes.get_pass('copy-propagation').run(graph, stats)
    names = [n.op.name for n in graph.nodes if n.kind == 'primitive']
    assert 'copy' not in names and names.count('convert_element_type') == 1  # the real one
    assert stats['copies removed'] == 3
    optimized = copy_propagation(closed)
    assert list(optimized.jaxpr.outvars) == list(closed.jaxpr.outvars)
    _same_results(closed, optimized, jnp.float32(-7.25))


def test_new_passes_are_registered():
    names = brainstate.passes.registered_passes()
    assert 'algebraic-simplify' in names and 'copy-propagation' in names


def test_identity_set():
    from brainstate.transform._ir_utils import IdentitySet
    a, b = [1], [1]
    s = IdentitySet([a])
    assert a in s and b not in s
    s.add(b)
    s.discard(a)
    assert list(s) == [b] and len(s) == 1


# -- Python code from a jaxpr -----------------------------------------------------------------

def _generated(source, name):
    namespace = {}
    exec(compile(source, '<generated>', 'exec'), namespace)
    return namespace[name]


@pytest.mark.parametrize('fun, args', [
    (lambda x, y: ((x + y) * (x - y) / (y + 1.0), jnp.sum(x * y)),
     (jnp.float32([1., 2.]), jnp.float32([3., -4.]))),
    (lambda x: (jnp.cumsum(x), jnp.argmax(x), jnp.sort(x), jnp.round(x), x ** 3,
                jnp.clip(x, 0., 1.), jnp.expand_dims(x, 0)), (jnp.float32([0.5, 2.5, -1.5]),)),
    (lambda a, b: jnp.einsum('bij,bjk->bik', a, b),
     (jnp.arange(24.).reshape(2, 3, 4), jnp.arange(40.).reshape(2, 4, 5))),
    (lambda x: jax.lax.fori_loop(0, 3, lambda i, c: c * 2.0 + i, x), (jnp.float32(1.0),)),
    (lambda x: jax.lax.cond(x > 0, lambda v: v * 2.0, lambda v: v - 1.0, x),
     (jnp.float32(-3.0),)),
    (lambda x: jax.lax.scan(lambda c, e: (c + e, c * e), 0.5, x), (jnp.float32([1., 2., 3.]),)),
    (lambda x: jax.lax.while_loop(lambda v: v < 10., lambda v: v + 3., x), (jnp.float32(0.),)),
    (lambda x: jax.jit(lambda y: y * y)(x) + jax.grad(lambda y: jnp.sum(y * y))(x),
     (jnp.float32([1., 2.]),)),
])
def test_generated_code_computes_what_the_function_computes(fun, args):
    from brainstate.transform import fn_to_python_code
    source = fn_to_python_code(fun, *args)
    got = _generated(source, 'generated_function')(*args)
    want = fun(*args)
    got = got if isinstance(got, tuple) else (got,)
    want = jax.tree.leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6)


def test_generated_code_for_containers_and_many_names():
    from brainstate.transform import fn_to_python_code, jaxpr_to_python_code

    def total(d):
        return d['a'] * d['b']

    arg = {'a': jnp.float32(3.0), 'b': jnp.float32(4.0)}
    assert float(_generated(fn_to_python_code(total, arg), 'total')(arg)) == 12.0

    def long_chain(x):
        for _ in range(300):  # enough names to reach Python keywords ('if', 'in', ...)
            x = x + 1.0
        return x

    source = jaxpr_to_python_code(jax.make_jaxpr(long_chain)(jnp.float32(0.0)), 'chain')
    assert float(_generated(source, 'chain')(jnp.float32(0.0))) == 300.0


def test_unknown_primitive_is_a_clear_error():
    from brainstate.transform import fn_to_python_code, register_prim_handler
    from brainstate.transform._ir_utils import UnsupportedPrimitiveError
    from brainstate.transform import _ir_tocode
    with pytest.raises(UnsupportedPrimitiveError, match="cumlogsumexp.*register_prim_handler"):
        fn_to_python_code(jax.lax.cumlogsumexp, jnp.float32([1., 2.]))
    register_prim_handler('cumlogsumexp', lambda body, eqn: 'jax.lax.cumlogsumexp(%s, axis=%d)'
                          % (body.atom(eqn.invars[0]), eqn.params['axis']))
    try:
        source = fn_to_python_code(jax.lax.cumlogsumexp, jnp.float32([1., 2.]))
        got = _generated(source, 'cumlogsumexp')(jnp.float32([1., 2.]))
        np.testing.assert_allclose(got, jax.lax.cumlogsumexp(jnp.float32([1., 2.])), rtol=1e-6)
    finally:
        _ir_tocode.prim_to_python.pop('cumlogsumexp')


def test_stateful_function_ir_optimizations_use_the_passes():
    state = brainstate.State(jnp.float32([1.0, -0.0]))

    def f(x):
        state.value = jax.lax.copy_p.bind(state.value * 1.0) + 0.0
        return x - 0.0

    sf = brainstate.transform.StatefulFunction(
        f, ir_optimizations=['copy_propagation', 'algebraic_simplification', 'dce'])
    key = sf.get_arg_cache_key(jnp.float32(2.0), compile_if_miss=True)
    jaxpr = sf.get_jaxpr_by_cache(key)
    names = [e.primitive.name for e in jaxpr.jaxpr.eqns]
    assert 'copy' not in names and 'mul' not in names and 'sub' not in names
    assert 'add' in names  # (+ 0.0 would turn -0.0 into 0.0: kept)
