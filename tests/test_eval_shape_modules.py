"""eval_shape of a function that builds a Module: an abstract module, shapes only."""

import jax
import jax.numpy as jnp
import pytest

import brainstate

T = brainstate.transform


class Net(brainstate.nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.w = brainstate.ParamState(jnp.ones((n_in, n_out)))
        self.count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    def __call__(self, x):
        self.count.value += 1
        return x @ self.w.value


def test_abstract_module_has_the_real_modules_shapes_and_no_arrays():
    abstract = T.eval_shape(lambda: brainstate.nn.LSTMCell(3, 4))
    real = brainstate.nn.LSTMCell(3, 4)
    assert isinstance(abstract, brainstate.nn.LSTMCell)
    got = {k: jax.tree.leaves(s.value) for k, s in abstract.states().items()}
    want = {k: jax.tree.leaves(s.value) for k, s in real.states().items()}
    assert got.keys() == want.keys()
    for key in want:
        for a, r in zip(got[key], want[key]):
            assert isinstance(a, jax.ShapeDtypeStruct)
            assert (a.shape, a.dtype) == (r.shape, r.dtype)


def test_result_mixes_modules_and_values_and_arguments_shape_the_module():
    def build(x):
        net = Net(x.shape[-1], 5)
        return {'net': net, 'y': net(x)}

    out = T.eval_shape(build, jnp.ones((2, 3)))
    assert isinstance(out['net'], Net)
    assert out['y'] == jax.ShapeDtypeStruct((2, 5), jnp.float32)
    assert out['net'].w.value == jax.ShapeDtypeStruct((3, 5), jnp.float32)
    assert out['net'].count.value == jax.ShapeDtypeStruct((), jnp.int32)


def test_existing_states_are_untouched():
    outer = brainstate.State(jnp.arange(3.0))

    def build():
        outer.value = outer.value + 1.0
        return Net(2, 2)

    T.eval_shape(build)
    assert jnp.array_equal(outer.value, jnp.arange(3.0))


def test_abstract_module_traces_but_does_not_run():
    net = T.eval_shape(lambda: Net(3, 2))
    nested = T.eval_shape(lambda x: net(x), jnp.ones((4, 3)))
    assert nested == jax.ShapeDtypeStruct((4, 2), jnp.float32)

    step = T.jit(lambda x: net(x))
    assert step.eval_shape(jnp.ones((4, 3))) == jax.ShapeDtypeStruct((4, 2), jnp.float32)
    with pytest.raises(brainstate.StateArgumentError, match=r'Net\.(count|w).*abstract'):
        step(jnp.ones((4, 3)))
    # The failed call changed nothing: the states are still abstract, not tracers.
    assert isinstance(net.w.value, jax.ShapeDtypeStruct)


def test_init_all_states_gives_an_abstract_module_real_hidden_states():
    cell = T.eval_shape(lambda: brainstate.nn.LSTMCell(3, 4))
    brainstate.nn.init_all_states(cell)
    assert isinstance(cell.h.value, jax.Array) and cell.h.value.shape == (4,)
