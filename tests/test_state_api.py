"""The published State API on our State: copies, references, tags, hooks, trace stacks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import _state


def test_copy_replace_copy_from_and_refs():
    s = brainstate.ParamState(jnp.arange(3.0), name='w', tag='train')
    c = s.copy()
    assert type(c) is brainstate.ParamState and c is not s and c.name == 'w'
    assert c.tag == {'train'} and c.tag is not s.tag
    c.value = c.value + 1
    np.testing.assert_array_equal(s.value, jnp.arange(3.0))        # independent
    r = s.replace(jnp.zeros(2), _name='z')
    assert r.name == 'z' and r.value.shape == (2,) and s.value.shape == (3,)
    target = brainstate.ParamState(jnp.ones(5))
    target.copy_from(s)
    np.testing.assert_array_equal(target.value, s.value)
    with pytest.raises(ValueError):
        target.copy_from(brainstate.State(jnp.ones(1)))
    ref = s.to_state_ref()
    leaves = jax.tree.leaves(ref)
    assert len(leaves) == 1 and ref.type is brainstate.ParamState
    back = jax.tree.map(lambda x: x * 2, ref).to_state()
    np.testing.assert_array_equal(back.value, 2 * jnp.arange(3.0))
    assert back.tag == {'train'} and s.numel() == 3


def test_class_tree_as_published():
    assert issubclass(brainstate.ParamState, brainstate.LongTermState)
    assert issubclass(brainstate.BatchState, brainstate.LongTermState)
    assert issubclass(brainstate.HiddenState, brainstate.ShortTermState)
    assert issubclass(brainstate.DelayState, brainstate.ShortTermState)
    with pytest.raises(TypeError):
        brainstate.HiddenState(1.0)


def test_hidden_group_and_tree_states():
    g = brainstate.HiddenGroupState(jnp.zeros((4, 3)))
    assert g.varshape == (4,) and g.num_state == 3
    g.set_value({1: jnp.ones(4), '2': 2 * jnp.ones(4)})
    np.testing.assert_array_equal(g.get_value(1), jnp.ones(4))
    np.testing.assert_array_equal(g.value[..., 2], 2 * jnp.ones(4))
    with pytest.raises(ValueError):
        g.set_value({5: jnp.ones(4)})
    t = brainstate.HiddenTreeState({'v': jnp.zeros(2), 'i': jnp.ones(2)})
    assert t.num_state == 2
    t.set_value({'v': jnp.full(2, 3.0)})
    np.testing.assert_array_equal(t.get_value('v'), jnp.full(2, 3.0))
    np.testing.assert_array_equal(t.get_value('i'), jnp.ones(2))


def test_hooks_transform_cancel_and_cost_nothing_when_absent():
    assert not _state._observed
    s = brainstate.State(jnp.zeros(2))
    seen = []
    read = s.register_hook('read', lambda ctx: seen.append(('read', ctx.state is s)))
    clip = s.register_hook('write_before',
                           lambda ctx: setattr(ctx, 'transformed_value',
                                               jnp.clip(ctx.transformed_value, -1, 1)))
    assert _state._observed
    s.value = jnp.array([5.0, -5.0])
    np.testing.assert_array_equal(s.value, jnp.array([1.0, -1.0]))
    assert seen == [('read', True)]

    def refuse(ctx):
        ctx.cancel = True
        ctx.cancel_reason = 'frozen'

    with s.temporary_hook('write_before', refuse, priority=10):
        with pytest.raises(brainstate.HookCancellationError, match='frozen'):
            s.value = jnp.zeros(2)
    np.testing.assert_array_equal(s._value, jnp.array([1.0, -1.0]))    # unchanged
    read.remove(), clip.remove()
    assert not _state._observed                                          # back to the fast path


def test_global_hooks_and_error_policy():
    writes = []
    handle = brainstate.register_state_hook('write_after', lambda ctx: writes.append(ctx.value))
    try:
        a = brainstate.State(jnp.zeros(()))
        a.value = jnp.ones(())
        assert len(writes) == 1 and brainstate.has_state_hooks('write_after')
    finally:
        handle.remove()
    assert not brainstate.has_state_hooks()
    manager = brainstate.HookManager(brainstate.HookConfig(on_error='raise'))
    manager.register_hook('read', lambda ctx: 1 / 0)
    with pytest.raises(brainstate.HookExecutionError):
        manager.execute_read_hooks(1, None)
    with pytest.raises(brainstate.HookRegistrationError):
        manager.register_hook('nope', lambda ctx: None)


def test_state_trace_stack_records_reads_writes_and_originals():
    a, b = brainstate.State(jnp.ones(2)), brainstate.State(jnp.zeros(2))
    with brainstate.StateTraceStack() as trace:
        b.value = a.value * 3
        new = brainstate.State(jnp.zeros(1))   # created inside: not recorded
        new.value = new.value + 1
    assert trace.get_read_states() == (a,) and trace.get_write_states() == (b,)
    assert trace.been_writen == [False, True]
    np.testing.assert_array_equal(trace.original_state_values[1], jnp.zeros(2))
    trace.recovery_original_values()
    np.testing.assert_array_equal(b.value, jnp.zeros(2))
    assert not _state._observed


def test_trace_stack_sees_reads_inside_a_transform():
    a = brainstate.State(jnp.ones(2))

    @brainstate.transform.jit
    def f():
        return a.value.sum()

    with brainstate.StateTraceStack() as trace:
        assert float(f()) == 2.0
    assert a in trace.states


def test_catch_new_states_and_value_tree_check():
    with brainstate.catch_new_states('fresh') as catcher:
        x = brainstate.ShortTermState(jnp.zeros(1))
    assert catcher.get_states() == [x] and 'fresh' in x.tag
    assert catcher.get_by_tag('fresh') == [x]
    s = brainstate.State({'a': jnp.zeros(1)})
    with brainstate.check_state_value_tree():
        with pytest.raises(ValueError, match='tree structure'):
            s.value = (jnp.zeros(1),)
    assert s.value['a'].shape == (1,)
    with pytest.raises(ValueError):
        s.restore_value(jnp.zeros(1))
    with pytest.raises(ValueError, match='copy_from'):
        with brainstate.StateTraceStack():
            s.value = brainstate.State(jnp.zeros(1))


def test_state_dict_manager():
    p, h = brainstate.ParamState(jnp.ones(1)), brainstate.HiddenState(jnp.zeros(1))
    m = brainstate.StateDictManager({'p': p, 'h': h})
    params, rest = m.split(brainstate.ParamState)
    assert list(params) == ['p'] and list(rest) == ['h']
    m.assign_values({'h': jnp.full(1, 7.0)})
    assert float(h.value[0]) == 7.0
    assert set(m.to_dict_values()) == {'p', 'h'}
