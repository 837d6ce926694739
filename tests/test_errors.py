"""Errors teach, and nothing is lost: failed calls leave every State as it was."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.v = brainstate.HiddenState(jnp.zeros(3))
        self.w = brainstate.ParamState({'weight': jnp.ones((3, 3)), 'bias': jnp.zeros(3)})


def assert_unchanged(net):
    np.testing.assert_allclose(net.v.value, np.zeros(3))
    np.testing.assert_allclose(net.w.value['weight'], np.ones((3, 3)))
    for leaf in jax.tree.leaves([s.value for s in net.states().values()]):
        assert not isinstance(leaf, jax.core.Tracer)


@pytest.mark.parametrize('bad_value, message', [
    (jnp.zeros(4), r'State Net\.v holds float32\[3\] but the traced code wrote float32\[4\]'),
    (jnp.zeros(3, jnp.int32), r'State Net\.v holds float32\[3\] but .* int32\[3\]'),
    ({'a': jnp.zeros(3)}, r'State Net\.v holds a value with tree structure'),
])
def test_traced_write_with_wrong_shape_dtype_or_tree(bad_value, message):
    net = Net()

    @brainstate.transform.jit
    def step():
        net.v.value = bad_value

    with pytest.raises(brainstate.StateValueError, match=message):
        step()
    assert_unchanged(net)


def test_wrong_leaf_of_a_tree_state_is_named():
    net = Net()

    @brainstate.transform.jit
    def step():
        net.w.value = {'weight': jnp.ones((3, 3)), 'bias': jnp.zeros(4)}

    with pytest.raises(brainstate.StateValueError, match=r'Net\.w \(leaf 0 of 2\)'):
        step()


def test_exception_in_user_code_leaves_every_state_unchanged():
    net = Net()

    @brainstate.transform.jit
    def step(x):
        net.v.value = net.v.value + x
        net.w.value = jax.tree.map(lambda a: a * 2, net.w.value)
        raise RuntimeError('user bug')

    with pytest.raises(RuntimeError, match='user bug'):
        step(jnp.ones(3))
    assert_unchanged(net)
    assert not brainstate._state.TRACE_STACK


def test_bad_argument_shape_inside_the_function_leaves_states_unchanged():
    net = Net()

    @brainstate.transform.jit
    def step(x):
        net.v.value = net.v.value + x @ net.w.value['weight']
        return net.v.value

    step(jnp.ones(3))
    before = net.v.value
    with pytest.raises(TypeError):
        step(jnp.ones(4))
    np.testing.assert_allclose(net.v.value, before)


def test_state_passed_as_argument_or_returned():
    net = Net()
    with pytest.raises(brainstate.StateArgumentError, match=r'received State Net\.v'):
        brainstate.transform.jit(lambda s: s.value)(net.v)
    with pytest.raises(brainstate.StateArgumentError, match=r'returned State Net\.v'):
        brainstate.transform.jit(lambda: net.v)()
    with pytest.raises(brainstate.StateArgumentError, match=r"at \['key'\]"):
        brainstate.transform.jit(lambda: {'key': net.v})()


def test_raw_jax_jit_over_stateful_code_is_explained():
    net = Net()

    @jax.jit
    def step(x):
        net.v.value = net.v.value + x
        return net.v.value

    with pytest.raises(brainstate.TracerLeakError) as info:
        step(jnp.ones(3))
    message = str(info.value)
    assert 'Net.v' in message and 'brainstate.transform.jit' in message
    assert_unchanged(net)


def test_raw_jax_vmap_over_stateful_code_is_explained():
    net = Net()
    with pytest.raises(brainstate.TracerLeakError, match=r'Net\.v.*brainstate\.transform'):
        jax.vmap(lambda x: setattr(net.v, 'value', x))(jnp.ones((2, 3)))
    assert_unchanged(net)


def test_raw_jax_vmap_inside_a_brainstate_trace_is_explained():
    net = Net()

    @brainstate.transform.jit
    def step(xs):
        def per_example(x):
            net.v.value = net.v.value + x
            return x
        return jax.vmap(per_example)(xs)

    with pytest.raises(brainstate.BatchAxisError, match=r'Net\.v.*brainstate\.transform\.vmap'):
        step(jnp.ones((2, 3)))
    assert_unchanged(net)


def test_brainstate_jit_called_inside_raw_jax_jit_is_explained():
    net = Net()

    @brainstate.transform.jit
    def step():
        net.v.value = net.v.value + 1

    with pytest.raises(brainstate.TracerLeakError, match='inside a raw JAX transform'):
        jax.jit(lambda: step())()
    assert_unchanged(net)


def test_every_error_is_a_brainstate_error():
    for cls in (brainstate.StateValueError, brainstate.TracerLeakError,
                brainstate.StateArgumentError, brainstate.BatchAxisError,
                brainstate.ir.IRVerificationError):
        assert issubclass(cls, brainstate.BrainStateError)


def test_non_array_argument_is_explained():
    with pytest.raises(TypeError, match='static_argnums'):
        brainstate.transform.jit(lambda x: x)('text')
