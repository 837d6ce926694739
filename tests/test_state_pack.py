"""brainstate.pack_states: many small states in one buffer, read and written through their
slices eagerly and through one buffer read/write (the pack-states pass) in compiled steps."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate._state_pack import LIVE_PACKS, packed_slots


@pytest.fixture
def packs():
    """Packs made by a test are unpacked after it, so no other test sees them."""
    made = []

    def pack(*args, **kwargs):
        made.append(brainstate.pack_states(*args, **kwargs))
        return made[-1]

    yield pack
    for p in made:
        p.unpack()
    assert not any(p.packed for p in made)


def _values(states):
    return np.stack([np.asarray(s.value) for s in states])


def _initial(n, shape=(4,)):
    size = int(np.prod(shape))
    return [(jnp.arange(size, dtype=jnp.float32).reshape(shape) * 0.1 + i * 0.01)
            for i in range(n)]


# -- correctness against unpacked states and hand-written JAX ---------------------------------

def test_increment_is_bit_identical_to_raw_jax_and_unpacked(packs):
    n = 50
    packed = [brainstate.ShortTermState(v) for v in _initial(n)]
    separate = [brainstate.ShortTermState(v) for v in _initial(n)]
    pack = packs(packed)
    assert pack.states == packed and len(pack.buffers) == 1

    def make(states):
        @brainstate.transform.jit
        def step(x):
            for s in states:
                s.value = s.value * 0.5 + x
            return states[0].value.sum()
        return step

    step_packed, step_separate = make(packed), make(separate)
    raw = jax.jit(lambda vs, x: [v * 0.5 + x for v in vs])
    values = _initial(n)
    for i in range(4):
        x = jnp.float32(i) / 3
        out_p, out_s = step_packed(x), step_separate(x)
        values = raw(values, x)
        assert np.array_equal(out_p, out_s)
    expected = np.stack([np.asarray(v) for v in values])
    assert np.array_equal(_values(packed), expected)
    assert np.array_equal(_values(separate), expected)


def test_sgd_step_with_grad_of_packed_params_is_bit_identical(packs):
    n = 20
    params = [brainstate.ParamState(v) for v in _initial(n, (2, 3))]
    packs(params)
    lr = 0.05

    def loss_of(values, x):
        return sum(jnp.sum((w * x - 1.0) ** 2) for w in values)

    @brainstate.transform.jit
    def step(x):
        grads = brainstate.transform.grad(lambda x: loss_of([p.value for p in params], x),
                                          params)(x)
        for p, g in zip(params, grads):
            p.value = p.value - lr * g
        return loss_of([p.value for p in params], x)

    @jax.jit
    def raw(values, x):
        grads = jax.grad(loss_of)(values, x)
        values = [w - lr * g for w, g in zip(values, grads)]
        return values, loss_of(values, x)

    values = _initial(n, (2, 3))
    x = jnp.full((2, 3), 0.7)
    for _ in range(5):
        out = step(x)
        values, expected = raw(values, x)
        assert np.array_equal(out, expected)
    assert np.array_equal(_values(params), np.stack([np.asarray(v) for v in values]))


def test_eager_grad_of_packed_params_matches_jax(packs):
    params = [brainstate.ParamState(v) for v in _initial(3)]
    packs(params)
    x = jnp.arange(4.0)
    grads = brainstate.transform.grad(
        lambda: sum(jnp.sum(jnp.sin(p.value * x)) for p in params), params)()
    for g, v in zip(grads, _initial(3)):
        np.testing.assert_array_equal(g, jax.grad(lambda w: jnp.sum(jnp.sin(w * x)))(v))


def test_states_of_any_shape_and_several_dtypes(packs):
    a = brainstate.State(jnp.float32(2.0))
    b = brainstate.State(jnp.ones((2, 3, 2)))
    c = brainstate.State(jnp.arange(3, dtype=jnp.int32))
    d = brainstate.State(jnp.zeros((0,)))
    pack = packs([a, b, c, d])
    assert {buf._avals[0].dtype for buf in pack.buffers} == {np.dtype('float32'),
                                                             np.dtype('int32')}

    @brainstate.transform.jit
    def step():
        a.value = a.value * 3
        b.value = b.value + a.value
        c.value = c.value * 2 + 1
        return d.value.sum()

    step()
    step()
    assert a.value == 18.0 and a.value.shape == ()
    np.testing.assert_array_equal(b.value, np.full((2, 3, 2), 25.0))
    np.testing.assert_array_equal(c.value, [3, 7, 11])
    assert c.value.dtype == jnp.int32


def test_read_only_and_partly_written_members(packs):
    states = [brainstate.State(jnp.full(3, float(i))) for i in range(5)]
    packs(states)

    @brainstate.transform.jit
    def step():
        states[3].value = states[1].value + states[4].value
        return states[0].value + states[2].value

    np.testing.assert_array_equal(step(), np.full(3, 2.0))
    np.testing.assert_array_equal(_values(states), [[0] * 3, [1] * 3, [2] * 3, [5] * 3,
                                                    [4] * 3])


def test_packed_states_in_a_loop_and_a_branch(packs):
    acc = brainstate.State(jnp.zeros(2))
    count = brainstate.State(jnp.zeros(()))
    packs([acc, count])

    def body(x):
        acc.value = acc.value + x
        count.value = count.value + 1

    @brainstate.transform.jit
    def run(xs):
        brainstate.transform.for_loop(body, xs)
        brainstate.transform.cond(count.value > 2, lambda: body(jnp.ones(2)),
                                  lambda: None)

    run(jnp.ones((3, 2)))
    np.testing.assert_array_equal(acc.value, [4.0, 4.0])
    assert count.value == 4


# -- eager access -------------------------------------------------------------------------

def test_eager_reads_and_writes_between_steps(packs):
    states = [brainstate.State(v) for v in _initial(4)]
    packs(states)

    @brainstate.transform.jit
    def step():
        for s in states:
            s.value = s.value + 1

    step()
    np.testing.assert_allclose(states[2].value, _initial(4)[2] + 1)
    states[2].value = jnp.full(4, 10.0)
    states[0].value = np.zeros(4)  # a NumPy array, converted as for any state
    assert states[0].value.dtype == jnp.float32
    step()
    np.testing.assert_array_equal(states[2].value, np.full(4, 11.0))
    np.testing.assert_array_equal(states[0].value, np.ones(4))
    np.testing.assert_array_equal(states[1].value, _initial(4)[1] + 1 + 1)


def test_eager_write_of_another_shape_names_the_state_and_changes_nothing(packs):
    s = brainstate.State(jnp.ones(4), name='w')
    other = brainstate.State(jnp.zeros(2))
    packs([s, other])
    for bad in (jnp.ones(5), jnp.ones(4, jnp.int32), {'a': jnp.ones(4)}):
        with pytest.raises(brainstate.StateValueError, match=r'State w is packed.*unpack'):
            s.value = bad
    np.testing.assert_array_equal(s.value, np.ones(4))
    assert s.avals[0].shape == (4,)


def test_eager_tracer_write_is_refused(packs):
    s = brainstate.State(jnp.ones(4))
    packs([s])

    def raw(x):
        s.value = x
        return x

    with pytest.raises(brainstate.TracerLeakError):
        jax.jit(raw)(jnp.zeros(4))
    np.testing.assert_array_equal(s.value, np.ones(4))


# -- nothing lost, nothing deleted ----------------------------------------------------------

def test_a_failed_call_leaves_every_value_intact(packs):
    states = [brainstate.State(jnp.full(2, float(i))) for i in range(3)]
    packs(states)

    @brainstate.transform.jit
    def step(x, fail):
        for s in states:
            s.value = s.value + x
        if fail:
            raise RuntimeError('boom')
        return x

    step = brainstate.transform.jit(step.fun, static_argnums=1)
    step(1.0, False)
    before = _values(states)
    with pytest.raises(RuntimeError, match='boom'):
        step(1.0, True)
    with pytest.raises(Exception):
        step(jnp.ones(7), False)  # shapes do not broadcast: fails at trace time
    np.testing.assert_array_equal(_values(states), before)
    step(1.0, False)
    np.testing.assert_array_equal(_values(states), before + 1)


def test_donation_never_deletes_arrays_the_user_holds(packs):
    states = [brainstate.State(jnp.full(3, float(i))) for i in range(4)]
    pack = packs(states)
    held_member = states[1].value
    held_buffer = pack.buffers[0].value

    @brainstate.transform.jit
    def step():
        for s in states:
            s.value = s.value * 2

    step()
    step()
    np.testing.assert_array_equal(held_member, np.full(3, 1.0))
    np.testing.assert_array_equal(held_buffer[:3], np.zeros(3))
    assert not held_member.is_deleted() and not held_buffer.is_deleted()
    held_after = states[2].value
    step()
    np.testing.assert_array_equal(held_after, np.full(3, 8.0))
    np.testing.assert_array_equal(states[2].value, np.full(3, 16.0))


def test_a_member_value_donated_by_the_user_is_read_again_from_the_buffer(packs):
    s = brainstate.State(jnp.full(3, 2.0))
    packs([s, brainstate.State(jnp.zeros(1))])
    held = s.value
    jax.jit(lambda x: x * 2, donate_argnums=0)(held)
    assert held.is_deleted()
    np.testing.assert_array_equal(s.value, np.full(3, 2.0))


def test_the_buffer_is_donated_when_nobody_holds_it(packs):
    states = [brainstate.State(jnp.zeros(3)) for _ in range(3)]
    pack = packs(states)

    @brainstate.transform.jit
    def step():
        for s in states:
            s.value = s.value + 1

    step()
    old = pack.buffers[0]._value
    step()
    assert old.is_deleted()  # updated in place
    np.testing.assert_array_equal(states[0].value, np.full(3, 2.0))


# -- visibility, layout changes, unpacking --------------------------------------------------

def test_the_printed_ir_shows_one_buffer_read_and_write(packs):
    states = [brainstate.State(jnp.zeros(4), name=f's{i}') for i in range(3)]
    packs(states, name='mypack')

    @brainstate.transform.jit
    def step(x):
        for s in states:
            s.value = s.value + x

    text = str(step.optimized_ir(1.0))
    assert text.count('state_read @mypack.float32') == 1
    assert text.count('state_write @mypack.float32') == 1
    assert '@s0' not in text.replace('packed=s0', '')
    assert 'packed=s1' in text and 'dynamic_update_slice' in text
    assert '@s0' in str(step.ir(1.0))  # as traced, before the passes
    records = step.trace(brainstate.transform._arguments.ArgumentSpec(step.fun).signature(
        (1.0,), {})).pass_manager.records
    assert any(r.name == 'pack-states' and r.changed for r in records)


def test_packed_graph_verifies(packs):
    states = [brainstate.State(jnp.zeros((2, 2))) for _ in range(3)]
    packs(states)
    brainstate.passes.set_pass_options(verify=True)
    try:
        @brainstate.transform.jit
        def step(x):
            states[0].value = states[1].value + x
            return states[2].value.sum()
        assert step(1.0) == 0.0
        np.testing.assert_array_equal(states[0].value, np.ones((2, 2)))

        # Write-only states of two dtypes, written constants and weakly typed values.
        a, b = brainstate.State(jnp.ones(())), brainstate.State(jnp.ones(3))
        i = brainstate.State(jnp.zeros((), jnp.int32))
        packs([a, b, i])

        @brainstate.transform.jit
        def write_only(x):
            a.value = 0.0
            b.value = jnp.where(x > 0, 1., 2.) * jnp.ones(3)
            i.value = 5

        write_only(-1.0)
        assert a.value == 0.0 and i.value == 5 and i.value.dtype == jnp.int32
        np.testing.assert_array_equal(b.value, np.full(3, 2.0))

        # A state written with another packed state's value as read (no computation between).
        t1 = brainstate.State({'w': jnp.ones(2), 'n': jnp.ones((), jnp.int32)})
        t2 = brainstate.State({'w': jnp.zeros(2), 'n': jnp.zeros((), jnp.int32)})
        packs([t1, t2])

        @brainstate.transform.jit
        def swap():
            t1.value, t2.value = t2.value, t1.value

        swap()
        np.testing.assert_array_equal(t1.value['w'], np.zeros(2))
        assert t2.value['n'] == 1 and t1.value['n'] == 0
    finally:
        brainstate.passes.set_pass_options(verify=False)


def test_a_step_compiled_before_packing_retraces_to_use_the_buffer(packs):
    states = [brainstate.State(jnp.zeros(2)) for _ in range(3)]

    @brainstate.transform.jit
    def step():
        for s in states:
            s.value = s.value + 1

    step()
    pack = packs(states)
    step()
    assert step._last.read_states == (pack.buffers[0],)
    pack.unpack()
    step()
    assert step._last.read_states == tuple(states)
    np.testing.assert_array_equal(_values(states), np.full((3, 2), 3.0))


def test_unpack_restores_separate_storage(packs):
    states = [brainstate.ParamState(v) for v in _initial(3)]
    pack = packs(states)
    assert type(states[0]).__name__ == 'ParamState' and isinstance(states[0],
                                                                   brainstate.ParamState)
    assert type(states[0]) is not brainstate.ParamState
    total = brainstate.transform.jit(lambda: sum(s.value.sum() for s in states))
    np.testing.assert_allclose(total(), sum(v.sum() for v in _initial(3)), rtol=1e-6)
    states[1].value = jnp.full(4, 5.0)
    pack.unpack()
    for s in states:
        assert type(s) is brainstate.ParamState
        assert packed_slots(s) is None and '_value' in s.__dict__
    np.testing.assert_array_equal(states[1].value, np.full(4, 5.0))
    np.testing.assert_array_equal(states[0].value, _initial(3)[0])
    states[0].value = jnp.ones(7)  # its own storage again: any shape may be set
    assert states[0].value.shape == (7,)
    pack.unpack()  # idempotent


def test_a_module_with_pytree_states_keys_skipped_and_packed_twice_refused(packs):
    class Net(brainstate.Module):
        def __init__(self):
            super().__init__()
            self.w = brainstate.ParamState(jnp.ones((2, 2)))
            self.layer = brainstate.ParamState({'weight': jnp.ones((3, 2)),
                                                'bias': jnp.zeros(2),
                                                'steps': jnp.zeros((), jnp.int32)})
            self.key = brainstate.State(jax.random.key(0))

    net = Net()
    pack = packs(net)
    assert set(pack.states) == {net.w, net.layer}
    assert [s for s, _ in pack.skipped] == [net.key]
    assert 'not numeric' in pack.skipped[0][1]
    assert len(pack.buffers) == 2  # float32 and int32
    again = packs(net.states())
    assert again.states == [] and len(again.skipped) == 3
    assert 'packed already' in dict((id(s), r) for s, r in again.skipped)[id(net.w)]

    @brainstate.transform.jit
    def step(x):
        layer = net.layer.value
        net.layer.value = {'weight': layer['weight'] * 2, 'bias': layer['bias'] + x,
                           'steps': layer['steps'] + 1}
        net.w.value = net.w.value + layer['weight'][:2]
        return jax.random.uniform(net.key.value)

    step(1.0)
    step(1.0)
    np.testing.assert_array_equal(net.layer.value['weight'], np.full((3, 2), 4.0))
    np.testing.assert_array_equal(net.layer.value['bias'], np.full(2, 2.0))
    assert net.layer.value['steps'] == 2 and net.layer.value['steps'].dtype == jnp.int32
    np.testing.assert_array_equal(net.w.value, np.full((2, 2), 4.0))
    text = str(step.optimized_ir(1.0))
    assert "packed=Net.layer['bias']" in text and 'state_read @Net.key' in text
    assert 'state_read @pack.int32' in text and 'state_read @Net.layer' not in text
    net.layer.value = {'weight': jnp.zeros((3, 2)), 'bias': jnp.ones(2),
                       'steps': jnp.int32(7)}
    assert net.layer.value['steps'] == 7
    with pytest.raises(brainstate.StateValueError, match=r'Net.layer is packed'):
        net.layer.value = {'weight': jnp.zeros((3, 2)), 'bias': jnp.ones(2)}
    np.testing.assert_array_equal(net.layer.value['bias'], np.ones(2))


def test_copies_clones_and_copy_from_of_packed_states(packs):
    import copy
    import pickle
    a = brainstate.ParamState(jnp.ones(3), name='a')
    packs([a])
    b = a.copy()
    assert type(b) is brainstate.ParamState and packed_slots(b) is None
    np.testing.assert_array_equal(b.value, np.ones(3))
    for twin in (copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert type(twin) is brainstate.ParamState and packed_slots(twin) is None
        np.testing.assert_array_equal(twin.value, np.ones(3))
    a.copy_from(brainstate.ParamState(jnp.full(3, 4.0)))
    assert packed_slots(a) is not None
    np.testing.assert_array_equal(a.value, np.full(3, 4.0))
    with pytest.raises(brainstate.StateValueError):
        a.copy_from(brainstate.ParamState(jnp.ones(2)))
    np.testing.assert_array_equal(a.value, np.full(3, 4.0))


def test_threads_sharing_packed_states(packs):
    states = [brainstate.State(jnp.zeros(())) for _ in range(4)]
    packs(states)

    @brainstate.transform.jit
    def step():
        for s in states:
            s.value = s.value + 1

    step()

    def work():
        for _ in range(25):
            step()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_array_equal(_values(states), np.full(4, 101.0))


def test_eager_transforms_and_vmap_with_packed_states(packs):
    w = brainstate.ParamState(jnp.arange(6.0).reshape(3, 2))
    acc = brainstate.State(jnp.zeros(2))
    packs([w, acc])
    xs = jnp.arange(12.0).reshape(4, 3)

    def body(x):
        acc.value = acc.value + x @ w.value
        return acc.value

    outs = brainstate.transform.for_loop(body, xs)  # eager: one compiled program
    expected = np.cumsum(np.asarray(xs) @ np.arange(6.0).reshape(3, 2), axis=0)
    np.testing.assert_allclose(outs, expected, rtol=1e-6)
    np.testing.assert_allclose(acc.value, expected[-1], rtol=1e-6)

    @brainstate.transform.jit
    def batched(xs):
        return brainstate.transform.vmap(lambda x: jnp.tanh(x @ w.value))(xs)

    np.testing.assert_allclose(batched(xs), np.tanh(np.asarray(xs) @ np.asarray(w.value)),
                               rtol=1e-6)
    eager = brainstate.transform.vmap(lambda x: jnp.tanh(x @ w.value))(xs)
    np.testing.assert_allclose(eager, np.tanh(np.asarray(xs) @ np.asarray(w.value)),
                               rtol=1e-6)


def test_pack_states_refuses_what_is_not_states():
    import brainstate
    with pytest.raises(TypeError, match='pack_states takes a Module'):
        brainstate.pack_states(42)


# -- the packing in make_jaxpr and on the command line ----------------------------------------

def test_make_jaxpr_shows_the_buffer_and_runs_like_the_unpacked_jaxpr(packs):
    states = [brainstate.State(v, name=f's{i}') for i, v in enumerate(_initial(3, (2, 2)))]

    def step(x):
        for s in states:
            s.value = s.value * x
        return states[0].value.sum()

    make = brainstate.transform.make_jaxpr(step)
    plain, plain_states = make(2.0)
    assert plain_states == tuple(states)
    pack = packs(states, name='mypack')
    jaxpr, got = make(2.0)  # compiled before packing: retraced (the states' class changed)
    assert got == tuple(pack.buffers) and isinstance(got[0], brainstate.PackedBuffer)
    assert [v.aval.shape for v in jaxpr.jaxpr.invars] == [(), (12,)]
    text = str(jaxpr)
    assert text.count('slice[') == 3 and text.count('dynamic_update_slice') == 3
    x = jnp.float32(2.0)
    out = jax.core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, x, got[0].value)
    expected = jax.core.eval_jaxpr(plain.jaxpr, plain.consts, x, *[s.value for s in states])
    assert np.array_equal(out[0], expected[0])
    assert np.array_equal(out[1], jnp.concatenate([e.reshape(-1) for e in expected[1:]]))
    # The program is the one jit compiles: its graph names each slice by its state's path.
    program = brainstate.transform.StatefulFunction(step)
    program.packed = True
    graph = program.make_jaxpr(2.0).get_program(2.0).graph
    assert 'packed=s1' in str(graph) and 'state_read @mypack.float32' in str(graph)
    pack.unpack()
    assert make(2.0)[1] == tuple(states)  # unpacked: retraced again


def test_jit_stateful_fun_lists_the_buffer_not_its_members(packs):
    states = [brainstate.State(jnp.zeros(3)) for _ in range(4)]
    other = brainstate.State(jnp.zeros((), jnp.int32))
    pack = packs(states)

    @brainstate.transform.jit
    def step(x):
        for s in states:
            s.value = s.value + x
        other.value = other.value + 1

    step(1.0)
    sf = step.stateful_fun
    key = sf.get_arg_cache_key(1.0)
    assert set(sf.get_states_by_cache(key)) == {pack.buffers[0], other}
    assert len(sf.get_jaxpr_by_cache(key).jaxpr.invars) == 3


def test_the_command_line_shows_the_pack_states_pass(tmp_path, capsys, monkeypatch, packs):
    from brainstate._cli import ir_tool
    (tmp_path / 'pack_cli_net.py').write_text(
        'import jax.numpy as jnp\nimport brainstate\n'
        'class Net(brainstate.nn.Module):\n'
        '    def __init__(self):\n'
        '        super().__init__()\n'
        '        self.a = brainstate.ParamState(jnp.zeros(4))\n'
        '        self.b = brainstate.ParamState(jnp.ones((2, 2)))\n'
        'net = Net()\n')
    model = tmp_path / 'pack_cli_model.py'
    model.write_text('from pack_cli_net import net\n'
                     'def step(x):\n'
                     '    net.a.value = net.a.value + x\n'
                     '    return net.b.value.sum()\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__('sys').modules, 'pack_cli_net', raising=False)

    def shown(*options):
        assert ir_tool.main([f'{model}:step', '--args', 'f32[4]', *options]) == 0
        return capsys.readouterr().out

    out = shown()  # nothing packed: no pack-states pass
    assert 'pack-states' not in out and 'slice' not in out
    import pack_cli_net
    out = shown('--pack')  # packs the states step touches, for this run only
    assert '// StatePack(2 states; pack.float32: 2 arrays in float32[8])' in out
    assert '// ===== after pack-states (' in out and '2 packed reads' in out
    assert 'state_read @pack.float32    # donate' in out
    assert 'packed=Net.a' in out and 'packed=Net.b' in out
    assert 'state_write @pack.float32' in out
    assert packed_slots(pack_cli_net.net.a) is None  # the tool unpacked them again
    packs(pack_cli_net.net, name='mine')  # packed by the program itself: shown as well
    out = shown('--show', 'final')
    assert 'state_read @mine.float32' in out and 'packed=Net.b' in out
