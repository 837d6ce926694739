"""brainstate.random: random numbers whose key is an ordinary State, threaded by transforms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
import brainstate.random as br

N = 10_000


def keys_equal(a, b) -> bool:
    return bool(np.array_equal(jax.random.key_data(a), jax.random.key_data(b)))


# -- each sampler: dtype, and mean / variance of 10k draws -----------------------------------

# (name, args, kwargs, dtype kind, mean, variance)
SAMPLERS = [
    ('rand', (N,), {}, 'f', 0.5, 1 / 12),
    ('randn', (N,), {}, 'f', 0.0, 1.0),
    ('random', (), {'size': N}, 'f', 0.5, 1 / 12),
    ('uniform', (-1.0, 3.0), {'size': N}, 'f', 1.0, 16 / 12),
    ('normal', (2.0, 3.0), {'size': N}, 'f', 2.0, 9.0),
    ('randint', (0, 10), {'size': N}, 'i', 4.5, 99 / 12),
    ('bernoulli', (0.3,), {'size': N}, 'b', 0.3, 0.21),
    ('choice', (5,), {'size': N}, 'i', 2.0, 2.0),
    ('exponential', (2.0,), {'size': N}, 'f', 2.0, 4.0),
    ('gamma', (3.0, 2.0), {'size': N}, 'f', 6.0, 12.0),
    ('beta', (2.0, 5.0), {'size': N}, 'f', 2 / 7, 10 / (49 * 8)),
    ('poisson', (4.0,), {'size': N}, 'i', 4.0, 4.0),
    ('binomial', (10, 0.3), {'size': N}, 'i', 3.0, 2.1),
    # Standard normal truncated to [-1, 1]: variance 1 - 2 phi(1) / (2 Phi(1) - 1).
    ('truncated_normal', (-1.0, 1.0), {'size': N}, 'f', 0.0,
     1 - 2 * math.exp(-0.5) / math.sqrt(2 * math.pi) / math.erf(1 / math.sqrt(2))),
    ('lognormal', (0.0, 0.5), {'size': N}, 'f', math.exp(0.125),
     (math.exp(0.25) - 1) * math.exp(0.25)),
    ('categorical', (jnp.log(jnp.array([0.2, 0.3, 0.5])),), {'size': N}, 'i', 1.3, 0.61),
]


@pytest.fixture(scope='module')
def draws():
    """10k draws from every sampler, made by one jitted call (one XLA compile instead of many:
    the gamma-family samplers take seconds each to compile) from one RandomState."""
    rng = br.RandomState(0)

    @brainstate.transform.jit
    def draw_all():
        out = {name: getattr(rng, name)(*args, **kwargs)
               for name, args, kwargs, *_ in SAMPLERS}
        out['scaled_truncated_normal'] = rng.truncated_normal(0.5, 2.0, size=N, loc=1.0,
                                                              scale=3.0)
        out['uniform_negative'] = rng.uniform(-2.0, -1.0, size=N)
        return out

    return draw_all()


@pytest.mark.slow  # 10k draws of every sampler, one large compile (CI's slow step)
@pytest.mark.parametrize('name,args,kwargs,kind,mean,var', SAMPLERS,
                         ids=[s[0] for s in SAMPLERS])
def test_sampler_statistics(draws, name, args, kwargs, kind, mean, var):
    x = draws[name]
    assert x.shape == (N,)
    assert x.dtype.kind == kind
    x = np.asarray(x, dtype=np.float64)
    # Five standard errors for the mean; 10% for the variance (its spread here is 1.5-4%).
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / N), (x.mean(), mean)
    assert abs(x.var() - var) < 0.1 * var, (x.var(), var)


@pytest.mark.slow
def test_sampler_ranges(draws):
    def bounds(name):
        return float(draws[name].min()), float(draws[name].max())

    assert 0.0 <= bounds('rand')[0] and bounds('rand')[1] < 1.0
    assert -1.0 <= bounds('uniform')[0] and bounds('uniform')[1] < 3.0
    assert -2.0 <= bounds('uniform_negative')[0] and bounds('uniform_negative')[1] < -1.0
    assert -1.0 <= bounds('truncated_normal')[0] and bounds('truncated_normal')[1] <= 1.0
    assert 0.5 <= bounds('scaled_truncated_normal')[0]
    assert bounds('scaled_truncated_normal')[1] <= 2.0
    assert 0.0 <= bounds('beta')[0] and bounds('beta')[1] <= 1.0
    assert set(np.unique(draws['randint'])) == set(range(10))
    assert set(np.unique(draws['binomial'])) <= set(range(11))
    assert set(np.unique(draws['categorical'])) == {0, 1, 2}


def test_permutation_shuffle_and_choice_without_replacement():
    rng = br.RandomState(2)
    p = rng.permutation(10)
    assert sorted(np.asarray(p).tolist()) == list(range(10))
    x = jnp.arange(12).reshape(4, 3)
    rows = rng.permutation(x)
    assert sorted(map(tuple, np.asarray(rows).tolist())) == sorted(map(tuple, x.tolist()))
    cols = rng.shuffle(x, axis=1)
    assert sorted(np.asarray(cols[0]).tolist()) == [0, 1, 2]
    c = rng.choice(jnp.arange(100, 110), size=10, replace=False)
    assert sorted(np.asarray(c).tolist()) == list(range(100, 110))
    weighted = rng.choice(3, size=1000, p=jnp.array([0.0, 0.0, 1.0]))
    assert (np.asarray(weighted) == 2).all()


# -- size= and dtype= -------------------------------------------------------------------------

def abstract(method, *args, **kwargs):
    """The shape and dtype a sampler would return, without compiling it (a fast test)."""
    return jax.eval_shape(lambda k: method(*args, key=k, **kwargs), jax.random.key(0))


def test_size_conventions():
    rng = br.RandomState(3)
    assert rng.normal().shape == ()
    assert rng.normal(size=4).shape == (4,)
    assert abstract(rng.normal, size=(2, 3)).shape == (2, 3)
    assert abstract(rng.normal, size=np.int64(2)).shape == (2,)
    assert abstract(rng.rand, 2, 3).shape == (2, 3)
    assert abstract(rng.rand, size=(2, 3)).shape == (2, 3)
    assert abstract(rng.randn).shape == ()
    # Without size, the parameters' shapes broadcast (one draw per parameter entry).
    assert abstract(rng.normal, jnp.zeros(3), jnp.ones((2, 1))).shape == (2, 3)
    assert abstract(rng.poisson, jnp.array([1.0, 5.0])).shape == (2,)
    assert abstract(rng.categorical, jnp.zeros((4, 3))).shape == (4,)
    assert abstract(rng.categorical, jnp.zeros((4, 3)), axis=0).shape == (3,)
    # With size, the parameters broadcast to it.
    assert abstract(rng.normal, jnp.zeros(3), size=(5, 3)).shape == (5, 3)
    assert abstract(rng.categorical, jnp.zeros((4, 3)), size=(2, 4)).shape == (2, 4)
    assert rng.split_key().shape == () and rng.split_key(3).shape == (3,)


def test_dtypes():
    rng = br.RandomState(4)
    assert abstract(rng.normal, size=2).dtype == jnp.float32
    assert abstract(rng.normal, size=2, dtype=jnp.float16).dtype == jnp.float16
    assert abstract(rng.randint, 5, size=2, dtype=jnp.int8).dtype == jnp.int8
    assert abstract(rng.poisson, 2.0, size=2).dtype == jnp.int32
    assert abstract(rng.binomial, 4, 0.5, size=2, dtype=jnp.int16).dtype == jnp.int16
    assert abstract(rng.bernoulli, 0.5, size=2).dtype == jnp.bool_


def test_bad_arguments_say_what_to_do():
    rng = br.RandomState(5)
    with pytest.raises(TypeError, match=r'normal: size must be None.*Example: size=\(3, 4\)'):
        rng.normal(size=2.5)
    with pytest.raises(ValueError, match='size must not contain negative'):
        rng.uniform(size=(2, -1))
    with pytest.raises(ValueError, match=r'`loc` has shape \(3,\).*does not broadcast to size=\(2,\)'):
        rng.normal(jnp.zeros(3), size=2)
    with pytest.raises(TypeError, match='rand takes the dimensions as separate arguments'):
        rng.rand((2, 3))
    with pytest.raises(TypeError, match='not both'):
        rng.randn(2, size=3)
    with pytest.raises(ValueError, match='without replacement'):
        rng.choice(3, size=5, replace=False)
    with pytest.raises(TypeError, match='floating dtype'):
        rng.normal(size=2, dtype=jnp.int32)
    with pytest.raises(ValueError, match='positive int'):
        rng.split_key(0)
    with pytest.raises(TypeError, match=r'integer seed.*jax.random.key'):
        br.RandomState('seed')
    # A failed draw leaves the state as it was.
    before = rng.value
    with pytest.raises(ValueError):
        rng.normal(jnp.zeros(3), size=2)
    assert keys_equal(rng.value, before)


# -- the key: seeding, key=, splitting --------------------------------------------------------

def test_seed_reproduces_results():
    br.seed(123)
    a = br.normal(size=5), br.randint(100, size=5), br.uniform(size=2)
    br.seed(123)
    b = br.normal(size=5), br.randint(100, size=5), br.uniform(size=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], br.normal(size=5))
    # A RandomState seeded alike gives the same stream as the global one.
    np.testing.assert_array_equal(br.RandomState(123).normal(size=5), a[0])


def test_seed_without_argument_picks_a_fresh_seed():
    br.seed()
    first = br.get_key()
    br.seed()
    assert not keys_equal(first, br.get_key())
    assert not np.array_equal(br.RandomState().normal(size=4), br.RandomState().normal(size=4))


def test_same_numbers_as_handwritten_jax_random():
    """Each draw is `key, sub = split(key)`, then the jax.random sampler on `sub`."""
    rng = br.RandomState(7)
    key = jax.random.key(7)
    key, sub = jax.random.split(key)
    np.testing.assert_array_equal(rng.normal(size=4), jax.random.normal(sub, (4,)))
    key, sub = jax.random.split(key)
    np.testing.assert_array_equal(rng.uniform(2.0, 5.0, size=3),
                                  jax.random.uniform(sub, (3,), minval=2.0, maxval=5.0))
    key, sub = jax.random.split(key)
    np.testing.assert_array_equal(rng.randint(0, 9, size=6), jax.random.randint(sub, (6,), 0, 9))
    keys = jax.random.split(key, 4)
    key = keys[0]
    assert keys_equal(rng.split_key(3), keys[1:])
    key, sub = jax.random.split(key)
    assert keys_equal(rng.split_key(), sub)
    assert keys_equal(rng.value, key)


def test_key_argument_leaves_the_state_alone():
    rng = br.RandomState(8)
    before = rng.value
    k = jax.random.key(99)
    a = rng.normal(size=3, key=k)
    assert keys_equal(rng.value, before)
    np.testing.assert_array_equal(a, jax.random.normal(k, (3,)))
    np.testing.assert_array_equal(a, rng.normal(size=3, key=99))            # an int seed
    np.testing.assert_array_equal(a, rng.normal(size=3, key=jax.random.PRNGKey(99)))  # raw key
    br_before = br.get_key()
    br.uniform(size=2, key=k)
    assert keys_equal(br.get_key(), br_before)


def test_get_set_key_and_seed_context():
    br.seed(0)
    saved = br.get_key()
    x = br.normal(size=3)
    br.set_key(saved)
    np.testing.assert_array_equal(br.normal(size=3), x)

    br.seed(1)
    outside = br.get_key()
    with br.seed_context(42):
        inside = br.normal(size=3)
    assert keys_equal(br.get_key(), outside)
    br.seed(42)
    np.testing.assert_array_equal(br.normal(size=3), inside)

    br.set_key(outside)
    with pytest.raises(RuntimeError):
        with br.seed_context(5):
            br.normal(size=2)
            raise RuntimeError('boom')
    assert keys_equal(br.get_key(), outside)
    assert br.default_rng() is br.DEFAULT
    assert isinstance(br.default_rng(3), br.RandomState)


# -- transforms thread the key like any written state -----------------------------------------

def test_jit_draws_new_numbers_each_call_and_advances_the_key():
    br.seed(10)

    @brainstate.transform.jit
    def noise():
        return br.normal(size=3)

    k0 = br.get_key()
    a = noise()
    k1 = br.get_key()
    b = noise()
    assert not keys_equal(k0, k1) and not keys_equal(k1, br.get_key())
    assert not np.array_equal(a, b)
    # The compiled draws equal the eager ones from the same seed.
    br.seed(10)
    np.testing.assert_allclose(a, br.normal(size=3), rtol=1e-6)
    np.testing.assert_allclose(b, br.normal(size=3), rtol=1e-6)


def test_jit_with_a_module_owned_random_state_and_several_draws():
    class Noisy(brainstate.Module):
        def __init__(self):
            super().__init__()
            self.rng = br.RandomState(0)
            self.count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

        def __call__(self, x):
            self.count.value = self.count.value + 1
            return x + self.rng.normal(size=x.shape), self.rng.uniform(size=x.shape)

    net = Noisy()
    step = brainstate.transform.jit(net)
    x = jnp.zeros(4)
    (a1, u1), (a2, u2) = step(x), step(x)
    assert not np.array_equal(a1, a2) and not np.array_equal(u1, u2)
    assert int(net.count.value) == 2
    ref = br.RandomState(0)
    np.testing.assert_allclose(a1, ref.normal(size=4), rtol=1e-6)
    np.testing.assert_allclose(u1, ref.uniform(size=4), rtol=1e-6)
    assert keys_equal(net.rng.value, ref.value) is False  # net drew twice as much
    ref.normal(size=4), ref.uniform(size=4)
    assert keys_equal(net.rng.value, ref.value)


def test_jit_keeps_keys_the_user_still_holds():
    # The key's old buffer is donated to the compiled call only when nobody else holds it.
    rng = br.RandomState(11)

    @brainstate.transform.jit
    def draw():
        return rng.random(size=2)

    draw()
    held = rng.value
    held_data = jax.random.key_data(rng.value)
    draw()
    draw()
    np.testing.assert_array_equal(jax.random.key_data(held), held_data)
    assert rng.normal(key=held).shape == ()


def test_ir_prints_key_states():
    @brainstate.transform.jit
    def noise():
        return br.normal(size=2)

    text = str(noise.ir())
    assert 'state_read @brainstate.random.DEFAULT' in text
    assert 'key<fry>[]' in text
    assert 'state_write @brainstate.random.DEFAULT' in text


def test_raw_jax_jit_is_explained():
    @jax.jit
    def noise():
        return br.normal(size=2)

    before = br.get_key()
    with pytest.raises(brainstate.TracerLeakError, match='brainstate.transform.jit'):
        noise()
    assert keys_equal(br.get_key(), before)


def test_loops_carry_the_key():
    # Each iteration draws from a new key, exactly the eager sequence.
    br.seed(20)
    looped = brainstate.transform.jit(
        lambda: brainstate.transform.for_loop(lambda i: br.normal(), jnp.arange(4)))()
    br.seed(20)
    eager = [br.normal() for _ in range(4)]
    np.testing.assert_allclose(looped, jnp.stack(eager), rtol=1e-6)


def test_grad_passes_the_key_through():
    w = brainstate.ParamState(jnp.ones(3))
    br.seed(21)

    def loss():
        return jnp.sum(w.value * br.normal(size=3))

    g = brainstate.transform.grad(loss, grad_states=w)()
    br.seed(21)
    np.testing.assert_allclose(jax.tree.leaves(g)[0], br.normal(size=3), rtol=1e-6)
