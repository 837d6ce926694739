"""Shared test settings."""

import pytest


@pytest.fixture(autouse=True, scope='session')
def _reproducers_go_to_a_pytest_temporary_folder(tmp_path_factory):
    """A pass that fails on purpose writes a reproducer; keep them out of the system's
    temporary folder (pytest cleans its own)."""
    from brainstate.passes import _manager
    previous = _manager.DEFAULTS['reproducer_dir']
    _manager.DEFAULTS['reproducer_dir'] = str(tmp_path_factory.mktemp('reproducers'))
    yield
    _manager.DEFAULTS['reproducer_dir'] = previous
