"""The fixed costs of tracing a small step (docs/performance.md, "trace fixed costs"): each
shortcut gives exactly what the longer path gave (printed IR, lowered jaxpr, results)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import _compat


def _lif_step():
    w = brainstate.ParamState(jnp.eye(4) * 0.5)
    v = brainstate.HiddenState(jnp.zeros(4))
    s = brainstate.ShortTermState(jnp.zeros(4))

    def update(current):
        new_v = v.value + 0.1 * (-v.value + current + w.value @ s.value)
        spike = (new_v >= 1.).astype(jnp.float32)
        v.value = jnp.where(spike > 0, 0., new_v)
        s.value = spike
        return spike.sum()

    def simulate(currents):
        return brainstate.transform.for_loop(update, currents)

    return simulate, (v, s)


def _lif_reference(currents):
    w = jnp.eye(4) * 0.5

    def step(carry, current):
        v, s = carry
        new_v = v + 0.1 * (-v + current + w @ s)
        spike = (new_v >= 1.).astype(jnp.float32)
        return (jnp.where(spike > 0, 0., new_v), spike), spike.sum()

    (v, s), counts = jax.lax.scan(step, (jnp.zeros(4), jnp.zeros(4)), currents)
    return counts, v, s


def _closure_function():
    table = np.arange(3., dtype=np.float32)

    def f(x, y, n):
        z = jnp.sin(x) * y + table
        return [z, jnp.sum(z) * n, 2.0]

    return f


def _avals():
    return [jax.ShapeDtypeStruct((3,), jnp.float32), jax.ShapeDtypeStruct((), jnp.float32),
            jax.ShapeDtypeStruct((), jnp.int32, weak_type=True)]


def test_direct_trace_matches_make_jaxpr():
    f = _closure_function()
    got = _compat.trace_to_closed_jaxpr(f, _avals())
    want = jax.make_jaxpr(f)(*_avals())
    assert str(got) == str(want)
    assert len(got.consts) == len(want.consts)
    assert [v.aval for v in got.jaxpr.invars] == [v.aval for v in want.jaxpr.invars]


def test_brainstate_traces_without_jax_make_jaxpr(monkeypatch):
    """On the JAX versions checked (0.10.2), traces skip jax.make_jaxpr's wrapping (its
    argument parsing, flattening and cache): the fixed cost of every trace and region body."""
    if not _compat.DIRECT_TRACE:
        pytest.skip('this JAX traces through jax.make_jaxpr (the self-check fell back)')
    simulate, _ = _lif_step()
    currents = jnp.ones((5, 4)) * 3.

    brainstate.transform.make_jaxpr(simulate)(currents)  # once-per-process lookups (the scan
    # primitive's layout is learned from a jax.make_jaxpr, see ir/regions/_lowering.py)

    def refuse(*args, **kwargs):
        raise AssertionError('jax.make_jaxpr called')

    monkeypatch.setattr(jax, 'make_jaxpr', refuse)
    text = str(brainstate.ir.trace(simulate, currents))
    assert 'scan' in text and 'state_read' in text
    brainstate.transform.make_jaxpr(simulate)(currents)


def _outputs_and_ir():
    simulate, (v, s) = _lif_step()
    currents = jnp.linspace(0., 4., 20, dtype=jnp.float32).reshape(5, 4)
    ir_text = str(brainstate.ir.trace(simulate, currents))
    jaxpr_text = str(brainstate.transform.make_jaxpr(simulate)(currents))
    counts = brainstate.transform.jit(simulate)(currents)
    return ir_text, jaxpr_text, (counts, v.value, s.value), currents


def test_fallback_gives_the_same_ir_jaxpr_and_results(monkeypatch):
    direct = _outputs_and_ir()
    monkeypatch.setattr(_compat, 'DIRECT_TRACE', False)
    public = _outputs_and_ir()
    def unnumbered(text):  # each run makes its own states: State#3 vs State#5
        return re.sub(r'#\d+', '#', text)

    assert unnumbered(direct[0]) == unnumbered(public[0])
    assert direct[1] == public[1]
    for got, want_direct, want in zip(public[2], direct[2], _lif_reference(direct[3])):
        np.testing.assert_array_equal(got, want_direct)
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_self_check_rejects_a_tracer_that_differs():
    """The import-time self-check turns the direct path off when it gives another jaxpr (a
    JAX release changed the private API's behaviour), and accepts the real one."""
    assert _compat._check_direct_trace(_compat._trace_direct) == _compat.DIRECT_TRACE

    def wrong_program(fun, avals):
        return jax.make_jaxpr(lambda *a: [jnp.cos(a[0])])(*[
            jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals])

    def raises(fun, avals):
        raise AttributeError('moved')

    assert not _compat._check_direct_trace(wrong_program)
    with pytest.raises(AttributeError):
        _compat._check_direct_trace(raises)  # at import: caught, DIRECT_TRACE = False


def test_errors_still_name_the_user_function_and_argument():
    def step(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(jax.errors.TracerBoolConversionError) as info:
        brainstate.transform.jit(step)(1.)
    assert 'step' in str(info.value) and 'x' in str(info.value)


def _count_copies(monkeypatch):
    from brainstate.ir import _graph
    calls = []
    original = _graph.Graph.copy

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_graph.Graph, 'copy', counting)
    return calls


def test_bodies_bound_in_the_trace_are_not_copied(monkeypatch):
    """A for_loop body bound straight into the trace's jaxpr becomes the region's subgraph as
    it is (no JAX cache holds it, so no copy is needed)."""
    simulate, _ = _lif_step()
    currents = jnp.ones((5, 4))
    calls = _count_copies(monkeypatch)
    brainstate.transform.make_jaxpr(simulate)(currents)
    assert calls == []


def test_taking_bodies_uncopied_changes_no_ir_nor_jaxpr(monkeypatch):
    direct = _outputs_and_ir()
    from brainstate.ir._trace import TraceContext
    monkeypatch.setattr(TraceContext, 'take_own_bodies', lambda self: {})  # copy every body
    copied = _outputs_and_ir()
    assert re.sub(r'#\d+', '#', direct[0]) == re.sub(r'#\d+', '#', copied[0])
    assert direct[1] == copied[1]
    for got, want in zip(direct[2], copied[2]):
        np.testing.assert_array_equal(got, want)


def test_a_raw_jit_helper_holding_a_loop_is_copied_each_trace(monkeypatch):
    """A raw jax.jit helper's jaxpr is cached by JAX and reused by the next trace: the loop body
    it holds was bound in the helper's JAX trace, so each trace converts a copy (passes edit
    bodies in place; the cached one must stay as traced)."""
    acc = brainstate.ShortTermState(jnp.zeros(3))

    @jax.jit
    def helper(xs):
        def body(x):
            acc.value = acc.value + x
            return acc.value.sum()
        return brainstate.transform.for_loop(body, xs)

    calls = _count_copies(monkeypatch)
    xs = jnp.arange(6., dtype=jnp.float32).reshape(2, 3)
    for scale in (1., 2.):
        acc.value = jnp.zeros(3)
        out = brainstate.transform.jit(lambda xs: helper(xs) * scale)(xs)
        want = jnp.cumsum(xs, axis=0).sum(axis=1) * scale
        np.testing.assert_allclose(out, want)
        np.testing.assert_allclose(acc.value, xs.sum(axis=0))
    assert len(calls) >= 2


def test_argument_names_read_from_the_code_object_as_inspect_gives_them():
    import functools
    import inspect
    from brainstate.transform._program import _positional_parameters

    class Model:
        def step(self, x, /, y, *rest, scale=1., **options):
            return x

        def __call__(self, a, b):
            return a

    def plain(a, b=2, *, c):
        return a

    def star(*leaves):
        return leaves

    @functools.wraps(plain)
    def wrapped(*args, **kwargs):
        return plain(*args, **kwargs)

    def expected(fun):
        params = list(inspect.signature(fun).parameters.values())
        return ([p.name for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)],
                next((p.name for p in params if p.kind == p.VAR_POSITIONAL), 'args'))

    for fun in (plain, star, wrapped, Model().step, Model(), lambda u, *v: u,
                functools.partial(plain, 1), Model.step):
        assert _positional_parameters(fun) == expected(fun), fun


