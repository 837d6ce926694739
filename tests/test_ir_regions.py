"""Region kinds (brainstate/ir/regions/): signatures, verify rules, dce rules, editing."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.ir import IRVerificationError, region_kind
from brainstate.passes import PassFailure, PassManager
from brainstate.transform import checkpoint, cond, for_loop, jit, scan, switch, while_loop


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.V = brainstate.HiddenState(jnp.zeros(4))
        self.w = brainstate.ParamState(jnp.arange(1., 5.))
        self.tmp = brainstate.ShortTermState(jnp.zeros(4))


def _regions(graph, name=None):
    return [n for n in graph.walk() if n.kind == 'region' and (name is None or n.op == name)]


def _hoisted(fun, *args):
    return PassManager('hoist-states', verify=True).run(brainstate.ir.trace(fun, *args))


# -- signatures ----------------------------------------------------------------------------------

def test_scan_signature_names_consts_carries_xs_and_maps_them():
    net = Net()

    def run(xs):
        def body(c, x):
            net.V.value = net.V.value * 0.5 + x * net.w.value  # V: carry, w: const
            return c + 1., x.sum()
        return scan(body, 0., xs)

    graph = _hoisted(run, jnp.ones((3, 4)))
    loop, = _regions(graph, 'scan')
    sig = region_kind(loop).signature(loop)
    assert list(sig.operand_groups) == ['consts', 'carries', 'xs']
    assert list(sig.result_groups) == ['carries', 'ys']
    assert len(sig.consts) == 1 and sig.consts[0].producer.state is net.w
    assert len(sig.carries) == 2 and len(sig.xs) == 1 and len(sig.ys) == 1
    user, state = sig.carries
    assert state.init.producer.state is net.V
    assert state.final.users and next(iter(state.final.users)).state is net.V
    body = sig.bodies[0]
    # operand -> body input -> body output -> result
    assert body.input_operands == list(range(len(loop.inputs)))
    for carry in sig.carries:
        assert carry.body_input_values == [body.graph.inputs[carry.operand]]
        assert carry.next_value is body.graph.outputs[carry.result]
        assert sig.carry_of_operand(carry.operand) == carry
        assert sig.carry_of_result(carry.result) == carry
    assert body.inputs('xs') == body.graph.inputs[3:]
    assert sig.body_inputs_of(3) == [(0, 3)]
    assert sig.operand_group(0) == 'consts' and sig.result_group(2) == 'ys'


def test_while_signature_maps_each_carry_into_both_bodies():
    net = Net()

    def run(x):
        def body(i):
            net.V.value = net.V.value + x
            return i + 1
        return while_loop(lambda i: i < net.w.value.sum(), body, 0)

    graph = _hoisted(run, jnp.ones(4))
    loop, = _regions(graph, 'while')
    sig = region_kind(loop).signature(loop)
    assert list(sig.operand_groups) == ['cond_consts', 'body_consts', 'carries']
    cond_body, loop_body = sig.bodies
    assert cond_body.output_results == [None]  # the predicate is no result
    assert len(sig.carries) == 2
    for carry in sig.carries:
        assert carry.body == 1
        c_in, b_in = carry.body_input_values
        assert cond_body.input_operands[carry.body_inputs[0]] == carry.operand
        assert loop_body.input_operands[carry.body_inputs[1]] == carry.operand
        assert c_in in cond_body.inputs('carries') and b_in in loop_body.inputs('carries')
    assert [v.producer.state for v in sig.cond_consts] == [net.w]


def test_cond_signature_feeds_every_branch_and_keeps_the_index():
    net = Net()

    def run(x):
        def up(x):
            net.V.value = net.V.value + x
            return x * 2.

        return cond(x.sum() > 0, up, lambda x: x, x)

    graph = _hoisted(run, jnp.ones(4))
    region, = _regions(graph, 'cond')
    kind = region_kind(region)
    sig = kind.signature(region)
    assert len(sig.index) == 1 and sig.carries == []
    assert len(sig.bodies) == 2
    for position in range(1, len(region.inputs)):
        assert sig.body_inputs_of(position) == [(0, position - 1), (1, position - 1)]
    assert sig.body_outputs_of(0) == [(0, 0), (1, 0)]
    assert not kind.removable_operand(sig, 0)
    assert brainstate.ir.REGION_KINDS['cond'] is kind


def test_checkpoint_signature_is_args_to_results():
    net = Net()

    def run(x):
        return checkpoint(lambda x: jnp.sin(x * net.w.value))(x)

    graph = _hoisted(run, jnp.ones(4))
    region, = _regions(graph, 'checkpoint')
    sig = region_kind(region).signature(region)
    assert list(sig.operand_groups) == ['args'] and len(sig.args) == 2
    assert len(sig.results) == 1


def test_unknown_region_kind_and_duplicate_registration_are_errors():
    with pytest.raises(brainstate.BrainStateError, match='Unknown region kind'):
        region_kind('no-such-region')
    with pytest.raises(ValueError, match='already registered'):
        brainstate.ir.register_region_kind(brainstate.ir.regions.ScanKind())


# -- verify rules --------------------------------------------------------------------------------

def _loop_graph():
    net = Net()

    def run(xs):
        def step(x):
            net.V.value = net.V.value * 0.9 + x * net.w.value
            return net.V.value
        return for_loop(step, xs)

    return net, run, _hoisted(run, jnp.ones((3, 4)))


def _printed_line(graph, op):
    return next(line.strip() for line in str(graph).splitlines() if f' = {op}[' in line)


def test_verifier_rejects_a_region_given_one_operand_too_many_naming_its_values():
    _, _, graph = _loop_graph()
    loop, = _regions(graph, 'scan')
    loop.set_inputs(loop.inputs + [graph.inputs[0]])
    line = _printed_line(graph, 'scan')  # e.g. '%4:f32[4] %5:f32[3,4] = scan[...] %1 %2 %3 %0'
    outs = [tok.split(':')[0] for tok in line.split(' = ')[0].split()]
    ins = line.split('] ')[-1].split(' {')[0]
    with pytest.raises(IRVerificationError) as info:
        graph.verify()
    message = str(info.value)
    assert 'one operand too many' in message
    assert f'{" ".join(outs)} = scan {ins}' in message  # the printed IR's %n names


def test_pass_manager_names_the_pass_that_added_an_operand(tmp_path):
    _, _, graph = _loop_graph()

    def add_operand(graph):
        """A buggy pass: gives the loop an operand its body does not take."""
        loop, = _regions(graph, 'scan')
        loop.set_inputs(loop.inputs + [graph.inputs[0]])

    with pytest.raises(PassFailure, match=r"add-operand.*one operand too many") as info:
        PassManager([add_operand], verify=True, capture_reproducer=False,
                    reproducer_dir=str(tmp_path)).run(graph)
    assert re.search(r'%\d+ %\d+ = scan', str(info.value))


def test_verifier_rejects_a_carry_that_changes_type():
    _, _, graph = _loop_graph()
    loop, = _regions(graph, 'scan')
    body = loop.subgraphs[0]
    carry = region_kind(loop).signature(loop).carries[0]
    with body.inserting_before(body.output_node):
        wide = body.create_node('primitive', op=jax.lax.broadcast_in_dim_p,
                                inputs=[carry.next_value],
                                output_avals=[jax.core.ShapedArray((2, 4), jnp.float32)],
                                params={'shape': (2, 4), 'broadcast_dimensions': (1,),
                                        'sharding': None})
    outs = body.outputs
    outs[carry.body_output] = wide.outputs[0]
    body.set_outputs(outs)
    with pytest.raises(IRVerificationError, match=r'should be f32\[4\]|changes type'):
        graph.verify()


def test_verifier_rejects_branches_with_different_signatures():
    def run(x):
        return cond(x.sum() > 0, lambda x: x * 2., lambda x: x, x)

    graph = _hoisted(run, jnp.ones(4))
    region, = _regions(graph, 'cond')
    second = region.subgraphs[1]
    second.add_input(jax.core.ShapedArray((), jnp.float32))  # one more input than operands
    with pytest.raises(IRVerificationError, match='body 1'):
        graph.verify()


def test_verifier_rejects_a_while_condition_that_is_not_a_boolean():
    def run(x):
        return while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.), (0, x))

    graph = _hoisted(run, jnp.ones(4))
    region, = _regions(graph, 'while')
    cond_body = region.subgraphs[0]
    counter = cond_body.inputs[0]
    cond_body.set_outputs([counter])
    with pytest.raises(IRVerificationError, match='bool'):
        graph.verify()


# -- dce rules -----------------------------------------------------------------------------------

def test_dce_removes_an_unused_carry_from_a_for_loop_region():
    net = Net()

    def run(xs):
        def step(x):
            net.tmp.value = net.tmp.value * 2. + x    # a scratch state ...
            net.V.value = net.V.value * 0.9 + x * net.w.value
            return net.V.value
        ys = for_loop(step, xs)
        net.tmp.value = jnp.zeros(4)                  # ... overwritten after the loop
        return ys

    xs = jnp.linspace(-1., 1., 12).reshape(3, 4)
    graph = _hoisted(run, xs)
    before = str(graph)
    assert 'num_carry=2' in before and '@Net.tmp' in before.split('scan[')[0]
    manager = PassManager('dce', verify=True)
    manager.run(graph)
    after = str(graph)
    assert 'num_carry=1' in after
    loop, = _regions(graph, 'scan')
    assert len(loop.inputs) == 3 and len(loop.outputs) == 2  # w, V, xs -> V, ys
    assert len(loop.subgraphs[0].inputs) == 3
    assert 'state_read @Net.tmp' not in after  # its only reader was the carry
    assert manager.statistics()['dce']['loop carries removed'] == 1

    # The same numbers as without any optional pass, and as pure JAX.
    results = {}
    for passes in ([], 'hoist-states,dce', None):
        net.V.value, net.tmp.value = jnp.full(4, 0.5), jnp.ones(4)
        ys = jit(run, passes=passes)(xs)
        results[str(passes)] = (np.asarray(ys), np.asarray(net.V.value),
                                np.asarray(net.tmp.value))
    for other in results.values():
        for a, b in zip(results['[]'], other):
            np.testing.assert_array_equal(a, b)  # bit for bit

    def pure(v, xs):
        def step(v, x):
            v = v * 0.9 + x * jnp.arange(1., 5.)
            return v, v
        return jax.lax.scan(step, v, xs)

    v_final, ys = pure(jnp.full(4, 0.5), xs)
    np.testing.assert_allclose(results['[]'][0], ys, rtol=1e-6)
    np.testing.assert_allclose(results['[]'][1], v_final, rtol=1e-6)


def test_dce_removes_carries_that_only_feed_each_other():
    def run(xs):
        def body(carry, x):
            a, b, total = carry
            return (b, a, total + x), x * 2.  # a and b swap forever; only y is used
        _, ys = scan(body, (1., 2., 0.), xs)
        return ys

    xs = jnp.arange(5.)
    graph = _hoisted(run, xs)
    loop, = _regions(graph, 'scan')
    assert loop.params['num_carry'] == 3
    PassManager('dce', verify=True).run(graph)
    loop, = _regions(graph, 'scan')
    assert loop.params['num_carry'] == 0
    assert len(loop.inputs) == 1 and len(loop.outputs) == 1
    np.testing.assert_array_equal(jit(run, passes='dce')(xs), jit(run, passes=[])(xs))
    np.testing.assert_allclose(jit(run, passes='dce')(xs), xs * 2.)


def test_dce_keeps_a_carry_a_live_value_depends_on():
    def run(xs):
        def body(carry, x):
            a, b = carry
            return (a + 1., b + a), b  # b's final value is unused, but ys read b
        _, ys = scan(body, (0., 0.), xs)
        return ys

    graph = _hoisted(run, jnp.ones(4))
    PassManager('dce', verify=True).run(graph)
    loop, = _regions(graph, 'scan')
    assert loop.params['num_carry'] == 2
    np.testing.assert_allclose(jit(run, passes='dce')(jnp.ones(4)), [0., 0., 1., 3.])


def test_dce_prunes_while_carries_but_keeps_those_the_condition_reads():
    def run(x):
        def body(c):
            i, acc, scratch = c
            return i + 1, acc + x, scratch * 2.
        i, acc, _ = while_loop(lambda c: c[0] < 3, body, (0, jnp.zeros(4), jnp.ones(4)))
        return acc

    x = jnp.arange(4.)
    graph = _hoisted(run, x)
    PassManager('dce', verify=True).run(graph)
    loop, = _regions(graph, 'while')
    sig = region_kind(loop).signature(loop)
    assert len(sig.carries) == 2  # the counter (read by the condition) and acc
    np.testing.assert_array_equal(jit(run, passes='dce')(x), jit(run, passes=[])(x))
    np.testing.assert_allclose(jit(run, passes='dce')(x), 3 * x)


def test_dce_prunes_unused_branch_results_and_operands():
    def run(x, y):
        out, _ = switch(1, [lambda x, y: (x + 1., y * 3.), lambda x, y: (x * 2., y - 1.)], x, y)
        return out

    x, y = jnp.ones(3), jnp.full(2, 5.)
    graph = _hoisted(run, x, y)
    region, = _regions(graph, 'cond')
    assert len(region.outputs) == 2 and len(region.inputs) == 3
    PassManager('dce', verify=True).run(graph)
    region, = _regions(graph, 'cond')
    assert len(region.outputs) == 1 and len(region.inputs) == 2  # index, x
    assert all(len(b.inputs) == 1 and len(b.outputs) == 1 for b in region.subgraphs)
    np.testing.assert_allclose(jit(run, passes='dce')(x, y), x * 2.)


def test_dce_shrinks_nested_regions():
    def run(xs):
        def outer(c, x):
            def inner(d, x):
                return (d[0] + x, d[1] * 2.), None
            (total, _), _ = scan(inner, (0., 1.), xs)
            return c + total, None
        out, _ = scan(outer, 0., xs)
        return out

    xs = jnp.arange(3.)
    graph = _hoisted(run, xs)
    PassManager('dce', verify=True).run(graph)
    inner = [r for r in _regions(graph, 'scan') if r.graph is not graph]
    assert len(inner) == 1 and inner[0].params['num_carry'] == 1
    np.testing.assert_allclose(jit(run, passes='dce')(xs), 3 * xs.sum())


# -- editing -------------------------------------------------------------------------------------

def test_remove_region_operand_removes_the_body_input_and_updates_params():
    net = Net()

    def run(xs):
        def step(x):
            net.V.value = net.V.value + x * net.w.value
            return net.V.value
        return for_loop(step, xs)

    graph = _hoisted(run, jnp.ones((3, 4)))
    loop, = _regions(graph, 'scan')
    kind = region_kind(loop)
    const, = kind.signature(loop).consts
    with pytest.raises(ValueError, match='still uses'):
        brainstate.ir.remove_region_operand(loop, 0)
    body = loop.subgraphs[0]
    w_in = body.inputs[0]
    w_in.replace_all_uses_with(brainstate.ir.Literal(np.full(4, 2., np.float32), w_in.aval))
    brainstate.ir.remove_region_operand(loop, 0)
    assert loop.params['num_consts'] == 0 and const not in loop.inputs
    assert len(body.inputs) == len(loop.inputs)
    graph.verify()
    with pytest.raises(ValueError, match='carry'):
        brainstate.ir.remove_region_operand(loop, 0)  # now the initial value of V


def test_insert_and_remove_carry_through_the_kind():
    def run(xs):
        def body(c, x):
            return (c[0] + x, c[1] + 1.), x
        return scan(body, (0., 0.), xs)[1]

    graph = _hoisted(run, jnp.ones(3))
    loop, = _regions(graph, 'scan')
    kind = region_kind(loop)
    with pytest.raises(ValueError, match='still used'):
        kind.remove_result(loop, 2)  # the ys are returned
    with pytest.raises(ValueError, match='carry'):
        kind.remove_result(loop, 0)  # a carry's final value goes with its carry
    kind.remove_carry(loop, 1)
    kind.remove_carry(loop, 0)
    assert loop.params['num_carry'] == 0 and len(loop.outputs) == 1
    new_input, = kind.insert_operand(loop, 'consts', graph.inputs[0], name='extra')
    assert loop.params['num_consts'] == 1 and loop.inputs[0] is graph.inputs[0]
    assert loop.subgraphs[0].inputs[0] is new_input
    graph.verify()


def test_verifier_rejects_a_while_loop_given_one_operand_too_many():
    def run(x):
        return while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.), (0, x))

    graph = _hoisted(run, jnp.ones(4))
    graph.verify()
    region, = _regions(graph, 'while')
    region.set_inputs(region.inputs + [graph.inputs[0]])
    with pytest.raises(IRVerificationError, match=r'has 3 operands but its params describe 2 '
                                                  r'\(cond_consts 0, body_consts 0, carries 2\)'):
        graph.verify()


def test_verifier_rejects_scan_inputs_of_another_length():
    def run(xs):
        return scan(lambda c, x: (c + x, x), 0., xs)

    graph = _hoisted(run, jnp.ones(3))
    region, = _regions(graph, 'scan')
    region.params['length'] = 4
    with pytest.raises(IRVerificationError, match='loop length 4'):
        graph.verify()


def test_dce_follows_a_chain_of_carries_to_the_used_output():
    def run(xs):
        def body(c, x):
            a, b, d, unused = c
            return (a + x, a * 1.5, b * 1.5, unused + d), d  # y <- d <- b <- a <- x
        _, ys = scan(body, (0., 0., 0., 0.), xs)
        return ys

    xs = jnp.arange(1., 6.)
    graph = _hoisted(run, xs)
    PassManager('dce', verify=True).run(graph)
    loop, = _regions(graph, 'scan')
    assert loop.params['num_carry'] == 3  # a, b, d; `unused` went
    np.testing.assert_array_equal(jit(run, passes='dce')(xs), jit(run, passes=[])(xs))

    def pure(xs):
        def body(c, x):
            a, b, d = c
            return (a + x, a * 1.5, b * 1.5), d
        return jax.lax.scan(body, (0., 0., 0.), xs)[1]
    np.testing.assert_allclose(jit(run, passes='dce')(xs), pure(xs), rtol=1e-6)
