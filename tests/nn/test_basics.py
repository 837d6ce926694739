"""brainstate.nn: layers, activations, initializers, dropout and the state hooks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import nn


def test_linear_computes_x_w_plus_b():
    brainstate.random.seed(0)
    layer = nn.Linear(3, 2)
    params = layer.weight.value
    assert params['weight'].shape == (3, 2) and params['bias'].shape == (2,)
    np.testing.assert_array_equal(params['bias'], 0)
    x = jnp.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(layer(x), x @ params['weight'] + params['bias'], rtol=1e-6)
    assert list(layer.states(brainstate.ParamState)) == [('weight',)]


def test_linear_options():
    w = jnp.arange(6.0).reshape(3, 2)
    layer = nn.Linear(3, 2, w_init=w, b_init=None, w_mask=jnp.array([[1, 0]] * 3))
    assert 'bias' not in layer.weight.value
    x = jnp.ones((1, 3))
    np.testing.assert_allclose(layer(x), x @ (w * jnp.array([[1, 0]] * 3)))
    layer = nn.Linear((5, 3), (5, 4), b_init=nn.init.Constant(0.5))
    assert layer.weight.value['weight'].shape == (3, 4)
    np.testing.assert_array_equal(layer.weight.value['bias'], 0.5)
    with pytest.raises(ValueError, match='shape'):
        nn.Linear(3, 2, w_init=jnp.ones((2, 2)))
    with pytest.raises(AssertionError, match='in_size'):
        nn.Linear((5, 3), (7, 4))


def test_initializers_are_reproducible_and_scaled():
    brainstate.random.seed(1)
    a = nn.init.KaimingNormal()((256, 128))
    brainstate.random.seed(1)
    b = nn.init.KaimingNormal()((256, 128))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.std(a), np.sqrt(2 / 256), rtol=0.05)
    u = nn.init.XavierUniform()((100, 300))
    assert np.abs(u).max() <= np.sqrt(6 / 400) + 1e-6
    np.testing.assert_array_equal(nn.init.ZeroInit()((2,)), 0)
    k = jax.random.key(0)
    np.testing.assert_array_equal(nn.init.Normal()((3,), key=k), nn.init.Normal()((3,), key=k))


def test_sequential_and_activations():
    brainstate.random.seed(0)
    seq = nn.Sequential(nn.Linear(4, 8), nn.relu, nn.Linear(8, 3), nn.Softmax())
    x = jnp.ones((2, 4))
    out = seq(x)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)
    l0, l2 = seq[0], seq[2]
    expected = jax.nn.softmax(jax.nn.relu(x @ l0.weight.value['weight']) @
                              l2.weight.value['weight'])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert len(seq) == 4 and isinstance(seq[2:], nn.Sequential) and seq.out_size == (3,)
    assert list(seq.states(brainstate.ParamState)) == [('layers', 0, 'weight'),
                                                       ('layers', 2, 'weight')]
    assert seq[0].weight.label() == 'Sequential.layers.0.weight'
    seq.append(nn.Linear(3, 1))
    assert ('layers', 4, 'weight') in seq.states()
    for fn, ref in [(nn.gelu, jax.nn.gelu), (nn.sigmoid, jax.nn.sigmoid), (nn.tanh, jnp.tanh),
                    (nn.silu, jax.nn.silu), (nn.elu, jax.nn.elu)]:
        np.testing.assert_allclose(fn(x - 0.5), ref(x - 0.5))
    np.testing.assert_allclose(nn.LeakyReLU(negative_slope=0.2)(-x), -0.2 * x)


def test_dropout_keeps_prob_and_scales():
    brainstate.random.seed(0)
    drop = nn.Dropout(0.8)
    x = jnp.ones((200, 50))
    with brainstate.environ.context(fit=False):
        np.testing.assert_array_equal(drop(x), x)
    brainstate.environ.set(fit=True)
    y = drop(x)
    kept = np.asarray(y != 0)
    assert 0.75 < kept.mean() < 0.85
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.8, rtol=1e-6)
    # Inside jit each call draws a new mask (the random key is a state).
    step = brainstate.transform.jit(lambda x: nn.Dropout(0.5)(x))
    assert not np.array_equal(step(x), step(x))
    shared = nn.Dropout(0.5, broadcast_dims=(0,))(x)
    assert np.all(np.asarray(shared) == np.asarray(shared)[:1])
    with pytest.raises(AssertionError, match='range'):
        nn.Dropout(1.5)
    brainstate.environ.pop('fit')
    with pytest.raises(KeyError, match='fit'):
        drop(x)


def test_init_and_reset_all_states_children_first():
    calls = []

    class Neuron(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def init_state(self, batch_size=1):
            calls.append(('neuron', self.n))
            self.v = brainstate.HiddenState(jnp.zeros((batch_size, self.n)))

        def reset_state(self, batch_size=1):
            self.v.value = jnp.zeros((batch_size, self.n))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Neuron(3)
            self.b = [Neuron(2)]

        def init_state(self, batch_size=1):
            calls.append(('net', self.a.v.value.shape))   # children are ready

    net = nn.init_all_states(Net(), batch_size=4)
    assert calls == [('neuron', 3), ('neuron', 2), ('net', (4, 3))]
    assert net.b[0].v.value.shape == (4, 2)
    assert ('a', 'v') in net.states(brainstate.HiddenState)
    net.a.v.value = jnp.ones((4, 3))
    nn.reset_all_states(net, batch_size=4)
    np.testing.assert_array_equal(net.a.v.value, 0)
    calls.clear()
    nn.init_all_states(net, node_to_exclude=Neuron)
    assert calls == [('net', (4, 3))]


def test_repr_of_a_module_holding_a_dtype_class():
    # BatchNorm keeps its dtype as a class (np.float32), whose `shape`/`dtype` are descriptors:
    # the repr must show the class, not try to read a shape from it.
    class Model(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = brainstate.nn.BatchNorm1d([10, 3])
            self.dtype = np.float32
            self.w = jnp.zeros((2, 3))

    model = Model()
    text = repr(model)
    assert "dtype=<class 'numpy.float32'>" in text
    assert 'w=ArrayImpl(shape=(2, 3), dtype=float32)' in text
    assert 'BatchNorm1d' in repr(model.nodes())


_DIRECT = ['tanh', 'relu', 'relu6', 'softplus', 'soft_sign', 'sigmoid', 'silu', 'log_sigmoid',
           'selu', 'hard_sigmoid', 'hard_silu', 'sparse_plus', 'sparse_sigmoid', 'gelu']


@pytest.mark.parametrize('name', _DIRECT)
def test_activations_of_plain_arrays_skip_brainunit_with_the_same_program(name, monkeypatch):
    """A plain array goes straight to JAX (no brainunit dispatch while tracing), giving the
    jaxpr brainunit gave; a Quantity still goes through brainunit and keeps its unit."""
    import brainunit as u
    ours = getattr(nn, name)
    x = jnp.linspace(-3., 3., 12).reshape(3, 4)
    expected = str(jax.make_jaxpr(getattr(u.math, name))(x))
    assert str(jax.make_jaxpr(ours)(x)) == expected
    calls = []
    real = getattr(u.math, name)
    monkeypatch.setattr(u.math, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    jax.make_jaxpr(ours)(x)
    ours(np.asarray(x))
    assert calls == []
    try:
        out = ours(x * u.mV)
    except TypeError:  # brainunit wants most of them dimensionless, and says so
        out = None
    assert calls == [1]
    if name == 'relu':
        assert u.get_unit(out) == u.mV


def test_gelu_exact_and_linear_layers_skip_brainunit_for_plain_arrays(monkeypatch):
    import brainunit as u
    x = jnp.linspace(-3., 3., 12).reshape(3, 4)
    assert str(jax.make_jaxpr(lambda a: nn.gelu(a, approximate=False))(x)) == \
        str(jax.make_jaxpr(lambda a: u.math.gelu(a, approximate=False))(x))
    brainstate.random.seed(0)
    layers = [nn.Linear(4, 2), nn.ScaledWSLinear(4, 2)]
    expected = [str(jax.make_jaxpr(layer)(x)) for layer in layers]
    calls = []
    real = u.linalg.dot
    monkeypatch.setattr(u.linalg, 'dot', lambda *a, **k: calls.append(1) or real(*a, **k))
    assert [str(jax.make_jaxpr(layer)(x)) for layer in layers] == expected
    assert calls == []
    out = layers[0](x * u.mV)  # a Quantity input: brainunit's dot, with the unit
    assert calls == [1] and u.get_unit(out) == u.mV