def test_tracing_a_plain_function_and_loop_asks_inspect_nothing(monkeypatch):
    """Argument names (ours for the function, JAX's for a loop body's wrapper) come from code
    objects: ``inspect.signature`` costs 30-90us a call."""
    if not _compat.DIRECT_TRACE:
        pytest.skip('this JAX traces through jax.make_jaxpr (the self-check fell back)')
    import inspect
    simulate, _ = _lif_step()
    currents = jnp.ones((5, 4))
    brainstate.transform.make_jaxpr(simulate)(currents)  # first-in-process imports

    def refuse(*args, **kwargs):
        raise AssertionError('inspect.signature called')

    simulate, _ = _lif_step()
    monkeypatch.setattr(inspect, 'signature', refuse)
    brainstate.transform.make_jaxpr(simulate)(currents)


def test_a_body_wrapper_is_described_as_jax_describes_it():
    from jax._src import api_util

    def body(*leaves):
        return list(leaves)

    avals = [jax.core.ShapedArray((2,), jnp.float32)] * 2
    assert _compat._trace_direct.describe_ok()
    got = _compat.trace_to_closed_jaxpr(body, avals).jaxpr.debug_info
    want = jax.make_jaxpr(body)(*[jax.ShapeDtypeStruct((2,), jnp.float32)] * 2).jaxpr.debug_info
    assert got.arg_names == want.arg_names == api_util.debug_info('jit', body, avals, {}).arg_names
    assert got.func_src_info == want.func_src_info


