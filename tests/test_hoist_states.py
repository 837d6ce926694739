"""The hoist-states pass on regions: IR text before and after, structure, errors, lowering."""

import textwrap

import jax.numpy as jnp
import pytest

import brainstate
from brainstate._compat import CLOSED_CALL_NAME
from brainstate.ir import lower_to_jaxpr
from brainstate.passes import hoist_states
from brainstate.transform import checkpoint, cond, for_loop, jit, scan, switch, while_loop


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.V = brainstate.HiddenState(jnp.zeros(4))
        self.w = brainstate.ParamState(jnp.ones(4))
        self.count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))


def _simulation(net):
    def run(xs):
        def step(x):
            net.V.value = net.V.value * 0.9 + x * net.w.value

            def fire():
                net.count.value = net.count.value + 1

            cond(net.V.value.sum() > 1., fire, lambda: None)
            return net.V.value

        return for_loop(step, xs)
    return run


BEFORE = textwrap.dedent('''\
    graph run(%0:f32[3,4]) {
      %1:f32[3,4] = scan[length=3 num_carry=0 num_consts=0 reverse=False unroll=1] %0 {
        step(%2:f32[4]) {
          %3:f32[4] = state_read @Net.V
          %4:f32[4] = mul %3 0.8999999761581421:f32[]
          %5:f32[4] = state_read @Net.w
          %6:f32[4] = mul %2 %5
          %7:f32[4] = add %4 %6
          state_write @Net.V %7
          %8:f32[4] = state_read @Net.V
          %9:f32[] = reduce_sum[axes=(0,)] %8
          %10:bool[] = gt %9 1.0:f32[]
          %11:i32[] = convert_element_type[new_dtype=int32 weak_type=False] %10
          cond %11 {
            <lambda>() {
              return 
            }
            fire() {
              %12:i32[] = state_read @Net.count
              %13:i32[] = add %12 1:i32[]
              state_write @Net.count %13
              return 
            }
          }
          %14:f32[4] = state_read @Net.V
          return %14
        }
      }
      return %1
    }''')

AFTER = textwrap.dedent('''\
    graph run(%0:f32[3,4]) {
      %1:f32[4] = state_read @Net.w
      %2:f32[4] = state_read @Net.V
      %3:i32[] = state_read @Net.count
      %4:f32[4] %5:i32[] %6:f32[3,4] = scan[length=3 num_carry=2 num_consts=1 reverse=False unroll=1] %1 %2 %3 %0 {
        step(%7:f32[4] %8:f32[4] %9:i32[] %10:f32[4]) {
          %11:f32[4] = mul %8 0.8999999761581421:f32[]
          %12:f32[4] = mul %10 %7
          %13:f32[4] = add %11 %12
          %14:f32[] = reduce_sum[axes=(0,)] %13
          %15:bool[] = gt %14 1.0:f32[]
          %16:i32[] = convert_element_type[new_dtype=int32 weak_type=False] %15
          %17:i32[] = cond %16 %9 {
            <lambda>(%18:i32[]) {
              return %18
            }
            fire(%19:i32[]) {
              %20:i32[] = add %19 1:i32[]
              return %20
            }
          }
          return %13 %17 %13
        }
      }
      state_write @Net.V %4
      state_write @Net.count %5
      return %6
    }''')


def test_ir_text_before_and_after_hoisting():
    net = Net()
    graph = jit(_simulation(net)).ir(jnp.ones((3, 4)))
    assert graph.format() == BEFORE
    hoisted = hoist_states(graph.copy())
    assert hoisted.format() == AFTER
    # In words: V (read and written) and count (written in one branch) are loop carries, w is
    # a loop-invariant operand; the branch that does not fire passes count through.
    hoisted.verify(canonical=True)
    assert hoisted.meta['read_states'] == [net.w, net.V, net.count]
    assert hoisted.meta['written_states'] == [net.V, net.count]


def test_no_state_op_inside_any_region_after_hoisting():
    net = Net()
    graph = hoist_states(jit(_simulation(net)).ir(jnp.ones((3, 4))))
    for region in graph.find_nodes(kind='region'):
        for sub in region.subgraphs:
            assert not any(n.is_state_op for n in sub.walk()), sub
    top_level_ops = [n.kind for n in graph.nodes if n.is_state_op]
    assert top_level_ops == ['state_read'] * 3 + ['state_write'] * 2


def test_hoisting_is_idempotent():
    net = Net()
    graph = hoist_states(jit(_simulation(net)).ir(jnp.ones((3, 4))))
    assert hoist_states(graph.copy()).format() == graph.format()


