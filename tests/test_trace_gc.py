"""Tracing pauses Python's cycle collector (it would walk the growing graphs over and over)
and always restores it: after a successful call, after a failing one, and never turns on a
collector the user turned off."""

import gc

import jax.numpy as jnp
import pytest

import brainstate


def test_collector_paused_while_tracing_and_restored_after():
    seen = []
    state = brainstate.ShortTermState(jnp.zeros(3))

    @brainstate.transform.jit
    def step(x):
        seen.append(gc.isenabled())
        state.value = state.value + x
        return x * 2

    assert gc.isenabled()
    step(jnp.ones(3))
    assert seen == [False] and gc.isenabled()
    step(jnp.ones(3))  # cached: no trace
    assert seen == [False] and gc.isenabled()

    seen.clear()
    brainstate.transform.make_jaxpr(step)(jnp.ones(3))
    assert seen == [False] and gc.isenabled()


def test_collector_restored_when_tracing_fails():
    state = brainstate.ShortTermState(jnp.zeros(3))

    @brainstate.transform.jit
    def step(x):
        state.value = state.value + x
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        step(jnp.ones(3))
    assert gc.isenabled()
    assert (state.value == 0).all()


def test_collector_left_off_when_the_user_turned_it_off():
    @brainstate.transform.jit
    def step(x):
        return x + 1

    gc.disable()
    try:
        step(jnp.ones(2))
        assert not gc.isenabled()
    finally:
        gc.enable()
