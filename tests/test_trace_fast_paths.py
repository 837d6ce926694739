"""The short paths of tracing (issue 14 item 1): the jaxpr converter's direct node building, the
lowering's direct equations and the scan region lowered without re-tracing through lax.scan.
Each must give exactly what the general path gives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.ir import Graph, graph_from_jaxpr
from brainstate.ir._graph import Node
from brainstate.ir.regions import _lowering
from brainstate.transform import for_loop, jit, make_jaxpr, scan


@pytest.fixture
def general_scan_lowering(monkeypatch):
    """Lower every scan region through lax.scan (the general path)."""
    monkeypatch.setattr(_lowering, '_scan_template', [None])


def _count_retraces(monkeypatch):
    calls = []
    original = _lowering.wrapper

    def counting(fun, invars):
        calls.append(fun)
        return original(fun, invars)

    monkeypatch.setattr(_lowering, 'wrapper', counting)
    import brainstate.ir.regions._scan as scan_kind
    monkeypatch.setattr(scan_kind, 'wrapper', counting)
    return calls


class _Net(brainstate.Module):
    def __init__(self, n=5):
        super().__init__()
        self.w = brainstate.ParamState(jnp.linspace(-1., 1., n * n).reshape(n, n))
        self.v = brainstate.HiddenState(jnp.zeros(n))
        self.count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    def update(self, x):
        v = self.v.value * 0.9 + jnp.tanh(self.w.value @ self.v.value + x)
        self.v.value = v
        self.count.value = self.count.value + 1
        return v.sum()


def _programs(fun_maker, *args):
    """(printed jaxpr, results, state values) of ``fun_maker()`` run by jit."""
    fun, states = fun_maker()
    jaxpr, _ = make_jaxpr(fun)(*args)
    fun, states = fun_maker()
    out = jit(fun)(*args)
    return str(jaxpr), np.asarray(out), [np.asarray(s.value) for s in states]


def _loop_maker(**options):
    def make():
        net = _Net()

        def run(xs):
            return for_loop(net.update, xs, **options)

        return run, [net.w, net.v, net.count]
    return make


def _scan_maker(reverse=False, unroll=1):
    def make():
        net = _Net()
        k = jnp.arange(5.)

        def body(carry, x):  # a user carry, a closed-over array, states, ys
            out = net.update(x + k) + carry
            return carry * 0.5 + out, (out, carry)

        def run(xs):
            return scan(body, jnp.float32(1.), xs, reverse=reverse, unroll=unroll)[1][0]

        return run, [net.w, net.v, net.count]
    return make


@pytest.mark.parametrize('maker', [_loop_maker(), _scan_maker(), _scan_maker(reverse=True),
                                   _scan_maker(unroll=2), _scan_maker(unroll=True)],
                         ids=['for_loop', 'scan', 'reverse', 'unroll2', 'unroll_true'])
def test_scan_lowered_directly_is_what_lax_scan_gives(maker, monkeypatch):
    xs = jnp.sin(jnp.arange(20.)).reshape(4, 5)
    calls = _count_retraces(monkeypatch)
    direct = _programs(maker, xs)
    if _lowering._scan_primitive() is not None:
        assert calls == []  # no re-trace through lax.scan
    calls.clear()
    monkeypatch.setattr(_lowering, '_scan_template', [None])
    general = _programs(maker, xs)
    assert calls  # the general path did re-trace
    assert direct[0] == general[0]
    np.testing.assert_array_equal(direct[1], general[1])
    for a, b in zip(direct[2], general[2]):
        np.testing.assert_array_equal(a, b)


def test_scan_lowered_directly_matches_hand_written_lax_scan():
    n, steps = 5, 4
    xs = jnp.cos(jnp.arange(steps * n, dtype=jnp.float32)).reshape(steps, n)
    net = _Net(n)
    w0 = net.w.value
    sums = jit(lambda xs: for_loop(net.update, xs))(xs)

    def step(carry, x):
        v, count = carry
        v = v * 0.9 + jnp.tanh(w0 @ v + x)
        return (v, count + 1), v.sum()

    (v, count), raw_sums = jax.jit(lambda xs: jax.lax.scan(
        step, (jnp.zeros(n), jnp.zeros((), jnp.int32)), xs))(xs)
    np.testing.assert_array_equal(np.asarray(sums), np.asarray(raw_sums))
    np.testing.assert_array_equal(np.asarray(net.v.value), np.asarray(v))
    assert int(net.count.value) == int(count) == steps


def test_scan_equation_declines_what_does_not_fit_exactly():
    body = jax.make_jaxpr(lambda c, x: (c + x, c * x))(
        jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), jnp.float32))
    f32, i32 = jax.core.ShapedArray((), jnp.float32), jax.core.ShapedArray((), jnp.int32)
    xs = jax.core.ShapedArray((3,), jnp.float32)
    ys = jax.core.ShapedArray((3,), jnp.float32)
    var = jax.extend.core.Var
    node = Node('region', op='scan')
    options = dict(length=3, reverse=False, unroll=1, num_consts=0, num_carry=1)
    fits = _lowering.scan_equation(node, body, [var(f32), var(xs)], [var(f32), var(ys)],
                                   **options)
    if _lowering._scan_primitive() is None:
        pytest.skip('this JAX lays out its scan equation differently: always the general path')
    assert fits is not None and fits.primitive.name == 'scan'
    weak = jax.core.ShapedArray((), jnp.float32, weak_type=True)
    for invars, outvars, changed in (
            ([var(i32), var(xs)], [var(f32), var(ys)], {}),        # carry of another dtype
            ([var(weak), var(xs)], [var(f32), var(ys)], {}),       # weakly typed carry in
            ([var(f32), var(jax.core.ShapedArray((4,), jnp.float32))],
             [var(f32), var(ys)], {}),                             # xs of another length
            ([var(f32), var(xs)], [var(f32), var(ys)], {'length': 2}),
            ([var(f32), var(xs)], [var(f32), var(ys)], {'unroll': 0}),
            ([var(f32), var(xs)], [var(f32)], {})):                # a result missing
        assert _lowering.scan_equation(node, body, invars, outvars,
                                       **{**options, **changed}) is None
    # A body with a constant (an unused constvar is enough).
    with_consts = jax.extend.core.ClosedJaxpr(body.jaxpr.replace(constvars=[var(f32)]),
                                              [np.float32(1.)])
    assert _lowering.scan_equation(node, with_consts, [var(f32), var(xs)],
                                   [var(f32), var(ys)], **options) is None


def test_converted_graph_matches_node_by_node_building():
    def f(x, y):
        z = jnp.tanh(x @ y) + 1.
        return jax.lax.cond(z.sum() > 0, lambda a: a * 2., lambda a: a - 1., z), z.max()

    x = jnp.ones((3, 3))
    closed = jax.make_jaxpr(f)(x, x)
    graph = graph_from_jaxpr(closed)
    nodes = graph.nodes
    assert [n.kind for n in nodes].count('primitive') == len(closed.jaxpr.eqns)
    for node, eqn in zip([n for n in nodes if n.kind == 'primitive'], closed.jaxpr.eqns):
        assert node.op is eqn.primitive
        assert node.params == dict(eqn.params) and node.params is not eqn.params
        assert [v.aval for v in node.outputs] == [v.aval for v in eqn.outvars]
        assert [v.index for v in node.outputs] == list(range(len(eqn.outvars)))
        assert all(v.producer is node for v in node.outputs)
        assert node.graph is graph and not node.subgraphs and node.meta == {}
        for value in node.inputs:
            if not hasattr(value, 'val'):
                assert node in value.users
    graph.verify()
    # Editing after the short path keeps the graph consistent.
    before = graph.edit_count
    first = next(n for n in nodes if n.kind == 'primitive')
    graph.insert_after(first, Node('primitive', op=first.op, inputs=first.inputs,
                                   output_avals=[v.aval for v in first.outputs],
                                   params=first.params))
    assert graph.edit_count > before
    assert len(graph.nodes) == len(nodes) + 1
    out = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, x, x)
    assert len(out) == 2


def test_state_inside_raw_loop_refused_after_the_loop_primitive_was_seen_plain():
    state = brainstate.ShortTermState(jnp.zeros(3))

    def clean(xs):  # a raw scan that touches no state: scan takes the short path from now on
        return jax.lax.scan(lambda c, x: (c + x, c), jnp.zeros(3), xs)[0]

    make_jaxpr(clean)(jnp.ones((2, 3)))

    def dirty(xs):
        def body(c, x):
            state.value = state.value + x
            return c + x, c
        return jax.lax.scan(body, jnp.zeros(3), xs)[0]

    with pytest.raises(brainstate.BrainStateError, match='inside a raw `scan`'):
        make_jaxpr(dirty)(jnp.ones((2, 3)))
    np.testing.assert_array_equal(np.asarray(state.value), np.zeros(3))


def test_graph_built_at_the_end_only_takes_the_short_append():
    graph = Graph('g')
    x = graph.add_input(jax.core.ShapedArray((), jnp.float32))
    graph.set_outputs([x])
    closed = jax.make_jaxpr(lambda a: a + 1.)(1.)
    # A graph with an output node: conversion into it must use the checked append (here
    # through graph_from_jaxpr's own fresh graph, which has none until the end).
    converted = graph_from_jaxpr(closed)
    assert [n.kind for n in converted.nodes] == ['input', 'primitive', 'output']
    assert graph.nodes[-1].kind == 'output'


# -- reads in one trace: the value already known is reused (store-to-load forwarding) ------------

def _state_ops(graph):
    return [(n.kind, n.state) for n in graph.nodes if n.kind in ('state_read', 'state_write')]


def test_repeated_reads_record_one_state_read_and_compute_the_same():
    w = brainstate.ParamState(jnp.arange(3.))
    v = brainstate.HiddenState(jnp.ones(3))

    def f(x):
        a = w.value * x + w.value          # two reads of w: one node
        v.value = v.value + a              # read of v, then a write
        return v.value * w.value + v.value  # reads after the write: the written value

    aval = jax.ShapeDtypeStruct((3,), jnp.float32)
    graph, _ = brainstate.ir.trace_flat(lambda x: [f(x)], [aval])  # as programs are traced
    assert _state_ops(graph) == [('state_read', w), ('state_read', v), ('state_write', v)]
    # The graph as traced, for reading (brainstate.ir.trace, jit(f).ir()): every read.
    literal = brainstate.ir.trace(f, jnp.ones(3))
    assert _state_ops(literal) == [('state_read', w), ('state_read', w), ('state_read', v),
                                   ('state_write', v), ('state_read', v), ('state_read', w),
                                   ('state_read', v)]
    x = jnp.array([0.5, -1., 2.])
    w0, v0 = np.asarray(w.value), np.asarray(v.value)
    out = jit(f)(x)
    a = w0 * x + w0
    v1 = v0 + a
    np.testing.assert_array_equal(np.asarray(out), v1 * w0 + v1)
    np.testing.assert_array_equal(np.asarray(v.value), v1)


def test_read_after_a_weakly_typed_write_keeps_the_states_type():
    s = brainstate.ShortTermState(jnp.zeros(3, jnp.float32))

    def f(x):
        weak = jnp.broadcast_to(x * 0 + 2., (3,))
        assert weak.aval.weak_type
        s.value = weak  # weakly typed f32: stored strong
        return s.value + jnp.ones(3, jnp.float16)

    jaxpr, _ = make_jaxpr(f)(jnp.asarray(1.))  # a weakly typed argument keeps `x * 0` weak
    assert jaxpr.out_avals[0].dtype == jnp.float32


def test_read_after_a_numpy_write_gives_a_traced_value():
    s = brainstate.ShortTermState(jnp.zeros(3))

    def f(x):
        s.value = np.ones(3, np.float32)
        return s.value.at[0].set(x)  # a NumPy array has no .at: the read must be recorded

    out = jit(f)(jnp.float32(5.))
    np.testing.assert_array_equal(np.asarray(out), [5., 1., 1.])


def test_reads_inside_raw_jax_transforms_within_a_trace():
    w = brainstate.ParamState(jnp.array([1., 2., 3.]))
    s = brainstate.ShortTermState(jnp.zeros(3))

    def f(x):
        first = w.value.sum()                                  # the outer trace's read
        inner = jax.jit(lambda y: w.value * y)(x)              # a read inside a raw jit
        g = jax.grad(lambda y: (w.value * y).sum() + first)(x)  # and inside raw grad
        s.value = inner + g
        batched = jax.vmap(lambda y: s.value * y)(jnp.stack([x, 2 * x]))
        return first + w.value.sum(), batched

    x = jnp.array([1., -1., 0.5])
    total, batched = jit(f)(x)
    w0 = np.array([1., 2., 3.])
    assert float(total) == 2 * w0.sum()
    np.testing.assert_array_equal(np.asarray(s.value), w0 * np.asarray(x) + w0)
    np.testing.assert_allclose(np.asarray(batched),
                               np.stack([np.asarray(s.value) * np.asarray(x),
                                         np.asarray(s.value) * 2 * np.asarray(x)]))


def test_read_after_a_loop_that_writes_the_state_sees_the_loops_value():
    s = brainstate.HiddenState(jnp.zeros(2))

    def f(xs):
        before = s.value

        def body(x):
            s.value = s.value + x

        for_loop(body, xs)
        after = s.value  # must be read again: the loop wrote it
        return before, after

    xs = jnp.arange(6.).reshape(3, 2)
    before, after = jit(f)(xs)
    np.testing.assert_array_equal(np.asarray(before), [0., 0.])
    np.testing.assert_array_equal(np.asarray(after), np.asarray(xs).sum(0))
    np.testing.assert_array_equal(np.asarray(s.value), np.asarray(xs).sum(0))


def test_grad_of_a_loss_reading_a_parameter_twice_matches_jax():
    w = brainstate.ParamState(jnp.array([0.3, -0.2, 0.7]))

    def loss(x):
        return jnp.sum(jnp.tanh(w.value * x) * w.value)

    x = jnp.array([1., 2., -1.])
    grads = jit(lambda x: brainstate.transform.grad(loss, {'w': w})(x))(x)
    expected = jax.grad(lambda p: jnp.sum(jnp.tanh(p * x) * p))(w.value)
    np.testing.assert_allclose(np.asarray(grads['w']), np.asarray(expected), rtol=1e-6)


def test_no_forwarded_value_outlives_its_trace():
    # A transform keeps its traced program (and the function that traced it); the values
    # remembered for forwarding are tracers of that finished trace and must be dropped with it.
    w = brainstate.ParamState(jnp.array(2.0))
    count = brainstate.ShortTermState(jnp.array(0.))

    def loss(x):
        count.value = count.value + 1.
        return (w.value * x).sum() + count.value

    gt = brainstate.transform.grad(loss, grad_states=w)
    outer = jit(lambda x: for_loop(lambda i: gt(x), jnp.arange(2)))
    with jax.checking_leaks():
        grads = outer(jnp.ones(3))
    np.testing.assert_allclose(np.asarray(grads), [3., 3.])
    assert float(count.value) == 2.