def test_write_only_state_becomes_a_carry_and_reads_forward_from_writes():
    last = brainstate.ShortTermState(jnp.zeros(2), name='last')

    def run(xs):
        def step(x):
            last.value = x * 2.
            return last.value + 1.  # forwarded from the write: no read is left
        return for_loop(step, xs)

    graph = hoist_states(jit(run).ir(jnp.ones((5, 2))))
    loop, = graph.find_nodes(kind='region')
    assert loop.params['num_carry'] == 1 and loop.params['num_consts'] == 0
    body, = loop.subgraphs
    carry_in = body.inputs[0]
    assert not carry_in.users  # the body never reads the old value
    assert graph.meta['read_states'] == [last]  # the carry's initial value
    assert graph.meta['written_states'] == [last]


def test_read_only_state_is_a_loop_invariant_operand():
    w = brainstate.ParamState(jnp.ones(3), name='w')
    graph = hoist_states(jit(lambda xs: for_loop(lambda x: x * w.value, xs)).ir(jnp.ones((2, 3))))
    loop, = graph.find_nodes(kind='region')
    assert loop.params['num_consts'] == 1 and loop.params['num_carry'] == 0
    assert graph.meta['written_states'] == []


def test_switch_branches_return_states_any_branch_writes():
    a = brainstate.ShortTermState(jnp.zeros(()), name='a')
    b = brainstate.ShortTermState(jnp.zeros(()), name='b')

    def set_a(x):
        a.value = x

    def set_b(x):
        b.value = x + b.value

    def neither(x):
        pass

    graph = hoist_states(jit(lambda i, x: switch(i, [set_a, set_b, neither], x)).ir(0, 1.))
    region, = graph.find_nodes(kind='region')
    assert len(region.outputs) == 2
    for branch in region.subgraphs:
        assert len(branch.inputs) == 3  # x, a, b
        assert len(branch.outputs) == 2  # a, b
    neither_branch = region.subgraphs[2]
    assert neither_branch.outputs == neither_branch.inputs[1:]  # passed through


def test_state_written_in_while_condition_names_the_state():
    net = Net()

    def bad_cond(v):
        net.count.value = net.count.value + 1
        return v < 3.

    graph = jit(lambda x: while_loop(bad_cond, lambda v: v + 1., x)).ir(0.)
    with pytest.raises(brainstate.BrainStateError, match=r'State Net\.count .*condition'):
        hoist_states(graph)


def test_while_condition_reads_a_carried_state():
    n = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='n')

    def body(v):
        n.value = n.value + 1
        return v * 2.

    graph = hoist_states(jit(lambda x: while_loop(lambda v: n.value < 5, body, x)).ir(1.))
    region, = graph.find_nodes(kind='region')
    cond_body, loop_body = region.subgraphs
    assert region.params['cond_nconsts'] == 0 and region.params['body_nconsts'] == 0
    assert len(cond_body.inputs) == 2 and len(loop_body.inputs) == 2  # (v, n) carries
    assert cond_body.inputs[1].users  # the condition reads the carried n


def test_nested_regions_are_hoisted_recursively():
    acc = brainstate.ShortTermState(jnp.zeros(()), name='acc')

    @checkpoint
    def block(xs):
        def outer(x):
            def inner(y):
                acc.value = acc.value + x * y
            for_loop(inner, jnp.arange(3.))
        for_loop(outer, xs)

    graph = hoist_states(jit(block).ir(jnp.ones(4)))
    graph.verify(canonical=True)
    assert [n.op for n in graph.find_nodes(kind='region')] == ['checkpoint', 'scan', 'scan']
    assert graph.meta['written_states'] == [acc]
    inner = graph.find_nodes(kind='region')[-1]
    assert inner.params['num_carry'] == 1


def test_regions_lower_to_lax_control_flow():
    net = Net()

    def run(x):
        def step(c, _):
            net.count.value = net.count.value + 1
            return c, None
        scan(step, x, None, length=2)
        while_loop(lambda v: v < 3., lambda v: v + net.w.value.sum(), x)
        cond(x > 0, lambda: None, lambda: None)
        return checkpoint(lambda v: v * 2.)(x)

    graph = hoist_states(jit(run).ir(1.))
    lowered = lower_to_jaxpr(graph)
    names = []

    def collect(jaxpr):  # a region whose loop forwards a carry unchanged lowers as a call
        for eqn in jaxpr.eqns:
            names.append(eqn.primitive.name)
            if eqn.primitive.name == CLOSED_CALL_NAME:  # 'eval_jaxpr' from JAX 0.12
                collect(eqn.params['call_jaxpr'].jaxpr)

    collect(lowered.closed_jaxpr.jaxpr)
    for expected in ('scan', 'while', 'cond'):
        assert expected in names
    assert any(name.startswith(('checkpoint', 'remat')) for name in names)
    assert 'region' not in names


def test_region_outside_brainstate_is_a_clear_error():
    import jax
    with pytest.raises(brainstate.BrainStateError, match='raw JAX transform'):
        jax.jit(lambda x: brainstate.ir.region_p.bind(
            x, name='scan', bodies=(), out_avals=(jax.core.ShapedArray((), jnp.float32),)))(1.)
