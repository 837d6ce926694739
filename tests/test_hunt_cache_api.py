"""The StatefulFunction / make_jaxpr / jit compilation-cache API under adversarial use: the
cache key keys what the trace baked in, jit records every program it traces, and the published
layout of the result shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import StatefulFunction


def _run(closed, *leaves):
    return jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *leaves)


def test_a_static_argname_given_by_position_keys_the_cache():
    # The trace treats `n` as static whether it comes by name or by position; the cache key
    # must too, or a later call with another `n` gets the jaxpr baked for the first one.
    def f(x, n):
        return x * n

    sf = StatefulFunction(f, static_argnames='n')
    x = jnp.ones(3)
    for n in (2., 5.):
        out, = _run(sf.get_jaxpr(x, n), x)
        np.testing.assert_array_equal(out, x * n)
        np.testing.assert_array_equal(sf(x, n), x * n)
    assert len(sf._compilation_cache) == 2


def test_a_negative_static_argnum_keys_the_cache():
    def f(x, n):
        return x * n

    sf = StatefulFunction(f, static_argnums=-1)
    x = jnp.ones(3)
    for n in (2., 5.):
        out, = _run(sf.get_jaxpr(x, n), x)
        np.testing.assert_array_equal(out, x * n)
    assert sf.get_arg_cache_key(x, 2.) != sf.get_arg_cache_key(x, 5.)


def test_jit_records_the_programs_jax_retraces_for_new_shapes_and_static_values():
    # Calls after the first go through the cached entry, whose jax.jit retraces for new
    # argument shapes or static values: those programs are in `stateful_fun` too, and are the
    # ones the function computes.
    acc = brainstate.State(jnp.zeros(()))

    def f(x, n):
        acc.value = acc.value + x.sum()
        return x * n

    jitted = brainstate.transform.jit(f, static_argnums=1)
    calls = [(jnp.ones(3), 2.), (jnp.ones(4), 3.), (jnp.ones(4), 2.)]
    for args in calls:
        jitted(*args)
    sf = jitted.stateful_fun
    assert len(sf._compilation_cache) == 3
    for x, n in calls:
        closed = sf.get_jaxpr(x, n, compile_if_miss=False)
        assert sf.get_states(x, n, compile_if_miss=False) == (acc,)
        out, new_acc = _run(closed, x, jnp.float32(1.))
        np.testing.assert_allclose(out, x * n)
        np.testing.assert_allclose(new_acc, 1. + x.sum())


def test_out_shapes_have_one_entry_per_state_in_the_published_layout():
    # (result shapes, one entry per state of get_states: None where the jaxpr returns no value,
    # i.e. a state only read with return_only_write=True), so zip(states, shapes) lines up.
    a = brainstate.State(jnp.ones(3))
    b = brainstate.State(jnp.ones((2, 2)))
    c = brainstate.State(jnp.ones(5))

    def f(x):
        a.value = a.value + x
        c.value = jnp.zeros(5)
        return b.value.sum()

    x = jnp.ones(3)
    for only_write in (True, False):
        sf = StatefulFunction(f, return_only_write=only_write)
        key = sf.get_arg_cache_key(x, compile_if_miss=True)
        states = sf.get_states_by_cache(key)
        out, state_shapes = sf.get_out_shapes_by_cache(key)
        assert out.shape == ()
        assert isinstance(state_shapes, tuple) and len(state_shapes) == len(states)
        for state, shape in zip(states, state_shapes):
            if only_write and state is b:
                assert shape is None
            else:
                assert shape.shape == state.value.shape
        closed = sf.get_jaxpr_by_cache(key)
        assert len(closed.out_avals) == 1 + sum(s is not None for s in state_shapes)
        assert sf.get_out_treedef_by_cache(key) == jax.tree.structure((out, state_shapes))


def test_calling_a_stateful_function_with_a_static_keyword_argument():
    # sf(x, mode='mul') outside any trace runs as one compiled program: `mode` is static there
    # too (it was refused as "not an array"), by name or by position, and inside a jit.
    acc = brainstate.State(jnp.ones(3))

    def f(x, mode='add'):
        acc.value = acc.value + x if mode == 'add' else acc.value * x
        return acc.value.sum()

    sf = StatefulFunction(f, static_argnames='mode')
    x = jnp.full(3, 2.)
    assert float(sf(x, mode='mul')) == 6.
    np.testing.assert_array_equal(acc.value, jnp.full(3, 2.))
    assert float(sf(x, mode='add')) == 12.
    assert float(sf(x, 'mul')) == 24.
    assert float(brainstate.transform.jit(lambda y: sf(y, mode='mul'))(x)) == 48.
    np.testing.assert_array_equal(acc.value, jnp.full(3, 16.))


def test_static_values_equal_in_python_but_of_other_types_get_their_own_programs():
    # 1, 1.0 and True are equal (and hash alike) in Python; JAX keys static arguments by type
    # too, and so must the cache: `jnp.full(3, n)` is int32, float32 or bool.
    def f(x, n):
        return jnp.full(x.shape, n)

    sf = StatefulFunction(f, static_argnums=1)
    x = jnp.ones(3)
    for n, dtype in ((1, jnp.int32), (1.0, jnp.float32), (True, jnp.bool_)):
        assert sf.get_out_shapes(x, n)[0].dtype == dtype
        assert sf(x, n).dtype == dtype
    assert len(sf._compilation_cache) == 3
    key = sf.get_arg_cache_key(x, 1)
    assert key.static_args == (1,)  # (still compares as the plain tuple of values)
    sf2 = StatefulFunction(lambda x, n=1: jnp.full(3, n), static_argnames='n')
    assert sf2.get_out_shapes(x, n=1.0)[0].dtype == jnp.float32
    assert sf2.get_out_shapes(x, n=1)[0].dtype == jnp.int32


def test_a_static_argnum_given_by_keyword_is_refused_by_the_compile():
    # (The key must not treat it as static: an array there is no unhashable-static TypeError
    # but the compile's ValueError saying what is wrong.)
    sf = StatefulFunction(lambda x, n=2: x ** n, static_argnums=0)
    with pytest.raises(ValueError, match='static_argnums contains index 0'):
        sf.make_jaxpr(x=jnp.ones(2), n=3)


def test_a_state_passed_as_an_argument_is_named_by_its_place_in_the_call():
    s = brainstate.State(jnp.ones(3))
    sf = StatefulFunction(lambda n, tree: 0., static_argnums=0)
    with pytest.raises(ValueError, match=r"positional argument 1\['q'\]\[1\] is State"):
        sf.get_jaxpr(3, {'q': [1., s]})
    with pytest.raises(ValueError, match=r"keyword argument 'k'\[0\] is State"):
        StatefulFunction(lambda x, k=None: 0.).get_jaxpr(1., k=(s,))


def test_jit_and_vmap_name_a_state_argument_as_the_stateful_function_does():
    """One describer names argument leaves everywhere: by their place in the call (static
    arguments counted), keywords by name."""
    s = brainstate.State(jnp.ones(3))

    def f(n, tree, scale=None):
        return 0.

    jit = brainstate.transform.jit
    with pytest.raises(ValueError, match=r"positional argument 1\['q'\]\[1\]\. States"):
        jit(f, static_argnums=0)(3, {'q': [1., s]})
    with pytest.raises(ValueError, match=r"keyword argument 'scale'\[0\]\. States"):
        jit(f)(3, 1., scale=(s,))
    with pytest.raises(ValueError, match=r"positional argument 1\['q'\]\. States"):
        brainstate.transform.vmap(f)(jnp.ones(2), {'q': s})


def test_an_unhashable_static_argument_is_named():
    sf = StatefulFunction(lambda x, c: x, static_argnums=1)
    with pytest.raises(TypeError, match=r'got a ArrayImpl .*\(At static positional argument 1\.\)'):
        sf.get_jaxpr(jnp.ones(2), jnp.ones(2))
    sf = StatefulFunction(lambda x, c=1: x, static_argnames='c')
    with pytest.raises(TypeError, match=r"\(At static keyword argument 'c'\.\)"):
        sf.get_jaxpr(jnp.ones(2), c={'a': jnp.ones(2)})


def test_make_jaxpr_lists_used_reads_then_only_written_then_unused_reads():
    # The order the make_jaxpr docstring states (the jaxpr's state inputs follow it).
    a = brainstate.State(jnp.ones(2), name='a')
    b = brainstate.State(jnp.ones(2), name='b')
    c = brainstate.State(jnp.ones(2), name='c')

    def f(x):
        _ = c.value  # read, value unused
        b.value = x  # only written
        return a.value * x

    jaxpr, states = brainstate.transform.make_jaxpr(f)(jnp.full(2, 3.))
    assert [s.name for s in states] == ['a', 'b', 'c']
    outs = jax.core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, jnp.full(2, 3.), jnp.ones(2) * 2,
                               jnp.zeros(2), jnp.zeros(2))
    np.testing.assert_array_equal(outs[0], jnp.full(2, 6.))
    np.testing.assert_array_equal(outs[2], jnp.full(2, 3.))  # b's new value


def test_static_values_of_a_key_compare_with_tuples_only():
    from brainstate.transform._stateful_function import _StaticValues
    values = _StaticValues((1,))
    assert values == (1,) and values == _StaticValues((1,))
    assert values != _StaticValues((1.0,))
    assert values != 5 and not (values == [1]) and values != 'x'
