"""brainstate.nn layers against the same math written directly in JAX (tolerance 1e-5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import nn

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True)
def _seed():
    brainstate.random.seed(0)
    yield
    brainstate.environ.pop('fit', None)


def test_conv2d_is_lax_cross_correlation_channels_last():
    conv = nn.Conv2d((6, 6, 2), 3, kernel_size=3, stride=2, padding='VALID',
                     b_init=nn.init.Constant(0.5))
    x = brainstate.random.randn(4, 6, 6, 2)
    w = conv.weight.value['weight']                     # (3, 3, in, out)
    expected = jnp.zeros((4, 2, 2, 3))
    for i in range(2):
        for j in range(2):
            patch = x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            expected = expected.at[:, i, j, :].set(jnp.einsum('bhwc,hwco->bo', patch, w))
    np.testing.assert_allclose(conv(x), expected + 0.5, **TOL)
    assert conv.out_size == (2, 2, 3)
    np.testing.assert_allclose(conv(x[0]), (expected + 0.5)[0], **TOL)   # one sample


def test_batchnorm2d_fit_uses_batch_statistics_and_updates_running_ones():
    bn = nn.BatchNorm2d((3, 3, 4), momentum=0.9)
    x = brainstate.random.randn(5, 3, 3, 4) * 2 + 1
    with brainstate.environ.context(fit=True):
        y = bn(x)
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / jnp.sqrt(var + 1e-5), **TOL)
    np.testing.assert_allclose(bn.running_mean.value.reshape(-1), 0.1 * mean, **TOL)
    np.testing.assert_allclose(bn.running_var.value.reshape(-1), 0.9 + 0.1 * var, **TOL)
    with brainstate.environ.context(fit=False):
        y = bn(x)
    np.testing.assert_allclose(
        y, (x - 0.1 * mean) / jnp.sqrt(0.9 + 0.1 * var + 1e-5), **TOL)
    with pytest.raises(KeyError, match='fit'):
        bn(x)


def test_layer_rms_group_norm():
    x = brainstate.random.randn(2, 5, 8)
    ln = nn.LayerNorm((5, 8))
    expected = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(ln(x), expected, **TOL)
    rms = nn.RMSNorm((5, 8))
    np.testing.assert_allclose(rms(x), x / jnp.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6),
                               **TOL)
    gn = nn.GroupNorm((5, 8), num_groups=2)
    g = x.reshape(2, 5, 2, 4)
    m = g.mean(axis=(1, 3), keepdims=True)
    v = g.var(axis=(1, 3), keepdims=True)
    np.testing.assert_allclose(gn(x), ((g - m) / jnp.sqrt(v + 1e-6)).reshape(x.shape), **TOL)


def test_poolings_against_numpy():
    x = brainstate.random.randn(2, 4, 6, 3)
    xn = np.asarray(x)
    blocks = xn.reshape(2, 2, 2, 3, 2, 3)
    np.testing.assert_allclose(nn.MaxPool2d(2, 2)(x), blocks.max(axis=(2, 4)), **TOL)
    np.testing.assert_allclose(nn.AvgPool2d(2, 2)(x), blocks.mean(axis=(2, 4)), **TOL)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((2, 3))(x), blocks.mean(axis=(2, 4)), **TOL)
    lp = nn.LPPool2d(2, 2, 2)(x)
    np.testing.assert_allclose(lp, np.sqrt((blocks ** 2).mean(axis=(2, 4))), **TOL)
    values, idx = nn.MaxPool2d(2, 2, return_indices=True)(x)
    np.testing.assert_allclose(xn.reshape(-1)[np.asarray(idx)], values, **TOL)
    restored = nn.MaxUnpool2d(2, 2)(values, idx)
    assert restored.shape == x.shape
    np.testing.assert_allclose(restored.max(axis=(1, 2)), xn.max(axis=(1, 2)), **TOL)
    assert nn.Flatten(in_size=(4, 6, 3))(x).shape == (2, 72)
    np.testing.assert_allclose(nn.ReflectionPad2d(1)(x), np.pad(xn, [(0, 0), (1, 1), (1, 1),
                                                                     (0, 0)], mode='reflect'))


def test_recurrent_cells_against_hand_written_steps():
    cell = nn.GRUCell(3, 4)
    nn.init_all_states(cell, batch_size=2)
    x = brainstate.random.randn(2, 3)
    h = jnp.zeros((2, 4))
    wrz, wh = cell.Wrz.weight.value, cell.Wh.weight.value
    rz = jax.nn.sigmoid(jnp.concatenate([x, h], -1) @ wrz['weight'] + wrz['bias'])
    r, z = rz[:, :4], rz[:, 4:]
    cand = jnp.tanh(jnp.concatenate([x, r * h], -1) @ wh['weight'] + wh['bias'])
    np.testing.assert_allclose(cell(x), (1 - z) * h + z * cand, **TOL)

    lstm = nn.LSTMCell(3, 4)
    nn.init_all_states(lstm, batch_size=2)
    w = lstm.W.weight.value
    i, g, f, o = jnp.split(jnp.concatenate([x, h], -1) @ w['weight'] + w['bias'], 4, -1)
    c = jax.nn.sigmoid(i) * jnp.tanh(g)
    np.testing.assert_allclose(lstm(x), jax.nn.sigmoid(o) * jnp.tanh(c), **TOL)
    np.testing.assert_allclose(lstm.c.value, c, **TOL)


def test_dropout_family_follow_fit_flag():
    x = jnp.ones((64, 8, 8, 4))
    with brainstate.environ.context(fit=False):
        for layer in (nn.Dropout(0.5), nn.Dropout2d(0.5), nn.AlphaDropout(0.5)):
            np.testing.assert_array_equal(layer(x), x)
    with brainstate.environ.context(fit=True):
        y = np.asarray(nn.Dropout2d(0.5)(x))
    # One decision per (sample, channel): each channel map is all zero or all 2.
    per_map = y.reshape(64, 64, 4)
    assert np.all((per_map == 0).all(axis=1) | (per_map == 2).all(axis=1))


def test_linear_family_and_desc():
    x = brainstate.random.randn(3, 4)
    signed = nn.SignedWLinear(4, 2, w_sign=jnp.array([[1.], [-1.], [1.], [-1.]]))
    w = signed.weight.value
    np.testing.assert_allclose(signed(x), x @ (jnp.abs(w) * jnp.array([[1.], [-1.], [1.], [-1.]])),
                               **TOL)
    one = nn.OneToOne(4, b_init=nn.init.Constant(1.))
    np.testing.assert_allclose(one(x), x * one.weight.value['weight'] + 1., **TOL)
    a2a = nn.AllToAll(4, 4, w_init=nn.init.Constant(0.5), include_self=False)
    np.testing.assert_allclose(a2a(x), x @ (0.5 * (1 - jnp.eye(4))), **TOL)
    base = nn.Linear(4, 2)
    lora = nn.LoRA(4, 2, 2, base_module=base)
    p = lora.weight.value
    np.testing.assert_allclose(lora(x), x @ p['lora_a'] @ p['lora_b'] + base(x), **TOL)
    seq = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear.desc(out_size=3))
    assert seq.out_size == (3,) and seq[2].in_size == (6,)
    assert isinstance(seq[(0, 2)], nn.Sequential) and len(seq[:2]) == 2


def test_param_transform_and_regularisation():
    p = nn.Param(jnp.array([0.5, 2.0]), t=nn.SoftplusT(0.0), reg=nn.L2Reg(0.1))
    np.testing.assert_allclose(p.val.value, jnp.log(jnp.expm1(jnp.array([0.5, 2.0]))), **TOL)
    np.testing.assert_allclose(p.value(), [0.5, 2.0], **TOL)
    np.testing.assert_allclose(p.reg_loss(), 0.1 * (0.25 + 4.0), **TOL)
    grads = brainstate.transform.grad(lambda: jnp.sum(p.value() ** 2), p.states())()
    (g,) = grads.values()
    raw = p.val.value
    np.testing.assert_allclose(g, 2 * jax.nn.softplus(raw) * jax.nn.sigmoid(raw), **TOL)
    p.cache()
    p.val.value = p.val.value + 1.0          # a write drops the cache
    assert not p.cache_stats['valid']


def test_clip_grad_norm_and_count_parameters(capsys):
    tree = {'a': jnp.array([3.0, 0.0]), 'b': jnp.array([[4.0]])}
    clipped, norm = nn.clip_grad_norm(tree, 1.0, return_norm=True)
    np.testing.assert_allclose(norm, 5.0, **TOL)
    np.testing.assert_allclose(clipped['a'], [3.0 / (5.0 + 1e-6), 0.0], **TOL)
    assert nn.count_parameters(nn.Linear(3, 2)) == 8
    assert 'Total' in capsys.readouterr().out


def test_exp_euler_is_exact_for_a_leaky_membrane():
    brainstate.environ.set(dt=0.1)
    v, i, tau = jnp.array([0.0, -1.0, 2.0]), 1.5, 10.0
    out = nn.exp_euler_step(lambda v, i: (-v + i) / tau, v, i)
    np.testing.assert_allclose(out, i + (v - i) * jnp.exp(-0.1 / tau), **TOL)


def test_delay_ring_buffer_and_interpolation():
    brainstate.environ.set(dt=0.1)
    delay = nn.Delay(jnp.zeros(2), time=0.5, interpolation='linear')
    nn.init_all_states(delay)
    assert delay.max_length == 6
    for k in range(9):
        delay.update(jnp.full(2, float(k)))
    for n in range(6):
        np.testing.assert_allclose(delay.retrieve_at_step(n), 8.0 - n)
    with brainstate.environ.context(t=0.8):
        np.testing.assert_allclose(delay.retrieve_at_time(0.55), 5.5, **TOL)

    @brainstate.transform.jit
    def step(x):
        delay.update(x)
        return delay.retrieve_at_step(2)

    np.testing.assert_allclose(step(jnp.full(2, 9.0)), 7.0)
    assert int(delay.write_ptr.value) == 10 % 6


def test_metrics():
    acc = nn.AccuracyMetric()
    logits = jnp.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    acc.update(logits=logits, labels=jnp.array([1, 0, 0]))
    np.testing.assert_allclose(acc.compute(), 2 / 3, **TOL)
    f1 = nn.F1ScoreMetric(num_classes=2)
    f1.update(predictions=jnp.array([1, 0, 1, 1]), labels=jnp.array([1, 0, 0, 1]))
    # class 0: p=1, r=1/2 -> 2/3; class 1: p=2/3, r=1 -> 4/5
    np.testing.assert_allclose(f1.compute(), (2 / 3 + 4 / 5) / 2, **TOL)
