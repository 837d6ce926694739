"""The suite's own settings (tests/conftest.py): temp files stay in pytest's tmp directory."""

import os
import sys
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
    # The folder the run removes when it ends, from tests/conftest.py itself (not the
    # conftest.py of a subfolder, which may be the one importable as `conftest`).
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'conftest.py')
    conftests = [m for m in list(sys.modules.values())
                 if os.path.abspath(getattr(m, '__file__', None) or '') == root]
    assert conftests, 'tests/conftest.py is not loaded'
    _HYPOTHESIS_HOME = conftests[0]._HYPOTHESIS_HOME
    where = os.path.realpath(str(configuration.storage_directory('constants').path))
    assert _HYPOTHESIS_HOME and where.startswith(os.path.realpath(_HYPOTHESIS_HOME[0]))
    assert not where.startswith(os.path.realpath(os.getcwd()))
