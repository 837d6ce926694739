"""Adversarial checks of a ``brainstate.transform.jit`` step handed to JAX as one call (inlined
while lowering on JAX 0.12, a call on 0.10 / 0.11), composed as users compose it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate._errors import TracerLeakError

bt = brainstate.transform


def test_jit_reads_a_state_born_under_raw_jax_jit():
    """A State created inside raw ``jax.jit`` lives in that trace (docs/compatibility.md): a
    brainstate ``jit`` called there reads it, as ``for_loop``/``cond``/``grad``/``vmap`` do,
    twice in a row (the second call must not take a cached path that expects a stored value),
    and the result matches the same math in pure JAX (it was an AttributeError on ``_value``)."""
    def f(x):
        s = brainstate.State(x * 2.0)
        g = bt.jit(lambda y: jnp.sin(s.value) * y)
        return g(3.0) + g(4.0)

    x = jnp.arange(3.0)
    np.testing.assert_allclose(jax.jit(f)(x), jnp.sin(x * 2.0) * 7.0, rtol=1e-6)


def test_jit_writing_a_state_born_under_raw_jax_jit_is_a_tracer_leak_error():
    """Writing such a state from a brainstate ``jit`` is refused as ``for_loop`` refuses it:
    a TracerLeakError naming the state (it was an AttributeError on ``_value``)."""
    made = []

    def f(x):
        s = brainstate.State(x)
        made.append(s)
        bt.jit(lambda: setattr(s, 'value', s.value + 1.0))()
        return s.value

    with pytest.raises(TracerLeakError, match=r'writes State State#\d+'):
        jax.jit(f)(jnp.ones(3))


def test_jit_donating_an_argument_reads_a_state_born_under_raw_jax_jit():
    """With ``donate_argnums``, the check that no donated argument is a state's value skips a
    state born under raw ``jax.jit`` (it stores no value; it was an AttributeError on
    ``_value``), and the call reads the state."""
    def f(x):
        s = brainstate.State(x)
        return bt.jit(lambda y: s.value + y, donate_argnums=0)(np.ones(3, np.float32))

    np.testing.assert_array_equal(jax.jit(f)(jnp.arange(3.0)), np.arange(3.0) + 1.0)
