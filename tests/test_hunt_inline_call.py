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


def test_donate_argnames_of_a_state_value_is_refused_naming_the_state():
    """``donate_argnames`` names an argument as ``donate_argnums`` numbers one: passing, by
    keyword or by position, the current value of a State the function reads is refused before
    anything runs with an ArgumentValueError naming the state and the argument (by keyword it
    was XLA's "Attempt to donate a buffer which is also used by the same call", by position it
    was silently not donated); no State changes and nothing is deleted."""
    from brainstate._errors import ArgumentValueError
    s = brainstate.State(jnp.ones(3))
    t = brainstate.State(jnp.arange(3.0))

    def step(x, y):
        s.value = s.value + x + t.value
        return y * 2.0

    f = bt.jit(step, donate_argnames='y')
    f(jnp.ones(3), jnp.ones(3))
    before = np.asarray(s.value)
    for call in (lambda: f(jnp.ones(3), y=t.value), lambda: f(jnp.ones(3), t.value)):
        with pytest.raises(ArgumentValueError, match=r"State State#\d+.*donat|donat.*State State#\d+"):
            call()
        assert not t.value.is_deleted()
        np.testing.assert_array_equal(t.value, np.arange(3.0))
        np.testing.assert_array_equal(s.value, before)


def test_donate_argnames_donates_the_argument_by_position_too():
    """As with ``jax.jit``, an argument named in ``donate_argnames`` is donated whether passed
    by keyword or by position, and the result is the same as without donation."""
    import warnings
    s = brainstate.State(jnp.ones(3))

    def step(x, y):
        s.value = s.value + x
        return y * 2.0

    f = bt.jit(step, donate_argnames='y')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # (XLA may not reuse every donated buffer)
        for _ in range(3):
            y = jnp.arange(3.0)
            np.testing.assert_array_equal(f(jnp.ones(3), y), np.arange(3.0) * 2.0)
            assert y.is_deleted()
            y = jnp.arange(3.0)
            np.testing.assert_array_equal(f(jnp.ones(3), y=y), np.arange(3.0) * 2.0)
            assert y.is_deleted()
    np.testing.assert_array_equal(s.value, np.full(3, 7.0))


def test_jitted_method_static_argnames_names_the_right_argument():
    """On a jitted method, ``static_argnames`` makes static the argument it names, not the one
    after it (the bound method's signature was read through ``__wrapped__``, with ``self``
    counted: ``y`` became static and an array argument was refused as unhashable)."""
    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = brainstate.State(jnp.ones(3))

        @bt.jit(static_argnames='n')
        def step(self, x, n, y):
            self.w.value = self.w.value + x * n
            return y * n

    net = Net()
    for n in (2, 3):
        np.testing.assert_array_equal(net.step(jnp.ones(3), n, jnp.arange(3.0)),
                                      np.arange(3.0) * n)
    np.testing.assert_array_equal(net.w.value, np.full(3, 6.0))
    assert net.step.args.static_argnums == (1,)


def test_jitted_method_keeps_its_jit_options():
    """A method decorated with ``jit(name=..., keep_unused=True, donate_argnames=...,
    in_shardings=...)`` compiles with those options (they were all dropped: the program was
    named after the function, the unused argument pruned, nothing donated). ``in_shardings``
    counts ``self`` as the first positional argument, as the decorated function has it."""
    import warnings
    from jax.sharding import SingleDeviceSharding
    sh = SingleDeviceSharding(jax.devices()[0])

    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = brainstate.State(jnp.ones(3))

        @bt.jit(name='net_step', keep_unused=True, donate_argnames='y',
                in_shardings=(None, sh, sh, sh))
        def step(self, x, y, unused):
            self.w.value = self.w.value + x
            return y * 2.0

    net = Net()
    text = net.step.lower(jnp.ones(3), jnp.ones(3), jnp.zeros(5)).as_text()
    assert 'net_step' in text
    main = next(line for line in text.splitlines() if 'func.func public @main' in line)
    assert 'tensor<5xf32>' in main  # the unused argument is kept
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for _ in range(2):
            y = jnp.arange(3.0)
            np.testing.assert_array_equal(net.step(jnp.ones(3), y, jnp.zeros(5)),
                                          np.arange(3.0) * 2.0)
            assert y.is_deleted()
    np.testing.assert_array_equal(net.w.value, np.full(3, 3.0))


@pytest.mark.parametrize('warm', [False, True])
def test_raw_jax_transforms_around_a_jit_that_only_reads_states(warm):
    """Raw ``jax.jit`` / ``jax.grad`` / ``jax.vmap`` around a brainstate ``jit`` that writes no
    State work on the first call as on later ones, and match the same math in pure JAX (the
    first call was refused with "would lose its state updates", a later one, after an eager
    call, ran)."""
    s = brainstate.State(jnp.array([0.5, 1.0, 2.0]))
    f = bt.jit(lambda x: jnp.sin(x) * s.value)
    x = jnp.array([0.1, 0.2, 0.3])
    if warm:
        for _ in range(3):
            f(x)
    w = s.value
    np.testing.assert_allclose(jax.jit(lambda a: f(a))(x), jnp.sin(x) * w, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda a: f(a).sum())(x), jnp.cos(x) * w, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(f)(jnp.stack([x, 2 * x])),
                               jnp.sin(jnp.stack([x, 2 * x])) * w, rtol=1e-6)


@pytest.mark.parametrize('warm', [False, True])
def test_raw_jax_jit_around_a_jit_that_writes_a_state_is_refused_naming_it(warm):
    """A brainstate ``jit`` that writes a State, called inside raw ``jax.jit``: a
    TracerLeakError naming the state, cold or warm, and the state keeps its value (no
    tracer)."""
    s = brainstate.State(jnp.ones(3))
    g = bt.jit(lambda x: (setattr(s, 'value', s.value + x), s.value.sum())[1])
    if warm:
        for _ in range(3):
            g(jnp.ones(3))
    before = np.asarray(s.value)
    with pytest.raises(TracerLeakError, match=rf'writes State {s.label()}\b'):
        jax.jit(lambda a: g(a))(jnp.ones(3))
    assert not isinstance(s.value, jax.core.Tracer)
    np.testing.assert_array_equal(s.value, before)


def test_tracer_in_a_static_argument_is_explained():
    """A raw ``jax.jit`` value passed where a brainstate ``jit`` takes a static argument: an
    ArgumentTypeError saying the static argument is a JAX tracer and what to do (it said the
    tracer type was unhashable and to use a tuple instead of a list); a Python value there
    works."""
    from brainstate._errors import ArgumentTypeError
    f = bt.jit(lambda x, n: x * n, static_argnums=1)
    with pytest.raises(ArgumentTypeError, match=r'static argument 1 is a JAX tracer.*static_argnums'):
        jax.jit(lambda a: f(a, a))(jnp.ones(3))
    np.testing.assert_array_equal(jax.jit(lambda a: f(a, 3))(jnp.ones(3)), np.full(3, 3.0))


def test_donate_argnames_of_another_type_is_refused_naming_the_option():
    """``donate_argnames`` takes argument names; an int (meant for donate_argnums) is an
    ArgumentTypeError (a TypeError) saying so, not Python's 'int object is not iterable'."""
    with pytest.raises(brainstate.ArgumentTypeError, match='donate_argnames must be a str'):
        brainstate.transform.jit(lambda x, y: x + y, donate_argnames=3)
    with pytest.raises(TypeError, match=r"donate_argnames must be .*\[1\]"):
        brainstate.transform.jit(lambda x, y: x + y, donate_argnames=[1])
