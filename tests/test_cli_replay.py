"""`brainstate-ir replay FILE` runs a pass reproducer again."""

import textwrap

import jax.numpy as jnp
import pytest

import brainstate
from brainstate import ir, passes
from brainstate._cli import ir_tool
from brainstate._cli.replay import _import, read_reproducer

PASS_FILE = textwrap.dedent('''
    import brainstate

    @brainstate.passes.register('replay-test-widen')
    def replay_test_widen(graph):
        """Deliberately wrong: use the f32[5,8] input where the f32[] sum was used."""
        for node in graph.walk():
            if node.name == 'reduce_sum':
                total = node.outputs[0]
                for user in list(total.users):
                    user.replace_input(total, graph.inputs[0])
''')


@pytest.fixture
def reproducer(tmp_path):
    path = tmp_path / 'replay_test_passes.py'
    path.write_text(PASS_FILE)
    _import(str(path))
    s = brainstate.State(jnp.zeros(()), name='total')

    def step(x):
        s.value = s.value + jnp.sum(jnp.sin(x) * 2.0)
        return x

    graph = ir.trace(step, jnp.ones((5, 8)))
    manager = passes.PassManager('cse,replay-test-widen,dce', reproducer_dir=str(tmp_path))
    with pytest.raises(passes.PassFailure) as info:
        manager.run(graph)
    return info.value.reproducer, str(path)


def test_the_reproducer_names_the_command_and_holds_the_exact_ir(reproducer):
    path, _ = reproducer
    text = open(path).read()
    assert f'// replay with: brainstate-ir replay {path}' in text
    pipeline, ir_text = read_reproducer(text)
    assert pipeline == 'replay-test-widen,dce'
    assert ir.parse(ir_text).verify() is not None  # the IR before the pass was valid


def test_replay_reproduces_the_failure(reproducer, capsys):
    path, pass_file = reproducer
    assert ir_tool.main(['replay', path, '--import', pass_file]) == 1
    err = capsys.readouterr().err
    assert 'the failure reproduced' in err
    assert "Pass 'replay-test-widen' failed: it left a graph the verifier rejects" in err
    assert 'but add of these operands gives (f32[5,8])' in err


def test_replay_with_another_pipeline_runs_clean(reproducer, capsys):
    path, _ = reproducer
    assert ir_tool.main(['replay', path, '--passes', 'cse,dce,hoist-states']) == 0
    out = capsys.readouterr().out
    assert 'state_write @total' in out and 'did not reproduce' in out
