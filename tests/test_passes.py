"""The pass manager and the built-in passes, on hand-built and traced graphs."""

import io
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import ir, passes


def body_lines(graph):
    """The graph's text without the header and closing brace, comments removed."""
    return [line.split('    #')[0].strip() for line in graph.format().splitlines()[1:-1]]


# -- the manager -------------------------------------------------------------------------------

def test_pipeline_string_prints_back():
    pm = passes.PassManager('hoist-states,dead-writes,dce,cse')
    assert str(pm) == 'hoist-states,dead-writes,dce,cse'
    assert str(passes.PassManager(['dce', passes.get_pass('cse')])) == 'dce,cse'


def test_registry_lists_passes_with_summaries():
    names = passes.registered_passes()
    for name in ('hoist-states', 'dead-writes', 'dce', 'cse', 'fold-constants',
                 'read-only-states', 'donation'):
        assert name in names and names[name]


def test_unknown_pass_is_explained():
    with pytest.raises(brainstate.BrainStateError, match="No pass named 'nope'.*register"):
        passes.PassManager('dce,nope')


def test_statistics_timing_and_report():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f():
        s.value = 1.0
        s.value = 2.0
        s.value = s.value + 1

    graph = ir.trace(f)
    pm = passes.PassManager('dead-writes,hoist-states,dce')
    pm.run(graph)
    stats = pm.statistics()
    assert stats['dead-writes']['writes removed'] == 1
    assert all(r.seconds >= 0 for r in pm.records)
    report = pm.report()
    assert 'dead-writes' in report and '1 writes removed' in report and 'total' in report


def test_print_ir_only_when_changed():
    s = brainstate.State(jnp.zeros(()), name='s')
    graph = ir.trace(lambda: s.value + s.value)
    out = io.StringIO()
    passes.PassManager('cse,hoist-states', print_ir='changed', stream=out).run(graph)
    text = out.getvalue()
    assert 'IR after hoist-states' in text and 'IR after cse' not in text


@passes.register('break-ssa')
def break_ssa(graph):
    """Move the last compute node to the front (a deliberately broken pass)."""
    compute = [n for n in graph if n.kind == 'primitive']
    graph.move_to_entry(compute[-1])


def test_verify_after_each_pass_and_reproducer(tmp_path):
    graph = ir.trace(lambda x: jnp.sin(x) * 2, jnp.ones(3))
    pm = passes.PassManager('cse,break-ssa,dce', reproducer_dir=str(tmp_path))
    with pytest.raises(passes.PassFailure, match="Pass 'break-ssa' failed") as info:
        pm.run(graph)
    path = info.value.reproducer
    assert os.path.dirname(path) == str(tmp_path)
    text = open(path).read()
    assert '// pipeline: cse,break-ssa,dce' in text
    assert 'replay: break-ssa,dce' in text
    assert '// below: the IR before the failing pass' in text
    ir_lines = text[text.index('graph <lambda>'):].splitlines()
    # As break-ssa received it: sin, then mul (the pass had moved mul to the front).
    # (the exact text form, which brainstate.ir.parse reads back: every param printed)
    assert ' = sin[' in ir_lines[1] and ' = mul[' in ir_lines[2]


def test_reproducer_without_capture_holds_the_ir_as_left(tmp_path):
    graph = ir.trace(lambda x: jnp.sin(x) * 2, jnp.ones(3))
    pm = passes.PassManager('break-ssa', reproducer_dir=str(tmp_path), capture_reproducer=False)
    with pytest.raises(passes.PassFailure) as info:
        pm.run(graph)
    text = open(info.value.reproducer).read()
    assert 'as the failing pass left it' in text
    ir_lines = text[text.index('graph <lambda>'):].splitlines()
    assert ' = mul[' in ir_lines[1]


def test_register_a_class_pass_and_use_it_in_jit():
    seen = []

    @passes.register('count-state-ops')
    class CountStateOps(passes.Pass):
        """Count state reads and writes (an analysis)."""

        def run(self, graph, stats):
            stats['state ops'] += sum(n.is_state_op for n in graph.walk())
            seen.append(stats['state ops'])

    s = brainstate.State(jnp.zeros(()))

    @brainstate.transform.jit(passes='count-state-ops,hoist-states')
    def f():
        s.value = s.value + 1

    f()
    assert seen == [2] and float(s.value) == 1.0
    assert passes.get_pass('count-state-ops').summary.startswith('Count state reads')


# -- dead-writes -------------------------------------------------------------------------------

def test_dead_writes_overwritten_before_read():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f(x):
        s.value = x
        s.value = x * 2
        return x

    graph = passes.eliminate_dead_writes(ir.trace(f, 1.0))
    writes = graph.find_nodes('state_write')
    assert len(writes) == 1 and writes[0].inputs[0].producer.name == 'mul'


