"""Differential suite: every step function gives the same results and the same final states
with the default optimization pipeline and with ``passes=[]`` (only what lowering needs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import cond, for_loop, grad, jit, while_loop


def make_states(n=4, seed=0):
    keys = jax.random.split(jax.random.key(seed), 3)
    return {
        'w': brainstate.ParamState(jax.random.normal(keys[0], (n, n)) * 0.3),
        'b': brainstate.ParamState(jnp.zeros(n)),
        'h': brainstate.HiddenState(jax.random.normal(keys[1], (n,))),
        'count': brainstate.ShortTermState(jnp.zeros((), jnp.int32)),
        'total': brainstate.LongTermState(jnp.zeros(())),
        'many': [brainstate.ShortTermState(jnp.full((2,), float(i))) for i in range(12)],
    }


def straight_line(s):
    def step(x):
        s['h'].value = jnp.tanh(s['h'].value @ s['w'].value + x + s['b'].value)
        s['h'].value = s['h'].value * 1.0         # a write of a computed value
        s['total'].value = s['total'].value + 0.0  # folded constants
        s['total'].value = s['total'].value + jnp.sin(x).sum() + jnp.sin(x).sum()  # cse
        s['count'].value = s['count'].value + 1
        unused = jnp.exp(x) * 3                    # dce
        return s['h'].value.sum()
    return step


def dead_writes(s):
    def step(x):
        s['h'].value = x                  # overwritten below: dead
        s['h'].value = x * 2
        s['b'].value = s['b'].value       # writes what it read: dead
        return s['h'].value.mean()
    return step


def loops(s):
    def step(x):
        def body(i):
            s['h'].value = jnp.tanh(s['h'].value @ s['w'].value + x * i)
            s['count'].value = s['count'].value + 1
            return s['h'].value.sum()
        ys = for_loop(body, jnp.arange(5.0))
        return ys
    return step


def branches(s):
    def step(x):
        def small():
            s['total'].value = s['total'].value + 1.0

        def big():
            s['h'].value = s['h'].value * 0.5

        cond(x.sum() > 0, big, small)
        return s['h'].value + s['total'].value
    return step


def while_and_loop_in_cond(s):
    def step(x):
        def body(i):
            def inner(j):
                s['total'].value = s['total'].value + j
            cond(i % 2 == 0, lambda: for_loop(inner, jnp.arange(3.0)) and None, lambda: None)
        for_loop(body, jnp.arange(4))

        def keep_going(c):
            return s['count'].value < 7

        def count_up(c):
            s['count'].value = s['count'].value + 1
            return c + x.sum()

        return while_loop(keep_going, count_up, 0.0)
    return step


def gradients(s):
    def loss(x):
        h = jnp.tanh(x @ s['w'].value + s['b'].value)
        s['count'].value = s['count'].value + 1
        return jnp.sum(h ** 2)

    def step(x):
        grads = grad(loss, {'w': s['w'], 'b': s['b']})(x)
        for key in ('w', 'b'):
            s[key].value = s[key].value - 0.1 * grads[key]
        return loss(x)
    return step


def many_states(s):
    def step(x):
        for i, st in enumerate(s['many']):
            st.value = st.value * 0.9 + x[:2] * i
        return sum(st.value.sum() for st in s['many'])
    return step


CASES = [straight_line, dead_writes, loops, branches, while_and_loop_in_cond, gradients,
         many_states]


def final_values(states):
    return jax.tree.map(lambda st: np.asarray(st.value), states,
                        is_leaf=lambda x: isinstance(x, brainstate.State))


@pytest.mark.parametrize('case', CASES, ids=[c.__name__ for c in CASES])
def test_default_pipeline_equals_no_passes(case):
    x = jnp.linspace(-1.0, 1.0, 4)
    results = []
    for passes in (None, []):
        states = make_states()
        step = jit(case(states), passes=passes)
        outs = [step(x * k) for k in (1.0, -0.5, 2.0)]
        results.append((outs, final_values(states)))
    (outs_opt, states_opt), (outs_raw, states_raw) = results
    for a, b in zip(jax.tree.leaves(outs_opt), jax.tree.leaves(outs_raw)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree.leaves(states_opt), jax.tree.leaves(states_raw)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('case', CASES, ids=[c.__name__ for c in CASES])
def test_optimized_graph_is_valid_and_not_larger(case):
    states = make_states()
    x = jnp.linspace(-1.0, 1.0, 4)
    optimized = jit(case(states)).optimized_ir(x)
    bare = jit(case(states), passes=[]).optimized_ir(x)
    optimized.verify(canonical=True)
    assert len(list(optimized.walk())) <= len(list(bare.walk()))


def test_the_pipeline_does_work_on_the_straight_line_case():
    states = make_states()
    x = jnp.ones(4)
    optimized = jit(straight_line(states)).optimized_ir(x)
    bare = jit(straight_line(states), passes=[]).optimized_ir(x)
    assert len(bare.find_nodes(name='sin')) == 2 and len(optimized.find_nodes(name='sin')) == 1
    assert bare.find_nodes(name='exp') and not optimized.find_nodes(name='exp')


def test_dead_writes_removes_the_unchanged_state_from_the_outputs():
    states = make_states()
    x = jnp.ones(4)
    optimized = jit(dead_writes(states)).optimized_ir(x)
    written = [n.state for n in optimized.find_nodes('state_write')]
    assert written == [states['h']]
