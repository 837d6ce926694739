"""Suite-wide test settings.

* Temporary files: every test runs with Python's default temp folder (``tempfile``, ``TMPDIR``)
  inside pytest's own tmp directory, and failing passes write their reproducers there too, so
  nothing a test leaves behind lands in the machine's /tmp. Hypothesis's files (it would make
  ``.hypothesis/`` in the current directory, at collection already) go to a folder of their
  own, removed when the run ends.
* ``@pytest.mark.slow``: exhaustive cases left out of the normal run (``-m "not slow"``, the
  default in pyproject.toml); CI runs them in a separate step (``-m slow``).
* XLA compiles without its backend optimizations (``--xla_backend_optimization_level=0``):
  most of the suite's time is XLA compiling small programs, and this makes the normal run
  ~35% faster. What brainstate produces (the jaxpr) does not depend on it; results compared
  bit for bit are compiled under the same setting. ``BRAINSTATE_TEST_XLA_OPT=1`` keeps XLA's
  default: CI's slow step and its newest-JAX run use it, so the suite is also checked with
  every program fully optimized.
"""

import os
import shutil
import tempfile

import pytest

if os.environ.get('BRAINSTATE_TEST_XLA_OPT') != '1' and \
        'xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
    # before any JAX backend starts (its flags are read then); subprocesses inherit it
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               ' --xla_backend_optimization_level=0').strip()


_HYPOTHESIS_HOME = []


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: an exhaustive case, left out of the normal run (run with -m slow)')
    try:
        from hypothesis import configuration as hypothesis_configuration
    except ImportError:  # hypothesis is a test extra; its tests skip without it
        return
    folder = tempfile.mkdtemp(prefix='brainstate-tests-hypothesis-')
    _HYPOTHESIS_HOME.append(folder)
    hypothesis_configuration.set_hypothesis_home_dir(folder)


def pytest_unconfigure(config):
    while _HYPOTHESIS_HOME:
        shutil.rmtree(_HYPOTHESIS_HOME.pop(), ignore_errors=True)


@pytest.fixture(autouse=True, scope='session')
def _temp_files_stay_in_pytests_tmp_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('tempfile'))
    saved_dir, saved_env = tempfile.tempdir, os.environ.get('TMPDIR')
    tempfile.tempdir = folder
    os.environ['TMPDIR'] = folder
    yield folder
    tempfile.tempdir = saved_dir
    if saved_env is None:
        os.environ.pop('TMPDIR', None)
    else:
        os.environ['TMPDIR'] = saved_env


@pytest.fixture(autouse=True, scope='session')
def _reproducers_go_to_a_pytest_temporary_folder(tmp_path_factory):
    """A pass that fails on purpose writes a reproducer; keep them out of the system's
    temporary folder (pytest cleans its own)."""
    from brainstate.passes import _manager
    previous = _manager.DEFAULTS['reproducer_dir']
    _manager.DEFAULTS['reproducer_dir'] = str(tmp_path_factory.mktemp('reproducers'))
    yield
    _manager.DEFAULTS['reproducer_dir'] = previous


@pytest.fixture
def restore_debug_flag():
    """Put back brainstate's record of whether JAX's NaN/Inf checks were ever switched on (a
    test switching them on would otherwise make every later cached call ask per call)."""
    from brainstate import _compat
    before = _compat.DEBUG_CHECKS_SEEN[0]
    yield
    _compat.DEBUG_CHECKS_SEEN[0] = before


@pytest.fixture
def armed_doubling_step(restore_debug_flag):
    """``(s, step)``: a jitted step doubling a donated state, called three times (s == 8,
    the entry armed), with JAX's debug checks never seen before (restored afterwards)."""
    import jax.numpy as jnp

    import brainstate
    from brainstate import _compat
    _compat.DEBUG_CHECKS_SEEN[0] = False
    s = brainstate.ShortTermState(jnp.ones(3))

    @brainstate.transform.jit
    def step(x):
        s.value = s.value * x
        return s.value.sum()

    for _ in range(3):
        step(jnp.full(3, 2.))
    return s, step


@pytest.fixture
def restore_pipeline():
    """Put back the default pass pipeline and the pass options a test changes."""
    from brainstate import passes
    saved = passes.get_default_pipeline()
    yield
    passes.set_default_pipeline(saved)
    passes.set_pass_options(print_ir=None, verify=False)


@pytest.fixture
def counted_step():
    """A maker of ``(step, w, traces)``: a jitted step adding its input to ``w`` (ones(3)),
    with a dead computation the default pipeline removes (``sin``), and the list it appends
    to at each trace."""
    import jax.numpy as jnp

    import brainstate

    def make():
        w = brainstate.ParamState(jnp.ones(3))
        traces = []

        @brainstate.transform.jit
        def step(x):
            traces.append(1)
            unused = jnp.sin(x) * 3.  # dead: dce removes it  # noqa: F841
            w.value = w.value + x
            return w.value.sum()

        return step, w, traces
    return make