def test_dead_writes_keeps_a_write_that_is_read():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f(x):
        s.value = x
        y = s.value
        s.value = x * 2
        return y

    graph = passes.eliminate_dead_writes(ir.trace(f, 1.0))
    assert len(graph.find_nodes('state_write')) == 2


def test_dead_writes_write_of_the_value_just_read():
    s = brainstate.State(jnp.zeros(3), name='s')
    graph = ir.trace(lambda: setattr(s, 'value', s.value))
    passes.eliminate_dead_writes(graph)
    assert graph.find_nodes('state_write') == []


def test_dead_writes_a_region_touching_the_state_observes_the_write():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f():
        s.value = 1.0

        def body(i):
            s.value = s.value + i

        brainstate.transform.for_loop(body, jnp.arange(3.0))
        s.value = s.value * 2

    graph = passes.eliminate_dead_writes(ir.trace(f))
    assert len(graph.find_nodes('state_write', recursive=False)) == 2


def test_dead_writes_inside_region_bodies():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f():
        def body(i):
            s.value = i
            s.value = i * 3

        brainstate.transform.for_loop(body, jnp.arange(3.0))

    graph = ir.trace(f)
    stats = passes.PassStatistics()
    passes.eliminate_dead_writes(graph, stats)
    assert stats['writes removed'] == 1
    region = graph.find_nodes('region')[0]
    assert len(region.subgraphs[0].find_nodes('state_write')) == 1


def test_dead_writes_never_removes_the_last_write():
    s = brainstate.State(jnp.zeros(()), name='s')
    graph = passes.eliminate_dead_writes(ir.trace(lambda x: setattr(s, 'value', x), 1.0))
    assert len(graph.find_nodes('state_write')) == 1


# -- dce, cse, fold-constants ----------------------------------------------------------------

def test_dce_removes_unused_pure_nodes_never_writes():
    s = brainstate.State(jnp.zeros(3), name='s')

    def f(x):
        unused = jnp.sin(x) * 3
        s.value = jnp.cos(x)
        _ = s.value
        return x + 1

    graph = ir.trace(f, jnp.ones(3))
    stats = passes.PassStatistics()
    passes.dead_code_elimination(graph, stats)
    names = [n.name for n in graph if n.kind != 'input']
    assert names == ['cos', 'state_write', 'add', 'output']
    assert stats['nodes removed'] == 3  # sin, mul, the unused read


def test_dce_keeps_effects():
    def f(x):
        jax.debug.print('x = {}', x)
        return x

    graph = passes.dead_code_elimination(ir.trace(f, 1.0))
    assert graph.find_nodes(name='debug_print') or graph.find_nodes(name='debug_callback')


def test_cse_merges_identical_pure_operations():
    def f(x):
        return jnp.sin(x) + jnp.sin(x)

    graph = ir.trace(f, jnp.ones(2))
    stats = passes.PassStatistics()
    passes.common_subexpression_elimination(graph, stats)
    assert stats['nodes merged'] == 1
    add = graph.find_nodes(name='add')[0]
    assert add.inputs[0] is add.inputs[1]


def test_cse_keeps_different_params_apart():
    graph = ir.trace(lambda x: x.sum(0) + x.sum(1), jnp.ones((2, 2)))
    passes.common_subexpression_elimination(graph)
    assert len(graph.find_nodes(name='reduce_sum')) == 2


def test_literals_are_equal_when_their_constants_are():
    f32 = jax.core.ShapedArray((), jnp.float32)
    i32 = jax.core.ShapedArray((), jnp.int32)
    zero, also_zero = ir.Literal(np.float32(0.0), f32), ir.Literal(0.0, f32)
    assert zero == also_zero and hash(zero) == hash(also_zero)
    assert zero != ir.Literal(np.float32(-0.0), f32)   # different bits
    assert zero != ir.Literal(np.int32(0), i32)        # different dtype
    nan = ir.Literal(np.float32('nan'), f32)
    assert nan == ir.Literal(np.float32('nan'), f32)    # the same bits
    g = ir.Graph('g')
    x = g.add_input(f32)
    assert zero != x and x != zero and x in [zero, x] and [zero, x].index(x) == 1