def test_region_dce_skips_the_liveness_walk_when_every_carry_is_used(monkeypatch):
    """Every carry of the lif loop ends in a state write: dce's liveness walk through the body
    would find them all live, so it is not made (an unused carry still goes: below)."""
    from brainstate.ir.regions import _dce
    walks = []
    original = _dce.BodyLiveness

    def counting(graph):
        walks.append(graph)
        return original(graph)

    monkeypatch.setattr(_dce, 'BodyLiveness', counting)
    simulate, _ = _lif_step()
    brainstate.transform.make_jaxpr(simulate)(jnp.ones((5, 4)))
    assert walks == []

    unused = brainstate.ShortTermState(jnp.zeros(()))

    def loop(xs):
        def body(x):
            unused.value = unused.value + 1.  # its final value is used (written back) ...
            return x * 2.
        return brainstate.transform.for_loop(body, xs)

    def pure_loop(xs):
        def body(carry, x):
            total, dead = carry
            return (total + x, dead * 3.), x * 2.  # ... the carry `dead` is never used
        return brainstate.transform.scan(body, (0., 1.), xs)[1]

    xs = jnp.arange(4.)
    np.testing.assert_array_equal(brainstate.transform.jit(loop)(xs), xs * 2.)
    assert float(unused.value) == 4.
    walks.clear()
    closed = brainstate.transform.make_jaxpr(pure_loop)(xs)[0]
    scan, = [e for e in closed.jaxpr.eqns if e.primitive.name == 'scan']
    assert walks and len(scan.outvars) == 1, closed  # no carry left: the ys alone
    np.testing.assert_array_equal(brainstate.transform.jit(pure_loop)(xs), xs * 2.)


def test_jit_records_its_program_without_building_the_published_jaxpr():
    # jit keeps each program it traces in its StatefulFunction's cache; the jaxpr in the
    # published layout (arguments first, one group per state) is made only when asked for,
    # and is then the one make_jaxpr gives.
    simulate, (v, s) = _lif_step()
    currents = jnp.ones((5, 4)) * 3.
    jitted = brainstate.transform.jit(simulate)
    jitted(currents)
    entry, = jitted.stateful_fun._compilation_cache.data.values()
    assert entry._layout is None
    v.value, s.value = jnp.zeros(4), jnp.zeros(4)
    jaxpr, states = brainstate.transform.make_jaxpr(simulate, return_only_write=True)(currents)
    key, = jitted.stateful_fun._compilation_cache.data
    recorded = jitted.stateful_fun.get_jaxpr_by_cache(key)
    assert str(recorded) == str(jaxpr)
    assert jitted.stateful_fun.get_states_by_cache(key) == states
    shapes, state_shapes = jitted.stateful_fun.get_out_shapes_by_cache(key)
    # (One entry per state: None for the ones the jaxpr does not return, as published.)
    assert shapes.shape == (5,) and len(state_shapes) == len(states)
    assert [x.shape for x in state_shapes if x is not None] == [(4,), (4,)]


def test_a_compilation_built_after_a_state_changed_tree_keeps_the_compiled_layout():
    w = brainstate.ParamState({'a': jnp.ones(2), 'b': jnp.ones(3)})

    def f(x):
        w.value = {'a': w.value['a'] * 2, 'b': w.value['b'] + x}
        return x * w.value['a'].sum()

    sf = brainstate.transform.StatefulFunction(f)
    key = sf.get_arg_cache_key(jnp.ones(1), compile_if_miss=True)
    w.value = {'a': jnp.ones(2), 'b': jnp.ones(3), 'c': jnp.ones(4)}  # after compiling
    jaxpr = sf.get_jaxpr_by_cache(key)
    assert [v.aval.shape for v in jaxpr.jaxpr.invars] == [(1,), (2,), (3,)]
    assert [v.aval.shape for v in jaxpr.jaxpr.outvars] == [(1,), (2,), (3,)]
    out, (state_shape,) = sf.get_out_shapes_by_cache(key)
    assert out.shape == (1,)
    assert {k: v.shape for k, v in state_shape.items()} == {'a': (2,), 'b': (3,)}


def test_the_compiled_program_is_one_function_where_jax_can_inline_while_lowering():
    """``jit`` hands its lowered program to ``jax.jit``'s trace as one jit equation. Where JAX
    can emit its body inline in the caller's MLIR (``jax.Inline.JAX_LATE``, JAX 0.12), the
    StableHLO is one function, as for the hand-written step (XLA compiles a call measurably
    slower); older JAX emits a call. Either way the results are the same."""
    w = brainstate.ParamState(jnp.arange(6.).reshape(2, 3))

    @brainstate.transform.jit
    def step(x):
        w.value = w.value * 0.5 + x
        return jnp.tanh(w.value).sum()

    text = step.lower(jnp.float32(1.)).as_text()
    late = getattr(getattr(jax, 'Inline', None), 'JAX_LATE', None)
    assert _compat.JIT_INLINE_AT_LOWERING == (late if late is not None else False)
    functions = text.count('func.func')
    assert functions == (1 if late is not None else 2), text
    expected = np.arange(6., dtype=np.float32).reshape(2, 3) * 0.5 + 1.
    assert np.allclose(step(jnp.float32(1.)), np.tanh(expected).sum(), atol=1e-6)
    assert np.allclose(w.value, expected)
