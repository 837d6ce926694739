"""vmap, vmap_new_states and map, checked against hand-written ``jax.vmap`` of pure functions.

Each test writes the same math twice: once with States under brainstate's transforms, once as a
pure function under ``jax.vmap`` / ``jax.lax.scan``; the results (and the states' final values)
must agree to 1e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
import brainstate.random as br
from brainstate.transform import (for_loop, grad, jit, map as bs_map, vmap, vmap_new_states)

B, N = 4, 3


def close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def keys_equal(a, b) -> bool:
    return np.array_equal(jax.random.key_data(a), jax.random.key_data(b))


class Net(brainstate.Module):
    """A leaky unit per example: ``v`` per lane (when declared), ``w`` shared, a call counter."""

    def __init__(self, batch=B):
        super().__init__()
        self.w = brainstate.ParamState(jnp.array([0.5, -1.0, 2.0]))
        self.v = brainstate.HiddenState(jnp.arange(batch * N, dtype=jnp.float32).reshape(batch, N))
        self.count = brainstate.ShortTermState(jnp.zeros(()))

    def step(self, x):
        self.v.value = 0.9 * self.v.value + x * self.w.value
        self.count.value = self.count.value + 1
        return (self.v.value ** 2).sum()


def pure_step(v, w, x):
    v = 0.9 * v + x * w
    return v, (v ** 2).sum()


def snapshot(module):
    return {k: np.asarray(s.value) for k, s in module.states().items()}


def assert_unchanged(module, before):
    after = snapshot(module)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=str(key))
    for state in module.states().values():   # per-lane avals never touch a State
        assert [a.shape for a in state.avals] == [np.shape(x) for x in jax.tree.leaves(state.value)]


XS = jnp.linspace(-1., 1., B * N).reshape(B, N)


# -- vmap eagerly and inside jit ---------------------------------------------------------------

def test_vmap_matches_jax_vmap_eagerly():
    net = Net()
    v0 = net.v.value
    out = vmap(net.step, in_states=net.v)(XS)
    v_ref, out_ref = jax.vmap(pure_step, in_axes=(0, None, 0))(v0, net.w.value, XS)
    close(out, out_ref)
    close(net.v.value, v_ref)
    assert float(net.count.value) == 1.0   # a shared state written an unbatched value


def test_vmap_inside_jit_keeps_updates_across_calls():
    net = Net()
    v, w = net.v.value, net.w.value

    @jit
    def run(xs):
        return vmap(net.step, in_states=net.v)(xs)

    for _ in range(3):
        out = run(XS)
        v, out_ref = jax.vmap(pure_step, in_axes=(0, None, 0))(v, w, XS)
        close(out, out_ref)
        close(net.v.value, v)
    assert float(net.count.value) == 3.0


def test_decorator_forms():
    net = Net()

    @vmap(in_states=net.v)
    def step(x):
        return net.step(x)

    close(step(XS), jax.vmap(pure_step, in_axes=(0, None, 0))(Net().v.value, net.w.value, XS)[1])


@pytest.mark.parametrize('form', ['state', 'list', 'flat_mapping', 'class_filter', 'tag',
                                  'predicate', 'axis_dict'])
def test_in_states_forms(form):
    net = Net()
    net.v.tag = 'trial'
    declared = {
        'state': lambda: net.v,
        'list': lambda: [net.v],
        'flat_mapping': lambda: net.states(brainstate.HiddenState),
        'class_filter': lambda: brainstate.HiddenState,
        'tag': lambda: 'trial',
        'predicate': lambda: (lambda path, state: path[-1:] == ('v',)),
        'axis_dict': lambda: {0: net.states(brainstate.HiddenState)},
    }[form]()
    v0 = net.v.value
    out = vmap(net.step, in_states=declared)(XS)
    v_ref, out_ref = jax.vmap(pure_step, in_axes=(0, None, 0))(v0, net.w.value, XS)
    close(out, out_ref)
    close(net.v.value, v_ref)


def test_filter_applies_inside_loop_bodies():
    """A filter selects a state even when its first read is inside a for_loop body."""
    net = Net()
    v0 = net.v.value
    xs = jnp.stack([XS, 2 * XS], axis=1)   # (B, T=2, N)

    def trial(x_seq):
        return for_loop(net.step, x_seq)

    out = vmap(trial, in_states=brainstate.HiddenState)(xs)

    def pure_trial(v, x_seq):
        return jax.lax.scan(lambda v, x: pure_step(v, net.w.value, x), v, x_seq)

    v_ref, out_ref = jax.vmap(pure_trial)(v0, xs)
    close(out, out_ref)
    close(net.v.value, v_ref)


def test_non_zero_axes():
    """State batched on axis 1, argument mapped on axis 1, result stacked on axis 1."""
    net = Net()
    net.v.value = net.v.value.T                       # (N, B): the batch on axis 1
    v0 = net.v.value
    xs = XS.T                                         # (N, B)
    out = vmap(lambda x: net.v.value * 0 + net.step(x) + x, in_axes=1, out_axes=1,
               in_states={1: net.v})(xs)

    def pure(v, x):
        v, s = pure_step(v, net.w.value, x)
        return v, v * 0 + s + x

    v_ref, out_ref = jax.vmap(pure, in_axes=(1, 1), out_axes=(1, 1))(v0, xs)
    close(out, out_ref)
    close(net.v.value, v_ref)
    assert net.v.value.shape == (N, B)


def test_in_axes_per_argument_and_keywords():
    w = brainstate.State(jnp.array([1., 2., 3.]), name='w')

    def f(x, y, scale):
        return (x * w.value + y) * scale

    ys = jnp.ones(N)
    scales = jnp.arange(1., B + 1.)
    out = vmap(f, in_axes=(0, None))(XS, ys, scale=scales)
    ref = jax.vmap(lambda x, y, s: (x * w.value + y) * s, in_axes=(0, None, 0))(XS, ys, scales)
    close(out, ref)


def test_out_states_gain_the_batch_axis():
    """out_states: read shared, written back with the batch axis."""
    acc = brainstate.State(jnp.ones(N), name='acc')
    out = vmap(lambda x: acc.__setattr__('value', acc.value + x), out_states=acc)(XS)
    assert out is None
    close(acc.value, jnp.ones(N) + XS)
    assert acc.value.shape == (B, N)


def test_unmapped_function_with_axis_size():
    c = brainstate.State(jnp.array(2.), name='c')
    out = vmap(lambda: c.value * jnp.ones(2), axis_size=3)()
    close(out, 2 * jnp.ones((3, 2)))


def test_axis_name_collectives():
    mean = brainstate.State(jnp.zeros(N), name='mean')

    def f(x):
        mean.value = jax.lax.pmean(x, 'batch')   # the same in every lane: may be shared
        return x - jax.lax.psum(x, 'batch') / B + jax.lax.axis_index('batch')

    out = vmap(f, axis_name='batch')(XS)
    ref = jax.vmap(lambda x: x - jax.lax.psum(x, 'b') / B + jax.lax.axis_index('b'),
                   axis_name='b')(XS)
    close(out, ref)
    close(mean.value, XS.mean(0))


# -- composition --------------------------------------------------------------------------------

def test_per_example_gradients_grad_inside_vmap():
    w = brainstate.ParamState(jnp.array([0.3, -0.2, 0.1]))
    ys = jnp.arange(B, dtype=jnp.float32)

    def loss(x, y):
        return (jnp.tanh(x @ w.value) - y) ** 2

    def pure_loss(w, x, y):
        return (jnp.tanh(x @ w) - y) ** 2

    ref = jax.vmap(jax.grad(pure_loss), in_axes=(None, 0, 0))(w.value, XS, ys)
    close(vmap(grad(loss, w))(XS, ys), ref)
    close(jit(lambda xs, ys: vmap(grad(loss, w))(xs, ys))(XS, ys), ref)


def test_grad_of_vmap():
    w = brainstate.ParamState(jnp.array([0.3, -0.2, 0.1]))

    def total(xs):
        return vmap(lambda x: jnp.sin(x * w.value).sum())(xs).sum()

    ref = jax.grad(lambda w: jax.vmap(lambda x: jnp.sin(x * w).sum())(XS).sum())(w.value)
    close(grad(total, w)(XS), ref)


def test_vmap_of_vmap():
    s = brainstate.State(jnp.arange(2 * B * N, dtype=jnp.float32).reshape(2, B, N), name='s')
    shared = brainstate.State(jnp.array([1., 2., 3.]), name='shared')
    xs = jnp.ones((2, B, N))
    s0 = s.value

    def inner(x):
        s.value = s.value * shared.value + x
        return s.value.sum()

    out = jit(lambda xs: vmap(lambda x: vmap(inner, in_states=s)(x), in_states=s)(xs))(xs)

    def pure(s, x):
        s = s * shared.value + x
        return s, s.sum()

    s_ref, out_ref = jax.vmap(jax.vmap(pure))(s0, xs)
    close(out, out_ref)
    close(s.value, s_ref)


# -- LIF trials: vmap over for_loop, with random input noise --------------------------------------

DT, TAU, V_TH = 0.1, 10., 1.


class LIF(brainstate.Module):
    def __init__(self, n, trials):
        super().__init__()
        rng = np.random.default_rng(0)
        self.W = brainstate.ParamState(jnp.asarray(rng.normal(0, 0.3, (n, n)), jnp.float32))
        self.V = brainstate.HiddenState(jnp.zeros((trials, n)))
        self.spikes = brainstate.HiddenState(jnp.zeros((trials, n)))

    def update(self, current):
        n = current.shape[0]
        noise = br.normal(0., 2., size=n)
        V = self.V.value + DT / TAU * (-self.V.value + current + noise +
                                       self.W.value @ self.spikes.value)
        spike = (V >= V_TH).astype(jnp.float32)
        self.V.value = jnp.where(spike > 0, 0., V)
        self.spikes.value = spike
        return spike.sum()


def pure_lif(W, V, spikes, key, currents):
    def step(carry, current):
        V, spikes, key = carry
        key, sub = jax.random.split(key)
        noise = jax.random.normal(sub, current.shape) * 2.
        V = V + DT / TAU * (-V + current + noise + W @ spikes)
        spike = (V >= V_TH).astype(jnp.float32)
        return (jnp.where(spike > 0, 0., V), spike, key), spike.sum()

    (V, spikes, _), counts = jax.lax.scan(step, (V, spikes, key), currents)
    return V, spikes, counts


def test_lif_trials_vmap_over_for_loop_inside_jit():
    n, trials, steps = 6, 3, 25
    net = LIF(n, trials)
    currents = jnp.linspace(10., 14., steps * n).reshape(steps, n)

    @jit
    def simulate(currents):
        def trial():
            return for_loop(net.update, currents)
        return vmap(trial, in_states=net.states(brainstate.HiddenState), axis_size=trials)()

    br.seed(3)
    k0 = br.DEFAULT.value
    counts = simulate(currents)
    keys = jax.random.split(k0, trials + 1)
    V_ref, s_ref, counts_ref = jax.vmap(pure_lif, in_axes=(None, 0, 0, 0, None))(
        net.W.value, jnp.zeros((trials, n)), jnp.zeros((trials, n)), keys[1:], currents)
    close(counts, counts_ref)
    close(net.V.value, V_ref)
    close(net.spikes.value, s_ref)
    assert keys_equal(br.DEFAULT.value, keys[0])      # advanced once per call
    assert not np.allclose(net.V.value[0], net.V.value[1])   # trials differ: own noise


# -- random numbers ------------------------------------------------------------------------------

def test_random_differs_per_lane_advances_once_and_seed_reproduces():
    draw = vmap(lambda: br.normal(size=2), axis_size=B)
    br.seed(11)
    k0 = br.DEFAULT.value
    first = draw()
    keys = jax.random.split(k0, B + 1)
    ref = jax.vmap(lambda k: jax.random.normal(jax.random.split(k)[1], (2,)))(keys[1:])
    close(first, ref)
    assert keys_equal(br.DEFAULT.value, keys[0])
    assert len({tuple(np.asarray(row)) for row in first}) == B   # every lane its own numbers
    second = draw()
    assert not np.allclose(first, second)
    br.seed(11)
    close(draw(), first)
    close(jit(lambda: draw())(), second)   # inside jit: the same stream


def test_random_state_of_a_module_in_vmap_of_vmap():
    rng = br.RandomState(5)
    k0 = rng.value
    out = vmap(lambda: vmap(lambda: rng.uniform(), axis_size=3)(), axis_size=2)()
    outer = jax.random.split(k0, 3)

    def lane(k):
        inner = jax.random.split(k, 4)
        return jax.vmap(lambda kk: jax.random.uniform(jax.random.split(kk)[1]))(inner[1:])

    close(out, jax.vmap(lane)(outer[1:]))
    assert keys_equal(rng.value, outer[0])


def test_random_inside_grad_inside_vmap():
    w = brainstate.ParamState(jnp.array([0.3, -0.2, 0.1]))

    def noisy_loss(x):
        return ((x + br.normal(size=N)) @ w.value) ** 2

    br.seed(4)
    k0 = br.DEFAULT.value
    g = vmap(grad(noisy_loss, w))(XS)
    keys = jax.random.split(k0, B + 1)[1:]

    def pure(x, k):
        noise = jax.random.normal(jax.random.split(k)[1], (N,))
        return jax.grad(lambda w: ((x + noise) @ w) ** 2)(w.value)

    close(g, jax.vmap(pure)(XS, keys))


def test_declared_random_state_keeps_one_key_per_lane():
    rng = br.RandomState(0)
    rng.value = jax.random.split(jax.random.key(1), B)   # one key per lane, stored
    keys = rng.value
    out = vmap(lambda: rng.normal(), in_states=rng)()
    ref_pairs = jax.vmap(jax.random.split)(keys)
    close(out, jax.vmap(lambda k: jax.random.normal(k))(ref_pairs[:, 1]))
    assert np.array_equal(jax.random.key_data(rng.value), jax.random.key_data(ref_pairs[:, 0]))


# -- vmap_new_states -----------------------------------------------------------------------------

class Cell(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.w = brainstate.ParamState(jnp.ones(N))

    def init_state(self):
        self.V = brainstate.HiddenState(br.uniform(size=N))
        self.t = brainstate.ShortTermState(jnp.zeros(()))

    def update(self, x):
        self.V.value = self.V.value + x * self.w.value
        self.t.value = self.t.value + 1.
        return self.V.value.sum()


def test_vmap_new_states_batches_states_created_inside():
    cell = Cell()
    br.seed(2)
    k0 = br.DEFAULT.value
    vmap_new_states(cell.init_state, state_tag='trial', axis_size=B)()
    assert cell.V.value.shape == (B, N) and cell.t.value.shape == (B,)
    assert cell.V.tag == 'trial' and cell.t.tag == 'trial'
    keys = jax.random.split(k0, B + 1)
    close(cell.V.value,
          jax.vmap(lambda k: jax.random.uniform(jax.random.split(k)[1], (N,)))(keys[1:]))
    # The new states, selected by their tag, are then per-lane states of vmap.
    V0 = cell.V.value
    out = vmap(cell.update, in_states='trial')(XS)
    close(out, (V0 + XS).sum(1))
    close(cell.t.value, jnp.ones(B))


def test_vmap_new_states_inside_jit_and_exclusion():
    cell = Cell()
    jit(lambda: vmap_new_states(cell.init_state, axis_size=5,
                                state_to_exclude=brainstate.ParamState)())()
    assert cell.V.value.shape == (5, N)

    def init():
        cell.init_state()
        cell.shared = brainstate.ShortTermState(jnp.zeros(2), name='shared')

    vmap_new_states(init, axis_size=3, state_to_exclude=lambda path, s: s.name == 'shared')()
    assert cell.shared.value.shape == (2,) and cell.V.value.shape == (3, N)


# -- map ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('batch_size', [None, 1, 3, 4, 10])
def test_map_matches_lax_map(batch_size):
    w = brainstate.State(jnp.array([1., -2., 3.]), name='w')
    xs = jnp.linspace(0., 1., 10 * N).reshape(10, N)
    ys = jnp.arange(10.)
    out = bs_map(lambda x, y: (jnp.sin(x * w.value).sum() + y, x * 2), xs, ys,
                 batch_size=batch_size)
    ref = jax.lax.map(lambda a: (jnp.sin(a[0] * w.value).sum() + a[1], a[0] * 2), (xs, ys))
    close(out[0], ref[0])
    close(out[1], ref[1])


def test_map_writes_states_once_per_element_or_block():
    count = brainstate.State(jnp.zeros(()), name='count')

    def f(x):
        count.value = count.value + 1
        return x

    bs_map(f, jnp.arange(7.))
    assert float(count.value) == 7
    bs_map(f, jnp.arange(7.), batch_size=3)   # blocks of 3, 3 and a remainder of 1
    assert float(count.value) == 10


# -- the batching analysis in the IR -------------------------------------------------------------

def test_printed_ir_shows_the_analysis():
    net = Net()
    text = vmap(net.step, in_states=net.v).ir(XS).format()
    lines = text.splitlines()

    def line_of(fragment):
        return next(line for line in lines if fragment in line)

    assert 'batched axis=0' in line_of('state_read @Net.v')
    assert 'shared' in line_of('state_read @Net.w')
    assert 'batched axis=0' in line_of('state_write @Net.v')
    assert 'shared' in line_of('state_write @Net.count')
    assert 'batched' not in line_of('state_write @Net.count')
    assert 'batched' in line_of('mul')


def test_ir_shows_per_lane_keys_and_loop_carries():
    net = Net()

    def trial(x_seq):
        def step(x):
            return net.step(x + br.normal(size=N))
        return for_loop(step, x_seq)

    graph = vmap(trial, in_states=net.v, in_axes=None, axis_size=B).ir(jnp.ones((2, N)))
    text = graph.format()
    assert 'per_lane_key' in next(l for l in text.splitlines() if 'state_read @' in l and
                                  'DEFAULT' in l)
    scan = graph.find_nodes('region', 'scan')[0]
    # Carries: the key (batched), Net.v (batched), Net.count (shared); the ys are batched.
    assert scan.meta['batched'] == (0, 1, 3)
    result = graph.meta['batching']
    assert result.read_axes[net.v] == 0 and result.read_axes[net.w] is None
    assert result.write_axes[net.count] is None


def test_batching_analysis_is_a_registered_pass_and_needs_a_spec():
    assert 'batching-analysis' in brainstate.passes.registered_passes()
    graph = brainstate.ir.trace(lambda x: x * 2, jnp.ones(3))
    before = graph.format()
    brainstate.passes.get_pass('batching-analysis')(graph)   # no vmap spec: nothing to do
    assert graph.format() == before


# -- errors --------------------------------------------------------------------------------------

def test_batched_write_into_shared_state_names_it_and_changes_nothing():
    net = Net()
    before = snapshot(net)
    with pytest.raises(brainstate.BatchAxisError) as info:
        vmap(net.step)(XS)             # Net.v is not declared: shared
    message = str(info.value)
    assert 'Net.v' in message and 'in_states=' in message and 'out_states=' in message
    assert_unchanged(net, before)

    with pytest.raises(brainstate.BatchAxisError, match=r'Net\.v'):
        jit(lambda xs: vmap(net.step)(xs))(XS)
    assert_unchanged(net, before)


def test_batched_write_in_a_loop_body_and_per_lane_noise():
    net = Net()
    before = snapshot(net)

    def noisy():
        def step(i):
            net.count.value = net.count.value + br.normal()   # per-lane noise into shared
            return i
        return for_loop(step, jnp.arange(3))

    with pytest.raises(brainstate.BatchAxisError, match=r'Net\.count'):
        vmap(noisy, axis_size=2)()
    assert_unchanged(net, before)


def test_new_state_batched_under_plain_vmap_points_to_vmap_new_states():
    cell = Cell()
    with pytest.raises(brainstate.BatchAxisError, match='vmap_new_states'):
        vmap(cell.init_state, axis_size=3)()


def test_in_state_without_the_batch_axis():
    s = brainstate.State(jnp.array(1.), name='scalar')
    with pytest.raises(brainstate.BatchAxisError, match=r'scalar.*no axis 0'):
        vmap(lambda x: s.value + x, in_states=s)(XS)
    assert s.value.shape == ()


def test_size_mismatch_names_both():
    net = Net()
    before = snapshot(net)
    with pytest.raises(ValueError, match=r'positional argument 0: 5.*Net\.v.*4'):
        vmap(net.step, in_states=net.v)(jnp.ones((5, N)))
    with pytest.raises(ValueError, match='axis_size=7'):
        vmap(net.step, in_states=net.v, axis_size=7)(XS)
    with pytest.raises(ValueError, match='axis_size='):
        vmap(lambda: br.normal())()
    assert_unchanged(net, before)


def test_bad_in_axes():
    with pytest.raises(ValueError, match='2 entries.*1 positional'):
        vmap(lambda x: x, in_axes=(0, 0))(XS)
    with pytest.raises(ValueError, match=r'positional argument 0.*no axis 2'):
        vmap(lambda x: x, in_axes=2)(XS)
    with pytest.raises(TypeError, match='int or None'):
        vmap(lambda x: x, in_axes='0')
    with pytest.raises(ValueError, match='out_axes gives None'):
        vmap(lambda x: x, out_axes=None)(XS)


def test_conflicting_axes_and_bad_declarations():
    net = Net()
    with pytest.raises(brainstate.BatchAxisError, match=r'Net\.v.*axis 0.*axis 1'):
        vmap(net.step, in_states=net.v, out_states={1: net.v})
    with pytest.raises(TypeError, match='in_states must be'):
        vmap(net.step, in_states=3.5)
    with pytest.raises(brainstate.StateArgumentError, match=r'Net\.v'):
        vmap(lambda s: s)(net.v)


def test_an_error_while_tracing_restores_everything():
    net = Net()
    before = snapshot(net)

    def broken(x):
        net.v.value = net.v.value + x
        return net.v.value @ jnp.ones(7)      # a shape error in the user's code

    with pytest.raises(TypeError):
        vmap(broken, in_states=brainstate.HiddenState)(XS)
    assert_unchanged(net, before)


def test_out_states_verify_with_verification_on():
    """A write that gives a state its batch axis is legal IR: the verifier accepts it."""
    from brainstate.passes._default_pipeline import _settings
    was = _settings['verify']
    brainstate.passes.set_pass_options(verify=True)
    try:
        acc = brainstate.State(jnp.ones(N), name='acc')
        vmap(lambda x: acc.__setattr__('value', acc.value + x), out_states=acc)(XS)
        close(acc.value, jnp.ones(N) + XS)
        other = brainstate.State(jnp.ones(N), name='other')
        jit(lambda xs: vmap(lambda x: other.__setattr__('value', other.value * x),
                            out_states=other)(xs))(XS)
        close(other.value, XS)
    finally:
        brainstate.passes.set_pass_options(verify=was)
