"""brainstate.ir.parse reads the printed IR back: text round trips, and the parsed graph
computes what the original computes."""

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import ir, passes
from brainstate import transform as T


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.w = brainstate.ParamState({'a': jnp.arange(3.), 'b': jnp.ones(())})
        self.count = brainstate.State(jnp.zeros(()))
        self.h = brainstate.HiddenState(jnp.zeros(3))


def elementwise(net, x, i):
    y = jnp.tanh(x) * 2.0 - jnp.exp(-x) / (1.0 + x * x)
    z = jnp.where(y > 0, jnp.maximum(y, -0.0), jnp.abs(y) ** 3)
    return z + (-0.0), jnp.sin(x) + jnp.cos(x) - jnp.log1p(jnp.abs(x)), i * 3 // 2


def linear_algebra(net, x, i):
    m = jnp.outer(x, x) + jnp.eye(3)
    return m @ x, jnp.einsum('ij,jk->ik', m, m), jnp.dot(x, net.w.value['a'])


def reductions(net, x, i):
    m = jnp.outer(x, x)
    return (m.sum(0), m.max(1), m.min(), jnp.argmax(m, axis=0), jnp.mean(m), jnp.prod(x),
            jnp.cumsum(m, axis=1), jnp.sort(x), jnp.any(x > 1))


def shapes_and_casts(net, x, i):
    b = jax.lax.broadcast_in_dim(x, (2, 3), (1,))
    return (b.reshape(6), b.T, jnp.concatenate([x, x]), x.astype(jnp.int32), x[1:],
            x[::-1], b[i], jnp.take(b, jnp.array([1, 0]), axis=0), jnp.pad(x, 1),
            jax.lax.convert_element_type(i, jnp.float32), x.astype(jnp.bfloat16))


def state_ops(net, x, i):
    net.count.value = net.count.value + 1
    net.h.value = net.h.value * 0.5 + x * net.w.value['b']
    net.w.value = {'a': net.w.value['a'] + x, 'b': net.w.value['b']}
    return net.h.value.sum()


def loop(net, x, i):
    def body(j):
        net.h.value = net.h.value + x * j
        return net.h.value.sum()
    return T.for_loop(body, jnp.arange(4))


def while_loop(net, x, i):
    def cond(c):
        return c[0] < 5

    def body(c):
        net.count.value = net.count.value + 1
        return c[0] + 1, c[1] * 1.5
    return T.while_loop(cond, body, (i, x))


def branches(net, x, i):
    def yes():
        net.h.value = net.h.value + 1
        return x.sum()
    return T.cond(i > 0, yes, lambda: x.mean()), T.switch(i, [jnp.sin, jnp.cos, jnp.tanh], x)


def checkpointed(net, x, i):
    @T.checkpoint
    def inner(v):
        return jnp.sin(jnp.sin(v)) * net.w.value['b']
    return inner(x)


def randomness(net, x, i):
    return jax.random.normal(jax.random.key(1), (3,)) + x, jnp.ones(3) * x[0]


PROGRAMS = [elementwise, linear_algebra, reductions, shapes_and_casts, state_ops, loop,
            while_loop, branches, checkpointed, randomness]


def run_graph(graph, x, i):
    """Lower ``graph`` (after hoist-states) and run it on the states' current values."""
    graph = graph.copy()
    passes.hoist_states(graph)
    lowered = ir.lower_to_jaxpr(graph)
    state_values = [leaf for s in lowered.read_states for leaf in jax.tree.leaves(s.value)]
    return jax.extend.core.jaxpr_as_fun(lowered.closed_jaxpr)(*state_values, x, i)


@pytest.mark.parametrize('program', PROGRAMS, ids=lambda f: f.__name__)
def test_exact_text_round_trips_and_computes_the_same(program):
    net = Net()
    x, i = jnp.array([0.5, -1.0, 2.0]), jnp.int32(1)
    graph = ir.trace(lambda x, i: program(net, x, i), x, i)
    text = graph.format(exact=True)
    states = {s.label(): s for s in graph.states()}
    again = ir.parse(text, states=states)
    again.verify()
    assert again.format(exact=True) == text
    assert again.format() == graph.format()
    for want, got in zip(run_graph(graph, x, i), run_graph(again, x, i)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize('program', [elementwise, linear_algebra, state_ops, loop, branches],
                         ids=lambda f: f.__name__)
def test_ordinary_text_reads_back_with_placeholder_states(program):
    net = Net()
    x, i = jnp.array([0.5, -1.0, 2.0]), jnp.int32(1)
    graph = ir.trace(lambda x, i: program(net, x, i), x, i)
    again = ir.parse(graph.format())
    again.verify()
    assert again.format() == graph.format()
    placeholders = again.meta['parsed_states']
    assert set(placeholders) == {s.label() for s in graph.states()}
    for state in graph.states():
        assert placeholders[state.label()].avals == state.avals
    passes.PassManager(passes.DEFAULT_PIPELINE, verify=True).run(again)


def test_signed_zero_and_nan_literals_keep_their_bits():
    graph = ir.trace(lambda x: (x * -0.0, x + jnp.float32(np.nan), x * 0.0), 1.0)
    again = ir.parse(graph.format(exact=True))
    literals = [v for n in again.find_nodes('primitive') for v in n.inputs
                if isinstance(v, ir.Literal)]
    assert [np.signbit(np.asarray(v.val)) for v in literals] == [True, False, False]
    assert np.isnan(np.asarray(literals[1].val))


def test_parse_errors_name_the_line():
    with pytest.raises(ir.IRParseError, match=r"line 2: %7 is used before it is defined"):
        ir.parse('graph g(%0:f32[]) {\n  %1:f32[] = sin %7\n  return %1\n}')
    with pytest.raises(ir.IRParseError, match=r"line 2: no JAX primitive named 'no_such_op'"):
        ir.parse('graph g(%0:f32[]) {\n  %1:f32[] = no_such_op %0\n  return %1\n}')
    with pytest.raises(ir.IRParseError, match=r"line 1: 'f99\[\]' is not a type"):
        ir.parse('graph g(%0:f99[]) {\n  return %0\n}')
    with pytest.raises(ir.IRParseError, match=r"printed in short form.*exact=True"):
        ir.parse('graph g(%0:f32[3]) {\n  %1:f32[3] = cumsum[axis=0 reverse=Fa...] %0\n'
                 '  return %1\n}')
    with pytest.raises(ir.IRParseError, match=r"cannot read .__import__\('os'\). back"):
        ir.parse('graph g(%0:f32[3]) {\n  %1:f32[3] = cumsum[axis=__import__(\'os\')] %0\n'
                 '  return %1\n}')


def test_a_parsed_graph_that_breaks_a_rule_is_caught_by_the_verifier():
    text = 'graph g(%0:f32[3]) {\n  %1:f32[] = sin %0\n  return %1\n}'
    with pytest.raises(ir.IRVerificationError, match=r'the results are typed \(%1:f32\[\]\) '
                                                     r'but sin of these operands gives'):
        ir.parse(text).verify()
