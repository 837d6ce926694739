"""The suite's own settings (tests/conftest.py): temp files stay in pytest's tmp directory."""

import os
import tempfile

import jax.numpy as jnp
import pytest

import brainstate


def test_a_failing_pass_leaves_its_reproducer_inside_pytests_tmp_dir(tmp_path_factory):
    def boom(graph):
        raise RuntimeError('pass bug')

    with pytest.raises(RuntimeError) as info:  # the pass's own error, with the reproducer
        brainstate.passes.PassManager([boom]).run(brainstate.ir.trace(jnp.sin, jnp.ones(2)))
    base = os.path.realpath(str(tmp_path_factory.getbasetemp()))
    path = os.path.realpath(info.value.reproducer)
    assert os.path.commonpath([base, path]) == base, path
    assert os.path.realpath(tempfile.gettempdir()).startswith(base)
    assert os.environ['TMPDIR'] == tempfile.gettempdir()


def test_hypothesis_keeps_its_files_out_of_the_working_directory():
    configuration = pytest.importorskip('hypothesis.configuration')
    # tests/conftest.py points Hypothesis at a folder of its own, removed when the run ends.
    where = os.path.realpath(str(configuration.storage_directory('constants').path))
    assert 'brainstate-tests-hypothesis-' in where, where
    assert not where.startswith(os.path.realpath(os.getcwd()))
