"""Automatic packing: brainstate.transform.jit packs many small states of one dtype into one
buffer by itself (brainstate/_state_pack.py, ``AUTO_PACK``), with the same guarantees as
unpacked states: eager reads and writes, donation, failed calls, threads, composition with the
other transforms, State replacement, and a write of a new shape taking a state out of the pack."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate._state_pack import AUTO_PACK, NEVER_AUTO_PACK, packed_slots

N = 20  # at least AUTO_PACK['min_states']


@pytest.fixture
def soon(monkeypatch):
    """Pack at the 2nd cached call (not the 20th: shorter tests); every automatic pack of the
    states a test registers is unpacked after it."""
    monkeypatch.setitem(AUTO_PACK, 'after_calls', 2)
    monkeypatch.setitem(AUTO_PACK, 'enabled', True)
    owned = []
    yield owned.extend
    packs = {id(slot.group.pack): slot.group.pack for s in owned
             for slot in (packed_slots(s) or ())}
    for pack in packs.values():
        pack.unpack()


def _initial(n, shape=(4,), dtype=jnp.float32):
    size = int(np.prod(shape))
    return [(jnp.arange(size, dtype=dtype).reshape(shape) * 0.1 + i * 0.01).astype(dtype)
            for i in range(n)]


def _values(states):
    return np.stack([np.asarray(s.value) for s in states])


def _make_step(states, **options):
    @brainstate.transform.jit(**options)
    def step(x):
        for s in states:
            s.value = s.value * 0.5 + x
        return states[0].value.sum()
    return step


def _is_packed(step) -> bool:
    return any(isinstance(s, brainstate.PackedBuffer) for s in step._last.read_states)


def test_a_hot_step_over_many_small_states_packs_them_bit_for_bit(soon):
    auto = [brainstate.ShortTermState(v) for v in _initial(N)]
    plain = [brainstate.ShortTermState(v) for v in _initial(N)]
    soon(auto)
    step_auto, step_plain = _make_step(auto), _make_step(plain, pack_states=False)
    raw = jax.jit(lambda vs, x: [v * 0.5 + x for v in vs])
    values = _initial(N)
    for i in range(6):
        x = jnp.float32(i) / 3
        out_a, out_p = step_auto(x), step_plain(x)
        values = raw(values, x)
        assert np.array_equal(out_a, out_p)
        assert _is_packed(step_auto) == (i >= 2)  # the 2nd cached call packs
    assert not _is_packed(step_plain) and packed_slots(plain[0]) is None
    expected = np.stack([np.asarray(v) for v in values])
    assert np.array_equal(_values(auto), expected)
    assert np.array_equal(_values(plain), expected)
    # The user's states keep their identity, class (for isinstance) and name.
    assert isinstance(auto[0], brainstate.ShortTermState)
    assert type(auto[0]).__name__ == 'ShortTermState'
    text = str(step_auto.optimized_ir(1.0))
    assert text.count('state_read @autopack') == 1 and 'packed=' in text


def test_what_is_not_packed(soon):
    few = [brainstate.State(v) for v in _initial(N - 5)]  # under min_states
    big = [brainstate.State(jnp.zeros(AUTO_PACK['max_size'] + 1)) for _ in range(N)]
    mixed = [brainstate.State(v) for v in _initial(16)] + \
        [brainstate.State(jnp.zeros(3, jnp.int32)) for _ in range(3)]
    soon(few + big + mixed)
    for states in (few, big):
        step = _make_step(states)
        for _ in range(4):
            step(1.0)
        assert not _is_packed(step) and packed_slots(states[0]) is None
    @brainstate.transform.jit
    def add(x):
        for s in mixed:
            s.value = s.value + x

    for _ in range(4):
        add(1)
    assert packed_slots(mixed[0]) is not None  # the 16 float32 states
    assert packed_slots(mixed[-1]) is None  # 3 int32 states: too few of their dtype
    np.testing.assert_array_equal(mixed[-1].value, np.full(3, 4, np.int32))
    np.testing.assert_array_equal(mixed[0].value, np.asarray(_initial(1)[0]) + 4)


def test_opting_out(soon, monkeypatch):
    def packs_with(**options):
        states = [brainstate.State(v) for v in _initial(N)]
        soon(states)
        step = _make_step(states, **options)
        for _ in range(4):
            step(1.0)
        return _is_packed(step)

    assert packs_with()
    assert not packs_with(pack_states=False)
    with brainstate.environ.context(pack_states=False):
        assert not packs_with()
        assert packs_with(pack_states=True)  # the function's own option wins
    monkeypatch.setitem(AUTO_PACK, 'platforms', ('gpu', 'tpu'))  # states on CPU: left alone
    assert not packs_with()
    monkeypatch.setitem(AUTO_PACK, 'platforms', ('cpu',))
    monkeypatch.setitem(AUTO_PACK, 'enabled', False)  # BRAINSTATE_PACK_STATES=0
    assert not packs_with()
    from brainstate._state_pack import _env_flag
    for text, expected in (('0', False), ('off', False), ('1', True), ('eager', True)):
        monkeypatch.setenv('BRAINSTATE_PACK_STATES', text)
        assert _env_flag('BRAINSTATE_PACK_STATES', True) is expected
    # pack_states=True: from 2 states, at the first cached call.
    two = [brainstate.State(v) for v in _initial(2)]
    soon(two)
    step = _make_step(two, pack_states=True)
    step(1.0)
    step(1.0)
    assert _is_packed(step)


def test_eager_reads_and_writes_between_packed_steps(soon):
    states = [brainstate.ParamState(v) for v in _initial(N)]
    soon(states)
    step = _make_step(states)
    expected = [np.asarray(v) for v in _initial(N)]
    for i in range(8):
        step(jnp.float32(1.0))
        expected = [e * np.float32(0.5) + np.float32(1.0) for e in expected]
        if i % 2:
            states[5].value = states[5].value + 2.0  # an eager write of its slice
            expected[5] = expected[5] + np.float32(2.0)
        assert all(np.array_equal(s.value, e) for s, e in zip(states, expected))
    assert packed_slots(states[5]) is not None


def test_a_write_of_a_new_shape_or_dtype_takes_the_state_out_of_the_pack(soon):
    states = [brainstate.ParamState(v) for v in _initial(N)]
    soon(states)

    @brainstate.transform.jit
    def step(x):
        for s in states:
            s.value = s.value + x
        return states[3].value.sum()

    for _ in range(4):
        step(1.0)
    assert packed_slots(states[3]) is not None
    before = _values(states)
    states[3].value = jnp.arange(7.0)  # a new shape: no error, as for an unpacked state
    assert type(states[3]) is brainstate.ParamState and packed_slots(states[3]) is None
    assert states[3] in NEVER_AUTO_PACK
    np.testing.assert_array_equal(states[3].value, np.arange(7.0))
    states[4].value = states[4].value.astype(jnp.float16)  # a new dtype
    assert packed_slots(states[4]) is None and states[4].value.dtype == jnp.float16
    out = step(1.0)  # retraces: 18 states through the buffer, 2 on their own
    assert out == np.sum(np.arange(7.0) + 1)
    np.testing.assert_array_equal(states[3].value, np.arange(7.0) + 1)
    assert states[4].value.dtype == jnp.float16
    others = [i for i in range(N) if i not in (3, 4)]
    np.testing.assert_array_equal(_values([states[i] for i in others]), before[others] + 1)
    for _ in range(3):
        step(1.0)
    assert packed_slots(states[3]) is None  # never packed automatically again


def test_donation_never_deletes_arrays_the_user_holds(soon):
    states = [brainstate.ParamState(v) for v in _initial(N)]
    soon(states)
    step = _make_step(states)
    for _ in range(4):
        step(1.0)
    held = [s.value for s in states]  # slices of the buffer, held by the user
    copies = [np.asarray(h) for h in held]
    buffer = step._last.read_states[0]
    raw_buffer = buffer.value  # the buffer itself, read by the user
    step(1.0)
    assert not any(h.is_deleted() for h in held) and not raw_buffer.is_deleted()
    assert all(np.array_equal(h, c) for h, c in zip(held, copies))
    old = buffer._value
    step(1.0)
    assert old.is_deleted()  # nobody held it: updated in place


def test_a_step_that_will_pack_donates_its_buffer_only_once_packed(soon):
    """Before the pack, a candidate's calls keep its states' buffers (XLA compiles a program
    with many aliased buffers measurably slower, and the packed program replaces it); the
    packed program donates its one buffer. A step that never packs donates as always."""
    states = [brainstate.ParamState(v) for v in _initial(N)]
    plain = [brainstate.ParamState(v) for v in _initial(N)]
    soon(states)
    step, step_plain = _make_step(states), _make_step(plain, pack_states=False)
    assert 'tf.aliasing_output' not in step.lower(1.0).as_text()
    assert 'tf.aliasing_output' in step_plain.lower(1.0).as_text()
    olds = [s._value for s in states]
    step(1.0)
    step(1.0)
    assert not any(o.is_deleted() for o in olds)  # not donated before the pack
    assert not _is_packed(step)
    step(1.0)  # the 2nd cached call packs
    assert _is_packed(step)
    assert step.lower(1.0).as_text().count('tf.aliasing_output') == 1
    buffer = step._last.read_states[0]
    old = buffer._value
    step(1.0)
    assert old.is_deleted()  # the packed buffer is donated
    step_plain(1.0)  # (the arrays the states were made with are the user's: copied, then)
    old_plain = plain[0]._value
    step_plain(1.0)
    assert old_plain.is_deleted()
    for _ in range(2):  # (four calls each)
        step_plain(1.0)
    assert np.array_equal(_values(states), _values(plain))


def test_a_failed_call_leaves_every_value_intact(soon):
    states = [brainstate.ParamState(v) for v in _initial(N)]
    soon(states)

    @brainstate.transform.jit
    def step(x):
        for s in states:
            s.value = s.value + x.sum()
        if x.shape != ():
            raise RuntimeError('boom')
        return x

    for _ in range(4):
        step(jnp.float32(1.0))
    assert packed_slots(states[0]) is not None
    before = _values(states)
    with pytest.raises(RuntimeError, match='boom'):
        step(jnp.ones(2))
    with pytest.raises(TypeError):
        step('not an array')
    np.testing.assert_array_equal(_values(states), before)
    step(jnp.float32(1.0))
    np.testing.assert_array_equal(_values(states), before + 1)


def test_threads_calling_a_packed_step(soon):
    states = [brainstate.ShortTermState(jnp.zeros(3)) for _ in range(N)]
    soon(states)

    @brainstate.transform.jit
    def step():
        for s in states:
            s.value = s.value + 1.0

    errors = []

    def work():
        try:
            for _ in range(25):
                step()
                states[7].value  # an eager read while others write
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert packed_slots(states[0]) is not None
    np.testing.assert_array_equal(_values(states), np.full((N, 3), 100.0))


def test_grad_loops_and_vmap_inside_a_packed_step_are_bit_identical(soon):
    def build(pack_states):
        ws = [brainstate.ParamState(v) for v in _initial(N)]
        count = brainstate.ShortTermState(jnp.zeros(()))
        soon(ws + [count])

        def loss(x):
            return sum(jnp.sum((w.value * x - 1.0) ** 2) for w in ws)

        @brainstate.transform.jit(pack_states=pack_states)
        def train(xs):
            def body(x):
                grads = brainstate.transform.grad(loss, ws)(x)
                for w, g in zip(ws, grads):
                    w.value = w.value - 0.01 * g
                count.value = count.value + 1.0
                return loss(x)
            losses = brainstate.transform.for_loop(body, xs)
            batched = brainstate.transform.vmap(lambda x: loss(x))(xs)
            return losses, batched

        return ws, count, train

    ws_a, count_a, train_a = build(None)
    ws_b, count_b, train_b = build(False)
    xs = jnp.linspace(0.1, 1.0, 12).reshape(3, 4)
    for i in range(5):
        out_a, out_b = train_a(xs), train_b(xs)
        for a, b in zip(jax.tree.leaves(out_a), jax.tree.leaves(out_b)):
            assert np.array_equal(a, b)
    assert _is_packed(train_a) and not _is_packed(train_b)
    assert np.array_equal(_values(ws_a), _values(ws_b))
    assert count_a.value == count_b.value == 15
    # Eager grad of the same loss over the (now packed) states agrees too.
    grads_a = brainstate.transform.grad(lambda x: sum(jnp.sum(w.value * x) for w in ws_a),
                                        ws_a)(xs[0])
    grads_b = brainstate.transform.grad(lambda x: sum(jnp.sum(w.value * x) for w in ws_b),
                                        ws_b)(xs[0])
    assert all(np.array_equal(a, b) for a, b in zip(grads_a, grads_b))


def test_replacing_a_state_attribute_of_a_module_after_packing(soon):
    class Net(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            for i, v in enumerate(_initial(N)):
                setattr(self, f'w{i}', brainstate.ParamState(v))

        def total(self):
            return sum(getattr(self, f'w{i}').value.sum() for i in range(N))

    net = Net()
    soon(list(net.states().values()))

    @brainstate.transform.jit
    def step():
        for state in net.states().values():
            state.value = state.value + 1.0
        return net.total()

    for _ in range(4):
        step()
    assert packed_slots(net.w0) is not None
    graphdef_before = brainstate.graph.treefy_split(net)[0]
    net.w2 = brainstate.ParamState(jnp.full(4, 100.0))
    soon([net.w2])
    total = step()
    expected = sum(np.asarray(v).sum() + 4 * 5 for v in _initial(N)) - \
        (np.asarray(_initial(N)[2]).sum() + 20) + 101 * 4
    np.testing.assert_allclose(total, expected, rtol=1e-6)
    np.testing.assert_array_equal(net.w2.value, np.full(4, 101.0))
    # The model's structure is the user's: packing does not show in its graph definition.
    assert brainstate.graph.treefy_split(net)[0] == graphdef_before


def test_vmap_out_states_giving_a_packed_state_the_batch_axis(soon):
    states = [brainstate.ShortTermState(jnp.zeros(3)) for _ in range(N)]
    soon(states)

    @brainstate.transform.jit
    def step(x):
        for s in states:
            s.value = s.value + x

    for _ in range(4):
        step(1.0)
    acc, eager_acc = states[0], states[1]
    assert packed_slots(acc) is not None
    xs = jnp.arange(6.).reshape(2, 3)

    @brainstate.transform.jit
    def batched(xs):
        brainstate.transform.vmap(lambda x: acc.__setattr__('value', acc.value + x),
                                  out_states=acc)(xs)
        for s in states[2:]:
            s.value = s.value + 1

    batched(xs)  # acc leaves the pack, with the batch axis; the others stay packed
    np.testing.assert_array_equal(acc.value, 4.0 + xs)
    assert packed_slots(acc) is None and packed_slots(states[2]) is not None
    np.testing.assert_array_equal(_values(states[2:]), np.full((N - 2, 3), 5.0))
    brainstate.transform.vmap(lambda x: eager_acc.__setattr__('value', eager_acc.value + x),
                              out_states=eager_acc)(xs)  # eagerly, too
    np.testing.assert_array_equal(eager_acc.value, 4.0 + xs)
    assert packed_slots(eager_acc) is None
    step(1.0)  # retraces with the two batched states on their own
    np.testing.assert_array_equal(acc.value, 5.0 + xs)
    np.testing.assert_array_equal(eager_acc.value, 5.0 + xs)
    np.testing.assert_array_equal(states[5].value, np.full(3, 6.0))


def test_copy_from_and_copies_of_automatically_packed_states(soon):
    import copy
    import pickle
    states = [brainstate.ParamState(v) for v in _initial(N)]
    soon(states)
    step = _make_step(states)
    for _ in range(4):
        step(1.0)
    assert packed_slots(states[0]) is not None
    plain = brainstate.ParamState(jnp.zeros(4))
    plain.copy_from(states[0])  # an unpacked state taking a packed one's value
    np.testing.assert_array_equal(plain.value, states[0].value)
    assert packed_slots(plain) is None and type(plain) is brainstate.ParamState
    for clone in (copy.deepcopy(states[1]), pickle.loads(pickle.dumps(states[1]))):
        assert type(clone) is brainstate.ParamState and packed_slots(clone) is None
        np.testing.assert_array_equal(clone.value, states[1].value)


def test_pack_states_option_must_be_a_bool_or_none():
    with pytest.raises(brainstate.ArgumentTypeError, match='`pack_states` must be True, False or None'):
        brainstate.transform.jit(lambda x: x, pack_states='yes')
