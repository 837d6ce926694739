"""Seeing the IR: text, DOT/SVG pictures, the per-state table, diffs, and the brainstate-ir tool."""

import os
import shutil
import stat

import jax.numpy as jnp
import pytest

import brainstate
from brainstate import ir, passes
from brainstate._cli import ir_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.v = brainstate.HiddenState(jnp.zeros(3))
        self.w = brainstate.ParamState(jnp.ones((3, 3)))


def traced_with_loop():
    net = Net()

    def step(x):
        def body(i):
            net.v.value = net.v.value @ net.w.value + x * i
        brainstate.transform.for_loop(body, jnp.arange(3.0))
        return net.v.value.sum()

    return net, ir.trace(step, jnp.ones(3))


def test_printed_regions_are_nested():
    _, graph = traced_with_loop()
    lines = graph.format().splitlines()
    region_line = next(i for i, line in enumerate(lines) if ' = scan[' in line or
                       line.strip().startswith('scan['))
    assert lines[region_line].endswith('{')
    assert lines[region_line + 1].startswith('    body(')
    assert any(line.startswith('      ') and 'state_read @Net.v' in line for line in lines)


def test_to_dot_draws_states_apart_and_regions_as_clusters():
    _, graph = traced_with_loop()
    dot = graph.to_dot()
    assert dot.startswith('digraph "step" {') and dot.rstrip().endswith('}')
    assert 'subgraph cluster_' in dot
    assert dot.count('fillcolor="#cfe5ff"') == 3   # two reads in the loop body, one after
    assert dot.count('fillcolor="#ffd9cc"') == 1   # the write
    assert '@Net.v' in dot and '@Net.w' in dot
    assert '{rank=same;' in dot


def _fake_dot(tmp_path):
    script = tmp_path / 'dot'
    script.write_text('#!/bin/sh\ncat > /dev/null\necho "<svg>fake</svg>"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(tmp_path)


def test_to_svg_runs_graphviz_and_writes_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', _fake_dot(tmp_path) + os.pathsep + os.environ['PATH'])
    _, graph = traced_with_loop()
    out = tmp_path / 'g.svg'
    assert graph.to_svg(str(out)).strip() == '<svg>fake</svg>'
    assert out.read_text().strip() == '<svg>fake</svg>'


def test_to_svg_without_graphviz_says_how_to_install(monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    _, graph = traced_with_loop()
    with pytest.raises(brainstate.BrainStateError, match='apt-get install graphviz'):
        graph.to_svg()


@pytest.mark.skipif(shutil.which('dot') is None, reason='Graphviz is an optional dependency')
def test_to_svg_with_real_graphviz():
    _, graph = traced_with_loop()
    assert '<svg' in graph.to_svg()


def test_state_table_lists_reads_and_writes_with_source_lines():
    _, graph = traced_with_loop()
    table = graph.state_table().splitlines()
    assert table[0].split()[:5] == ['state', 'class', 'type', 'reads', 'writes']
    row_v = next(line for line in table if line.startswith('Net.v'))
    row_w = next(line for line in table if line.startswith('Net.w'))
    assert 'HiddenState' in row_v and 'test_ir_views.py' in row_v
    assert row_w.split()[3:5] == ['1', '0']


def test_diff_before_and_after_a_pass():
    _, graph = traced_with_loop()
    before = graph.copy()
    passes.hoist_states(graph)
    text = before.diff(graph)
    assert text.startswith('--- step (before)')
    assert any(line.startswith('-') and 'state_read @Net.v' in line for line in text.splitlines())
    assert graph.diff(graph) == ''


def test_parse_type():
    assert ir_tool.parse_type('f32[128,784]').shape == (128, 784)
    assert ir_tool.parse_type('i32[]').shape == ()
    with pytest.raises(Exception, match='dtype\\[shape\\]'):
        ir_tool.parse_type('float[3]')


def test_command_line_tool_on_the_quickstart(capsys):
    assert ir_tool.main([os.path.join(ROOT, 'examples', 'quickstart.py') + ':step',
                         '--args', 'f32[3]', '--table']) == 0
    out = capsys.readouterr().out
    assert '// ===== step: as traced =====' in out
    assert '// ===== after hoist-states' in out
    assert 'state_read @RNN.h' in out and '// ===== states =====' in out


def test_command_line_tool_writes_dot_and_diffs(tmp_path, capsys):
    source = tmp_path / 'model.py'
    source.write_text(
        'import jax.numpy as jnp\nimport brainstate\n'
        'acc = brainstate.State(jnp.zeros(()), name="acc")\n'
        'def step(x):\n'
        '    acc.value = x * 2\n'
        '    acc.value = x + jnp.sin(x) + jnp.sin(x)\n'
        '    return acc.value\n')
    dot_file = tmp_path / 'step.dot'
    code = ir_tool.main([f'{source}:step', '--args', 'f32[]', '--diff', '--show', 'each',
                         '--passes', 'dead-writes,cse,hoist-states', '--dot', str(dot_file)])
    out = capsys.readouterr().out
    assert code == 0
    assert '// ===== after dead-writes' in out and '1 writes removed' in out
    assert '// ===== after cse' in out and '1 nodes merged' in out
    assert dot_file.read_text().startswith('digraph')


def test_command_line_tool_runs_the_one_pipeline_and_show_final(tmp_path, capsys):
    source = tmp_path / 'model.py'
    source.write_text(
        'import jax.numpy as jnp\nimport brainstate\n'
        'acc = brainstate.State(jnp.zeros(()), name="acc")\n'
        'def step(x):\n'
        '    acc.value = acc.value + x\n'
        '    unused = jnp.cos(x)\n'
        '    return acc.value\n')
    assert ir_tool.main([f'{source}:step', '--args', 'f32[]', '--passes', 'dce',
                         '--show', 'final']) == 0
    out = capsys.readouterr().out
    assert 'as traced' not in out and 'after dce' not in out
    assert out.count('// =====') == 1 and '// ===== final =====' in out
    assert 'cos' not in out  # dce ran, then hoist-states (what lowering needs), then lowering
    assert ir_tool.main([f'{source}:step', '--args', 'f32[]', '--passes', 'dce',
                         '--show', 'each']) == 0
    out = capsys.readouterr().out
    assert '// ===== after dce' in out and '// ===== after hoist-states' in out


def test_console_script_is_declared():
    text = open(os.path.join(ROOT, 'pyproject.toml')).read()
    assert 'brainstate-ir = "brainstate_cli:main"' in text
    assert 'py-modules = ["brainstate_cli"]' in text