def test_cse_merges_operations_on_equal_literals_only():
    f32 = jax.core.ShapedArray((), jnp.float32)
    g = ir.Graph('literals')
    x = g.add_input(f32)
    results = []
    for constant in (np.float32(2.0), 2.0, np.float32(-0.0), np.float32(0.0)):
        node = g.create_node('primitive', op=jax.lax.mul_p,
                             inputs=[x, ir.Literal(constant, f32)], output_avals=[f32])
        results.append(node.outputs[0])
    g.set_outputs(results)
    stats = passes.PassStatistics()
    passes.common_subexpression_elimination(g, stats)
    assert stats['nodes merged'] == 1   # x * 2.0 twice; x * -0.0 and x * 0.0 stay apart
    assert body_lines(g) == ['%1:f32[] = mul %0 2.0:f32[]', '%2:f32[] = mul %0 -0.0:f32[]',
                             '%3:f32[] = mul %0 0.0:f32[]', 'return %1 %1 %2 %3']


def test_fold_constants_on_a_hand_built_graph():
    aval = jax.core.ShapedArray((), jnp.float32)
    g = ir.Graph('folding')
    x = g.add_input(aval)
    one = ir.Literal(np.float32(1.0), aval)
    two = ir.Literal(np.float32(2.0), aval)
    c = g.create_node('primitive', op=jax.lax.add_p, inputs=[one, two], output_avals=[aval])
    y = g.create_node('primitive', op=jax.lax.mul_p, inputs=[x, c.outputs[0]],
                      output_avals=[aval])
    g.set_outputs([y.outputs[0]])
    stats = passes.PassStatistics()
    passes.fold_constants(g, stats)
    assert stats['operations folded'] == 1
    assert body_lines(g) == ['%1:f32[] = mul %0 3.0:f32[]', 'return %1']


def test_analyses_are_recorded_in_meta_and_printed():
    w = brainstate.ParamState(jnp.ones(3), name='w')
    h = brainstate.HiddenState(jnp.zeros(3), name='h')

    def f(x):
        h.value = h.value * 0.5 + x * w.value

    graph = passes.PassManager('hoist-states,read-only-states,donation').run(
        ir.trace(f, jnp.ones(3)))
    reads = {n.state: n for n in graph.find_nodes('state_read')}
    assert reads[w].meta == {'read_only': True, 'donate': False}
    assert reads[h].meta == {'read_only': False, 'donate': True}
    text = graph.format()
    assert 'state_read @w    # read_only' in text
    assert 'state_read @h    # donate' in text


# -- the pipeline the transforms use -----------------------------------------------------------

def test_jit_passes_argument_and_global_setting():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f(x):
        s.value = x
        s.value = s.value + jnp.sin(x) + jnp.sin(x)
        return s.value

    default = brainstate.transform.jit(f).optimized_ir(1.0)
    bare = brainstate.transform.jit(f, passes=[]).optimized_ir(1.0)
    assert len(default.find_nodes(name='sin')) == 1
    assert len(bare.find_nodes(name='sin')) == 2
    bare.verify(canonical=True)
    with passes.default_pipeline('hoist-states'):
        assert len(brainstate.transform.jit(f).optimized_ir(1.0).find_nodes(name='sin')) == 2
    assert passes.get_default_pipeline() == passes.DEFAULT_PIPELINE
    assert float(brainstate.transform.jit(f, passes=[])(1.0)) == pytest.approx(
        1 + 2 * np.sin(1.0), rel=1e-6)


def test_pass_manager_runs_on_any_graph():
    graph = ir.trace(lambda x: jnp.exp(x) * 1.0, jnp.ones(2))
    out = passes.PassManager('cse,dce').run(graph)
    assert out is graph and graph.output_node is not None


def test_hoisted_exit_write_keeps_the_users_source_line():
    s = brainstate.State(jnp.zeros(()), name='s')

    def f(x):
        s.value = x
        s.value = s.value * 2  # the last write: its line is kept
        return x

    graph = passes.hoist_states(ir.trace(f, 1.0))
    (write,) = graph.find_nodes('state_write')
    assert 'test_passes.py' in ir.source_location(write)
    table = graph.state_table().splitlines()[2]
    assert table.split()[-1] != '-' and '?' not in table


def test_read_only_states_sees_writes_inside_regions_before_hoisting():
    # Before hoist-states a state may be written inside a loop body only: its reads are not
    # read-only. (After it, the graph is canonical and every write stands at its exit.)
    s = brainstate.State(jnp.zeros(()), name='s')
    w = brainstate.State(jnp.ones(()), name='w')

    def f():
        def body(i):
            s.value = s.value + w.value * i

        brainstate.transform.for_loop(body, jnp.arange(3.0))
        return s.value + w.value

    for pipeline in ('read-only-states', 'hoist-states,read-only-states'):
        graph = passes.PassManager(pipeline).run(ir.trace(f))
        marks = {n.state: n.meta['read_only'] for n in graph.find_nodes('state_read')}
        assert marks[s] is False and marks[w] is True, (pipeline, marks)
