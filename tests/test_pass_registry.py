"""The pass registry and how a pass's own errors reach the user."""

import os

import jax.numpy as jnp
import pytest

import brainstate
from brainstate import ir, passes


def test_registering_a_taken_name_is_an_error_unless_replace():
    builtin = passes.get_pass('dce')

    with pytest.raises(brainstate.BrainStateError, match=r"A pass named 'dce' is already "
                                                         r"registered.*replace=True"):
        @passes.register('dce')
        def my_dce(graph):
            """Not the real dce."""

    assert type(passes.get_pass('dce')) is type(builtin)
    assert passes.get_pass('dce').function is builtin.function


def test_replace_true_replaces_and_rerunning_a_definition_is_fine():
    def define(summary):
        @passes.register('registry-test-pass', replace=summary == 'second')
        def registry_test_pass(graph):
            """First."""
        if summary == 'second':
            registry_test_pass.__doc__ = 'Second.'
        return registry_test_pass

    define('first')
    define('first')  # the same definition run again (a reloaded module): no complaint

    @passes.register('registry-test-pass', replace=True)
    def another(graph, stats):
        """Count nothing, but differently."""

    assert passes.registered_passes()['registry-test-pass'] == 'Count nothing, but differently.'


def test_summaries_are_whole_sentences():
    @passes.register('registry-lowercase-summary')
    def lowercase(graph):
        """strip the things
        that are not needed

        More text.
        """

    summaries = passes.registered_passes()
    assert summaries['registry-lowercase-summary'] == 'Strip the things that are not needed.'
    for name, summary in summaries.items():
        assert summary[0].isupper() and summary.endswith('.'), (name, summary)


def test_a_type_error_inside_a_pass_is_reported_as_itself(tmp_path):
    def buggy(graph, stats):
        len(5)  # a TypeError of the pass's own making

    class BuggyObject:
        def run(self, graph):
            raise TypeError('object pass bug')

    graph = ir.trace(lambda x: x + 1, jnp.ones(3))
    with pytest.raises(TypeError, match=r"object of type 'int' has no len\(\)") as info:
        passes.PassManager([buggy], reproducer_dir=str(tmp_path)).run(graph)
    assert info.value.pass_name == 'buggy'
    assert os.path.dirname(info.value.reproducer) == str(tmp_path)

    passes.register('registry-buggy-object')(BuggyObject)
    with pytest.raises(TypeError, match='object pass bug'):
        passes.PassManager('registry-buggy-object', reproducer_dir=str(tmp_path)).run(graph)


def test_a_pass_with_a_wrong_signature_is_refused_at_registration():
    with pytest.raises(TypeError, match=r"must accept \(graph\) or \(graph, stats\)"):
        @passes.register('registry-three-args')
        def three(graph, stats, extra):
            pass


def test_users_mistakes_found_by_a_pass_carry_the_name_but_no_reproducer(tmp_path):
    def complain(graph):
        raise brainstate.BatchAxisError('State s is shared but written with a batch axis.')

    with pytest.raises(brainstate.BatchAxisError) as info:
        passes.PassManager([complain], reproducer_dir=str(tmp_path)).run(
            ir.trace(lambda x: x, 1.0))
    assert info.value.pass_name == 'complain'
    assert not hasattr(info.value, 'reproducer') and not os.listdir(tmp_path)


def test_no_reproducer_is_written_when_every_pass_succeeds(tmp_path):
    graph = ir.trace(lambda x: jnp.sin(x) * 2, jnp.ones(3))
    passes.PassManager(passes.DEFAULT_PIPELINE, reproducer_dir=str(tmp_path)).run(graph)
    assert os.listdir(tmp_path) == []


def test_reproducer_folder_option(tmp_path, monkeypatch):
    monkeypatch.setitem(passes._manager.DEFAULTS, 'reproducer_dir', None)
    passes.set_pass_options(reproducer_dir=str(tmp_path / 'here'))

    def boom(graph):
        raise RuntimeError('boom')

    with pytest.raises(RuntimeError) as info:
        passes.PassManager([boom]).run(ir.trace(lambda x: x, 1.0))
    assert os.path.dirname(info.value.reproducer) == str(tmp_path / 'here')


def test_a_pipeline_string_runs_the_pass_registered_under_each_name_now():
    # Parsed pipeline strings are kept (tracing parses the default pipeline every time); a
    # registration must not leave a kept pipeline running the pass it replaced.
    ran = []

    @passes.register('registry-cache-pass', replace=True)
    def first(graph):
        """Records that the first version ran."""
        ran.append('first')

    g = ir.trace(lambda x: x + 1, jnp.ones(2))
    passes.PassManager('registry-cache-pass,dce').run(g.copy())
    passes.PassManager('registry-cache-pass,dce').run(g.copy())

    @passes.register('registry-cache-pass', replace=True)
    def second(graph):
        """Records that the second version ran."""
        ran.append('second')

    passes.PassManager('registry-cache-pass,dce').run(g.copy())
    assert ran == ['first', 'first', 'second']


def test_a_class_pass_gets_a_fresh_instance_per_pipeline():
    # A class-based pass may keep state in its instance: pipelines never share one.
    @passes.register('registry-class-pass', replace=True)
    class Counting(passes.Pass):
        """Counts its own runs."""

        def __init__(self):
            self.runs = 0

        def run(self, graph, stats):
            self.runs += 1

    a = passes.PassManager('registry-class-pass').passes[0]
    b = passes.PassManager('registry-class-pass').passes[0]
    assert a is not b
    g = ir.trace(lambda x: x + 1, jnp.ones(2))
    a.run(g, passes.PassStatistics())
    assert (a.runs, b.runs) == (1, 0)
