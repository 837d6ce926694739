"""Small published helpers around jaxprs and transforms: the progress bar of a checkpointed
scan, the pydot pictures, ``GradientTransform.stateful_target``, ``StatefulFunction``'s cache
under a concurrent re-trace, and the JAX-compatibility helpers."""

import importlib.util
import threading
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import ProgressBar
from brainstate.transform import _progress_bar


class _RecordingBar:
    made = []

    def __init__(self, *args, **kwargs):
        self.n, self.closed, self.late = 0, False, 0
        _RecordingBar.made.append(self)

    def update(self, delta):
        self.late += self.closed
        self.n += delta

    def set_description(self, *args, **kwargs):
        pass

    def close(self):
        self.closed = True


@pytest.mark.parametrize('n', [3, 5, 8])
def test_checkpointed_scan_bar_counts_every_iteration_once(n):
    _RecordingBar.made = []
    with mock.patch.object(_progress_bar, 'tqdm_installed', False), \
            mock.patch.object(_progress_bar, '_FallbackProgressBar', _RecordingBar):
        carry, ys = brainstate.transform.checkpointed_scan(
            lambda c, x: (c + x, c + x), 0.0, jnp.arange(float(n)), base=2,
            pbar=ProgressBar(freq=1))
        jax.block_until_ready(ys)
    np.testing.assert_allclose(ys, np.cumsum(np.arange(float(n))))
    assert len(_RecordingBar.made) == 1
    bar = _RecordingBar.made[0]
    assert bar.n == n and bar.closed and bar.late == 0


@pytest.mark.skipif(importlib.util.find_spec('pydot') is not None, reason='pydot installed')
def test_pictures_without_pydot_say_what_to_do():
    from brainstate.transform import draw, draw_dot_graph
    with pytest.raises(NotImplementedError, match='pip install pydot'):
        draw(lambda x: x + 1.0)
    with pytest.raises(NotImplementedError, match='to_dot'):
        draw_dot_graph(jax.make_jaxpr(lambda x: x)(1.0))


def test_grad_stateful_target_records_traced_signatures():
    w = brainstate.ParamState(jnp.float32(2.0))

    def loss(x):
        return (w.value * x).sum()

    g = brainstate.transform.grad(loss, grad_states=w)

    @brainstate.transform.jit
    def outer(x):
        return g(x)

    assert float(outer(jnp.ones(3))) == 3.0
    sf = g.stateful_target
    keys = sf._compilation_cache.keys()
    assert len(keys) == 1
    assert list(sf.get_states_by_cache(keys[0])) == [w]
    values = sf._compilation_cache.get(keys[0]).state_trace._original_state_values
    assert values and not any(isinstance(v, jax.core.Tracer) for v in values)


def test_stale_entry_stays_readable_while_it_is_retraced():
    state = brainstate.State(jnp.zeros(3))
    arm, tracing, reader_done = threading.Event(), threading.Event(), threading.Event()

    def f(x):
        if arm.is_set():
            tracing.set()
            reader_done.wait(10)
        state.value = state.value * 2.0
        return x.sum()

    sf = brainstate.transform.StatefulFunction(f)
    x = jnp.ones(3)
    key = sf.get_arg_cache_key(x, compile_if_miss=True)
    state.value = jnp.zeros(5)  # the entry is stale now
    arm.set()
    errors = []
    thread = threading.Thread(target=lambda: sf.make_jaxpr(x) and None)
    thread.start()
    try:
        assert tracing.wait(10)
        try:
            assert sf.get_jaxpr_by_cache(key) is not None  # the old entry, not a hole
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
    finally:
        reader_done.set()
        thread.join(15)
    assert not errors
    assert sf.get_jaxpr_by_cache(key).in_avals[-1].shape == (5,)


def test_compatibility_helpers():
    from brainstate._compatible_import import is_jit_primitive, scan_num_consts_carry
    from brainstate.transform._ir_utils import make_var_factory
    closed = jax.make_jaxpr(lambda c, xs: jax.lax.scan(lambda c, x: (c + x, c * x), c, xs))(
        1.0, jnp.arange(4.0))
    scan = next(e for e in closed.jaxpr.eqns if e.primitive.name == 'scan')
    assert scan_num_consts_carry(scan.params) == (0, 1)
    called = jax.make_jaxpr(lambda x: jax.jit(lambda y: y + 1.0)(x))(1.0)
    assert is_jit_primitive(called.jaxpr.eqns[0]) and not is_jit_primitive(scan)
    factory = make_var_factory()
    a, b = factory(jax.core.ShapedArray((), np.float32)), factory(
        jax.core.ShapedArray((2,), np.int32))
    assert a is not b and b.aval.shape == (2,)


def test_make_jaxpr_lists_states_read_but_unused_and_nested_ones():
    st = brainstate.State(jnp.ones(4))

    def reads_only(x):
        st.value  # noqa: B018 - read, value unused
        return x * 2.0

    jaxpr, states = brainstate.transform.make_jaxpr(reads_only)(jnp.ones(2))
    assert list(states) == [st] and len(jaxpr.in_avals) == 2

    def writes(x):
        st.value = st.value + x.sum()

    def outer(x):
        brainstate.transform.make_jaxpr(writes)(x)  # inspection only: st is not written here
        return x + 1.0

    before = st.value
    jaxpr, states = brainstate.transform.make_jaxpr(outer)(jnp.ones(2))
    assert list(states) == [st]
    out = jax.core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, jnp.ones(2), st.value)
    np.testing.assert_allclose(out[0], 2.0 * np.ones(2))
    np.testing.assert_array_equal(out[1], before)
    np.testing.assert_array_equal(st.value, before)
