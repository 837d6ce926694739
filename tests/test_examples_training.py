"""The training examples learn (scikit-learn, for the bundled digits, is in the test extra)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'examples'))


@pytest.mark.slow  # end to end: trains to accuracy (CI's slow step)
def test_five_line_program_learns_digits():
    import train_mlp_digits
    assert train_mlp_digits.main(epochs=4) > 0.9


@pytest.mark.slow
def test_optax_optimizer_learns_digits():
    import train_mlp_digits_optax
    assert train_mlp_digits_optax.main(epochs=3) > 0.9
