"""The nn examples run (reduced sizes) and give the promised results."""

import os
import sys

import numpy as np
import pytest

import brainstate

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'examples'))


def test_ei_network_matches_pure_jax(tmp_path):
    import ei_network
    raster = tmp_path / 'raster.png'
    rates, reference, spikes, ref_spikes = ei_network.main(
        n_exc=40, n_inh=10, duration=30.0, raster=str(raster))
    assert spikes.sum() > 0
    np.testing.assert_allclose(rates, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(spikes, ref_spikes)
    assert brainstate.environ.get_dt() == 0.1
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert raster.exists()


def test_cnn_trains():
    # the normal run: a narrower CNN for two epochs is well past chance (10 %)
    import cnn_digits
    assert cnn_digits.main(epochs=2, channels=(8, 16), verbose=False) >= 0.75


@pytest.mark.slow  # end to end: trains to the promised accuracy (CI's slow step)
def test_cnn_learns_digits():
    import cnn_digits
    assert cnn_digits.main(epochs=5, verbose=False) >= 0.97
