"""brainstate.random's key API: seeding, splitting, backups, clones, and drawing from threads."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
import brainstate.random as br


def data(key):
    return np.asarray(jax.random.key_data(key))


def test_get_key_data_and_set_key_round_trip():
    br.seed(5)
    raw = br.get_key_data()
    assert raw.shape == (2,) and raw.dtype == jnp.uint32
    np.testing.assert_array_equal(raw, data(br.get_key()))
    a = br.normal(size=3)
    br.set_key(raw)                       # legacy key data is wrapped, not reseeded
    np.testing.assert_array_equal(br.normal(size=3), a)
    br.seed(raw)                          # seeding with key data: the same key
    np.testing.assert_array_equal(br.get_key_data(), raw)


def test_seed_folds_large_ints_and_seeds_numpy():
    br.seed(2 ** 33 + 7)
    big = br.get_key_data()
    x = np.random.rand()
    br.seed(7)
    np.testing.assert_array_equal(big, br.get_key_data())
    assert np.random.rand() == x
    with pytest.raises(TypeError):
        br.seed('seven')
    with pytest.raises(TypeError):
        br.seed(np.array([1, 2, 3], np.uint32))


def test_split_key_with_backup_and_restore():
    br.seed(1)
    before = br.get_key_data()
    keys = br.split_key(3, backup=True)
    assert keys.shape == (3,)
    br.normal(size=2)
    br.restore_key()
    np.testing.assert_array_equal(br.get_key_data(), before)
    with pytest.raises(ValueError, match='not been backed up'):
        br.restore_key()
    with pytest.raises(ValueError):
        br.split_keys(0)
    with pytest.raises(ValueError):
        br.split_keys(2.5)


def test_self_assign_multi_keys():
    rng = br.RandomState(3)
    before = data(rng.value)
    rng.self_assign_multi_keys(4)
    assert rng.value.shape == (4,)
    np.testing.assert_array_equal(data(rng.value), data(jax.random.split(jax.random.key(3), 4)))
    rng.restore_key()
    np.testing.assert_array_equal(data(rng.value), before)
    with pytest.raises(TypeError, match='integer'):
        rng.self_assign_multi_keys(1.5)
    with pytest.raises(ValueError):
        rng.self_assign_multi_keys(0)
    with pytest.raises(ValueError):
        br.self_assign_multi_keys(-1)


def test_clone_rng_and_default_rng():
    br.seed(4)
    clone = br.clone_rng()
    assert isinstance(clone, br.RandomState) and clone is not br.DEFAULT
    # The clone starts from a key split off the global one and is independent afterwards.
    assert not np.array_equal(data(clone.value), br.get_key_data())
    assert br.clone_rng(clone=False) is br.DEFAULT
    np.testing.assert_array_equal(br.clone_rng(9).normal(size=3),
                                  br.RandomState(9).normal(size=3))
    assert br.default_rng() is br.DEFAULT


def test_seed_context_with_a_key_restores_jax_and_numpy():
    br.seed(2)
    np.random.seed(11)
    outside, np_state = br.get_key_data(), np.random.get_state()[1].copy()
    key = jax.random.key(42)
    with br.seed_context(key):
        inside = br.normal(size=3)
    np.testing.assert_array_equal(br.get_key_data(), outside)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    br.set_key(key)
    np.testing.assert_array_equal(br.normal(size=3), inside)
    with br.seed_context(None):
        a = br.rand(4)
    with br.seed_context(None):
        b = br.rand(4)
    assert not np.array_equal(a, b)


def test_backup_and_deleted_keys():
    rng = br.RandomState(6)
    rng.backup_key()
    with pytest.raises(ValueError, match='already backed up'):
        rng.backup_key()
    rng.restore_key()
    rng.value.delete()
    rng.check_if_deleted()                # a donated / deleted key is replaced by a fresh one
    assert rng.normal(size=2).shape == (2,)
    assert '6' in repr(br.RandomState(6))


def test_threads_drawing_from_the_global_state_get_distinct_numbers():
    """4 threads x 100 draws: the key's read-split-write is atomic, so no key is used twice."""
    br.seed(0)
    results, errors = [], []
    barrier = threading.Barrier(4)

    def worker():
        try:
            barrier.wait()
            results.extend(float(br.random()) for _ in range(100))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 400 and len(set(results)) == 400


def test_threads_splitting_one_state_never_share_a_key():
    rng = br.RandomState(1)
    keys = []
    lock = threading.Lock()

    def worker():
        for _ in range(50):
            k = tuple(data(rng.split_key()).tolist())
            with lock:
                keys.append(k)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 200


def test_vmap_gives_each_lane_its_own_numbers_and_advances_once():
    br.seed(12)
    before = br.get_key_data()
    out = brainstate.transform.vmap(lambda x: x + br.normal(size=3))(jnp.zeros((4, 3)))
    assert out.shape == (4, 3)
    assert len({tuple(np.asarray(row).round(6)) for row in out}) == 4
    assert not np.array_equal(br.get_key_data(), before)
    # Explicit keys under vmap: one lane per key.
    keys = br.split_keys(4)
    lanes = brainstate.transform.vmap(lambda k: br.normal(size=2, key=k))(keys)
    np.testing.assert_allclose(lanes[1], jax.random.normal(keys[1], (2,)), rtol=1e-6)


def test_jit_draws_with_the_composite_samplers_advance_the_key():
    rng = br.RandomState(13)

    def draw(r):
        return (r.zipf(2.0, size=3), r.wald(1.0, 1.0, size=3), r.vonmises(0.0, 1.0, size=3),
                r.multinomial(5, jnp.array([0.5, 0.5])), r.hypergeometric(4, 4, 3, size=2))

    step = brainstate.transform.jit(lambda: draw(rng))
    a, b = step(), step()
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))
    ref = br.RandomState(13)
    for x, y in zip(a, draw(ref)):
        np.testing.assert_allclose(x, y, rtol=1e-5)
    draw(ref)   # after two calls the key is where two eager rounds leave it
    np.testing.assert_array_equal(data(rng.value), data(ref.value))
