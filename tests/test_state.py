"""State: holding values, roles by class, identity, display, and eager assignment rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import _state


def test_value_get_and_set():
    s = brainstate.State(jnp.zeros(3))
    s.value = s.value + 1
    np.testing.assert_allclose(s.value, np.ones(3))


def test_holds_any_pytree_of_arrays():
    s = brainstate.ParamState({'w': jnp.ones((2, 3)), 'b': [jnp.zeros(3), jnp.zeros(())]})
    assert s.value['b'][1].shape == ()
    assert len(s.avals) == 3


def test_numpy_and_python_numbers_become_jax_arrays():
    s = brainstate.State({'a': np.ones(2, np.float32), 'n': 3, 'x': 1.5})
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(s.value))
    assert s.value['n'].dtype == jnp.int32
    assert s.value['x'].dtype == jnp.float32


def test_non_array_leaf_is_a_clear_error():
    with pytest.raises(brainstate.StateValueError, match='pytree of arrays'):
        brainstate.State({'name': 'hello'}, name='bad')


def test_role_classes():
    assert issubclass(brainstate.HiddenState, brainstate.ShortTermState)
    assert issubclass(brainstate.BatchState, brainstate.LongTermState)
    for cls in (brainstate.ParamState, brainstate.ShortTermState, brainstate.LongTermState):
        assert issubclass(cls, brainstate.State)

    class MyState(brainstate.ParamState):
        pass

    assert isinstance(MyState(jnp.zeros(1)), brainstate.ParamState)


def test_hash_and_equality_by_identity():
    a = brainstate.State(jnp.zeros(2))
    b = brainstate.State(jnp.zeros(2))
    assert a != b and a == a
    assert len({a, b, a}) == 2


def test_repr_shows_shape_and_dtype():
    s = brainstate.ParamState({'w': jnp.ones((3, 2)), 'b': jnp.zeros(2)}, name='lin')
    text = repr(s)
    assert text.startswith('ParamState(')
    assert 'f32[3,2]' in text and 'f32[2]' in text and "name='lin'" in text


def test_metadata_and_tag():
    s = brainstate.State(jnp.zeros(1), tag='fast', unit='mV')
    assert s.tag == {'fast'} and s.unit == 'mV'   # tags are a set, as published


def test_label_is_name_or_class_and_serial():
    assert brainstate.State(jnp.zeros(1), name='v').label() == 'v'
    assert brainstate.HiddenState(jnp.zeros(1)).label().startswith('HiddenState#')


def test_eager_assignment_of_a_tracer_is_explained():
    s = brainstate.State(jnp.zeros(3), name='v')

    def raw(x):
        s.value = x
        return x

    with pytest.raises(brainstate.TracerLeakError, match='brainstate.transform.jit') as info:
        jax.jit(raw)(jnp.ones(3))
    assert 'State v' in str(info.value)
    np.testing.assert_allclose(s.value, np.zeros(3))
    assert not isinstance(s.value, jax.core.Tracer)


def test_shape_change_outside_a_trace_is_allowed_and_bumps_the_epoch():
    s = brainstate.State(jnp.zeros(3))
    epoch = _state.STRUCTURE_EPOCH[0]
    s.value = jnp.ones(3)
    assert _state.STRUCTURE_EPOCH[0] == epoch
    s.value = jnp.ones(4)
    assert _state.STRUCTURE_EPOCH[0] == epoch + 1
    assert s.avals[0].shape == (4,)


def test_states_cannot_be_copied():
    import copy
    with pytest.raises(TypeError, match='identity'):
        copy.copy(brainstate.State(jnp.zeros(1)))
