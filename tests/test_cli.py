"""The brainstate-ir command line: a fast --help, what --show and --table print."""

import os
import subprocess
import sys
import textwrap

import pytest

import brainstate_cli
from brainstate._cli import ir_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOOP_MODEL = textwrap.dedent('''\
    import jax.numpy as jnp
    import brainstate

    class LIF(brainstate.Module):
        def __init__(self, n):
            super().__init__()
            self.V = brainstate.HiddenState(jnp.zeros(n))
            self.W = brainstate.ParamState(jnp.ones(n))

        def update(self, current):
            V = self.V.value + 0.1 * (current * self.W.value - self.V.value)
            self.V.value = jnp.where(V > 1.0, 0.0, V)
            return V

    net = LIF(4)

    def simulate(currents):
        return brainstate.transform.for_loop(net.update, currents)
    ''')


def _run_in_fresh_python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize('launcher', ['import brainstate_cli as m',
                                      'import runpy; m = runpy.run_path("tools/brainstate_ir.py")'])
def test_help_imports_neither_jax_nor_brainstate(launcher):
    # Timing a subprocess is at the mercy of the machine's load; what makes --help slow is
    # importing JAX (seconds), so the test checks that it is not imported.
    out = _run_in_fresh_python(
        f'import sys, contextlib, io\n{launcher}\n'
        'main = m["main"] if isinstance(m, dict) else m.main\n'
        'buffer = io.StringIO()\n'
        'with contextlib.redirect_stdout(buffer):\n'
        '    try:\n'
        '        main(["--help"])\n'
        '    except SystemExit as e:\n'
        '        assert e.code == 0, e.code\n'
        'assert "usage: brainstate-ir" in buffer.getvalue(), buffer.getvalue()\n'
        'print(sorted(k for k in sys.modules if k.split(".")[0] in ("jax", "brainstate", '
        '"numpy")))\n')
    assert out.strip() == '[]', out


def test_a_bad_argument_type_is_reported_without_importing_jax():
    out = _run_in_fresh_python(
        'import sys, contextlib, io\nimport brainstate_cli\n'
        'err = io.StringIO()\n'
        'with contextlib.redirect_stderr(err):\n'
        '    try:\n'
        '        brainstate_cli.main(["m.py:f", "--args", "float[3]"])\n'
        '    except SystemExit as e:\n'
        '        assert e.code == 2\n'
        'assert "dtype[shape]" in err.getvalue(), err.getvalue()\n'
        'print("jax" in sys.modules)\n')
    assert out.strip() == 'False'


def test_launcher_uses_the_imported_package_once_brainstate_is_loaded():
    assert brainstate_cli._ir_tool() is ir_tool


@pytest.fixture
def loop_model(tmp_path):
    path = tmp_path / 'lif.py'
    path.write_text(LOOP_MODEL)
    return str(path)


def test_show_final_prints_only_the_final_ir(loop_model, capsys):
    assert ir_tool.main([f'{loop_model}:simulate', '--args', 'f32[5,4]', '--show', 'final']) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith('// =====')]
    assert headers == ['// ===== final =====']
    assert out.count('graph simulate(') == 1
    # The final IR is the canonical one: state ops only at the edges, the loop pure.
    assert 'num_carry=1' in out and 'num_consts=1' in out


def test_table_shows_source_lines_of_reads_and_writes_inside_loop_bodies(loop_model, capsys):
    assert ir_tool.main([f'{loop_model}:simulate', '--args', 'f32[5,4]', '--show', 'final',
                         '--table']) == 0
    table = capsys.readouterr().out.split('// ===== states =====\n')[1]
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert set(rows) == {'LIF.V', 'LIF.W'}
    assert '?' not in table
    # LIF.V: read at line 11 (first read in update), written at line 12; LIF.W read at line 11.
    assert 'lif.py:11' in rows['LIF.V'] and 'lif.py:12' in rows['LIF.V']
    assert 'lif.py:11' in rows['LIF.W'] and rows['LIF.W'].rstrip().endswith('-')


def test_show_changed_prints_the_traced_ir_and_each_changing_pass(loop_model, capsys):
    assert ir_tool.main([f'{loop_model}:simulate', '--args', 'f32[5,4]']) == 0
    out = capsys.readouterr().out
    assert out.startswith('// ===== simulate: as traced =====')
    assert '// ===== after hoist-states' in out and '// ===== final' not in out


def test_subcommands_are_dispatched_by_their_first_argument(monkeypatch):
    seen = []
    monkeypatch.setitem(ir_tool.SUBCOMMANDS, 'echo', lambda argv: seen.append(argv) or 7)
    assert ir_tool.main(['echo', 'a', '--b']) == 7
    assert seen == [['a', '--b']]
    assert 'brainstate-ir echo --help' in ir_tool.build_parser().format_help()
