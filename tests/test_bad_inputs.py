"""A sweep of the public entry points with bad input and mid-call failures.

For every case: the exception is a clear one (a ``brainstate.BrainStateError`` where brainstate
detects the problem), its message names the state path or the argument and says what to do,
every State holds exactly its previous value and no tracer, and a following good call of the
same transform still works (nothing cached from the failed call).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import transform as T

BSE = brainstate.BrainStateError


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.a = brainstate.HiddenState(jnp.zeros(3))
        self.b = brainstate.ParamState(jnp.ones(3))
        self.i = brainstate.ShortTermState(jnp.zeros((), jnp.int32))


@pytest.fixture
def net():
    return Net()


def snapshot(*owners):
    """Every State of the given modules (or the States themselves), with a copy of its value."""
    states = []
    for owner in owners:
        states.extend(owner.states().values() if isinstance(owner, brainstate.Module)
                      else [owner])
    return [(s, [_plain(leaf) for leaf in jax.tree.leaves(s.value)]) for s in states]


def _plain(leaf):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.array(leaf)


def assert_untouched(snap):
    assert not brainstate._state.TRACE_STACK
    for state, before in snap:
        leaves = jax.tree.leaves(state._value)
        assert not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves), state.label()
        assert len(leaves) == len(before), state.label()
        for leaf, old in zip(leaves, before):
            leaf = _plain(leaf)
            np.testing.assert_array_equal(leaf, old, err_msg=state.label())
            assert leaf.dtype == old.dtype and leaf.shape == old.shape, state.label()


# -- bodies that write some states and then fail -----------------------------------------------

def raise_after_writes(net):
    net.a.value = net.a.value + 1
    net.b.value = net.b.value * 2
    net.i.value = net.i.value + 1
    raise RuntimeError('user bug')


def wrong_shape_after_writes(net):
    net.a.value = net.a.value + 1
    net.b.value = jnp.zeros(4)


def wrong_dtype_after_writes(net):
    net.a.value = net.a.value + 1
    net.i.value = jnp.float32(1.)


FAILURES = {
    'user-exception': (raise_after_writes, RuntimeError, 'user bug'),
    'wrong-shape': (wrong_shape_after_writes, brainstate.StateValueError,
                    r'State Net\.b holds float32\[3\] but the traced code wrote float32\[4\].*'
                    r'reshape'),
    'wrong-dtype': (wrong_dtype_after_writes, brainstate.StateValueError,
                    r'State Net\.i holds int32\[\] but the traced code wrote float32\[\].*'
                    r'astype\(int32\)'),
}


def good(net):
    net.a.value = net.a.value + 1


# Each entry: (call the transform with `body(net)` inside, check the good call's effect).
# `body` writes states and then fails; the good call runs `good(net)` through the same transform.
def _for_loop(body, net):
    return T.for_loop(lambda x: body(net), jnp.arange(2))


def _for_loop_in_jit(body, net):
    return T.jit(lambda: T.for_loop(lambda x: body(net), jnp.arange(2)))()


def _scan(body, net):
    return T.scan(lambda c, x: ((body(net), c)[1], None), jnp.zeros(()), jnp.arange(2))


def _cond(body, net):
    return T.jit(lambda p: T.cond(p, lambda: body(net), lambda: None))(True)


def _cond_else(body, net):
    return T.cond(False, lambda: None, lambda: body(net))


def _switch(body, net):
    return T.switch(1, [lambda: None, lambda: body(net)])


def _ifelse(body, net):
    return T.ifelse([False, True], [lambda: None, lambda: body(net)])


def _while(body, net):
    return T.while_loop(lambda c: c < 2, lambda c: (body(net), c + 1)[1], 0)


def _bounded_while(body, net):
    return T.bounded_while_loop(lambda c: c < 2, lambda c: (body(net), c + 1)[1], 0,
                                max_steps=4)


def _grad(body, net):
    return T.grad(lambda: (body(net), net.b.value.sum())[1], net.b)()


def _grad_in_jit(body, net):
    return T.jit(lambda: T.grad(lambda: (body(net), net.b.value.sum())[1], net.b)())()


def _value_and_grad(body, net):
    return T.value_and_grad(lambda x: (body(net), (x * net.b.value).sum())[1],
                            argnums=0)(jnp.ones(3))


def _jacrev(body, net):
    return T.jacrev(lambda: (body(net), net.b.value * 2)[1], net.b)()


def _jacfwd(body, net):
    return T.jacfwd(lambda: (body(net), net.b.value * 2)[1], net.b)()


def _hessian(body, net):
    return T.hessian(lambda: (body(net), (net.b.value ** 2).sum())[1], net.b)()


def _vector_grad(body, net):
    return T.vector_grad(lambda: (body(net), net.b.value * 2)[1], net.b)()


def _fwd_grad(body, net):
    return T.fwd_grad(lambda: (body(net), net.b.value.sum())[1], net.b)()


def _vjp(body, net):
    return T.vjp(lambda x: (body(net), x * net.b.value)[1], jnp.ones(3))


def _jvp(body, net):
    return T.jvp(lambda x: (body(net), x * net.b.value)[1], (jnp.ones(3),), (jnp.ones(3),))


def _vmap(body, net):
    return T.vmap(lambda x: (body(net), x)[1])(jnp.ones((2, 3)))


def _vmap_in_jit(body, net):
    return T.jit(T.vmap(lambda x: (body(net), x)[1]))(jnp.ones((2, 3)))


def _map(body, net):
    return T.map(lambda x: (body(net), x)[1], jnp.ones((2, 3)))


def _checkpoint_in_jit(body, net):
    return T.jit(T.checkpoint(lambda x: (body(net), x)[1]))(jnp.ones(3))


def _checkpointed_for_loop(body, net):
    return T.checkpointed_for_loop(lambda x: body(net), jnp.arange(2))


def _eval_shape(body, net):
    return T.eval_shape(lambda x: (body(net), x)[1], jnp.ones(3))


def _make_jaxpr(body, net):
    return T.make_jaxpr(lambda x: (body(net), x)[1])(jnp.ones(3))


def _jit(body, net):
    return T.jit(lambda x: (body(net), x)[1])(jnp.ones(3))


TRANSFORMS = {
    'jit': (_jit, 1), 'for_loop': (_for_loop, 2), 'for_loop-in-jit': (_for_loop_in_jit, 2),
    'scan': (_scan, 2), 'cond': (_cond, 1), 'cond-else': (_cond_else, 1), 'switch': (_switch, 1),
    'ifelse': (_ifelse, 1), 'while_loop': (_while, 2), 'bounded_while_loop': (_bounded_while, 2),
    'grad': (_grad, 1), 'grad-in-jit': (_grad_in_jit, 1), 'value_and_grad': (_value_and_grad, 1),
    'jacrev': (_jacrev, 1), 'jacfwd': (_jacfwd, 1), 'hessian': (_hessian, 1),
    'vector_grad': (_vector_grad, 1), 'fwd_grad': (_fwd_grad, 1), 'vjp': (_vjp, 1),
    'jvp': (_jvp, 1), 'vmap': (_vmap, 1), 'vmap-in-jit': (_vmap_in_jit, 1), 'map': (_map, 2),
    'checkpoint-in-jit': (_checkpoint_in_jit, 1),
    'checkpointed_for_loop': (_checkpointed_for_loop, 2),
    'eval_shape': (_eval_shape, 0), 'make_jaxpr': (_make_jaxpr, 0),
}


@pytest.mark.parametrize('failure', list(FAILURES))
@pytest.mark.parametrize('name', list(TRANSFORMS))
def test_failure_inside_a_transform_leaves_every_state_unchanged(name, failure):
    call, good_increments = TRANSFORMS[name]
    body, error, message = FAILURES[failure]
    net = Net()
    snap = snapshot(net)
    with pytest.raises(error, match=message):
        call(body, net)
    assert_untouched(snap)
    # The same transform still works afterwards (and its updates are kept).
    call(good, net)
    np.testing.assert_allclose(net.a.value, np.full(3, float(good_increments)))
    np.testing.assert_allclose(net.b.value, np.ones(3))


def test_failure_inside_an_eager_checkpoint_leaves_states_unchanged(net):
    snap = snapshot(net)
    with pytest.raises(RuntimeError, match='user bug'):
        T.checkpoint(lambda x: (raise_after_writes(net), x)[1])(jnp.ones(3))
    assert_untouched(snap)


# -- a cached jit called with bad arguments ----------------------------------------------------

def _cached_step(net):
    @T.jit
    def step(x):
        net.a.value = net.a.value + x
        net.i.value = net.i.value + 1
        return (net.a.value * net.b.value).sum()
    step(jnp.ones(3))
    return step


@pytest.mark.parametrize('bad, error, message', [
    (jnp.ones(4), TypeError, r'add got incompatible shapes for broadcasting: \(3,\), \(4,\)'),
    (jnp.ones((2, 3)), brainstate.StateValueError,
     r'State Net\.a holds float32\[3\] but the traced code wrote float32\[2,3\]'),
    ('text', brainstate.ArgumentTypeError, r'step received a str at positional argument 0.*'
                                           r'static_argnums'),
    ([jnp.ones(3)], TypeError, 'list'),
])
def test_cached_jit_with_a_bad_argument(net, bad, error, message):
    step = _cached_step(net)
    snap = snapshot(net)
    with pytest.raises(error, match=message):
        step(bad)
    assert_untouched(snap)
    assert float(step(jnp.ones(3))) == pytest.approx(6.)
    np.testing.assert_allclose(net.a.value, np.full(3, 2.))
    assert int(net.i.value) == 2


def test_cached_jit_with_a_dtype_that_changes_a_written_state(net):
    @T.jit
    def step(x):
        net.i.value = net.i.value + x
    step(jnp.int32(1))
    snap = snapshot(net)
    with pytest.raises(brainstate.StateValueError, match=r'Net\.i holds int32\[\].*float32'):
        step(jnp.float32(1.))
    assert_untouched(snap)
    step(jnp.int32(2))
    assert int(net.i.value) == 3


def test_jit_with_missing_or_extra_arguments(net):
    step = _cached_step(net)
    snap = snapshot(net)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
        step()
    with pytest.raises(TypeError, match='takes 1 positional argument but 2 were given'):
        step(jnp.ones(3), jnp.ones(3))
    with pytest.raises(TypeError, match="unexpected keyword argument 'y'"):
        step(jnp.ones(3), y=1.)
    assert_untouched(snap)
    step(jnp.ones(3))
    np.testing.assert_allclose(net.a.value, np.full(3, 2.))


# -- grad misuse ------------------------------------------------------------------------------

@pytest.mark.parametrize('make, error, message', [
    (lambda n: T.grad(lambda: n.b.value.sum(), [n.b, n.a]),
     brainstate.GradientError, r'grad state Net\.a is never read.*Remove it from grad_states'),
    (lambda n: T.grad(lambda: n.b.value.sum() + n.i.value, [n.b, n.i]),
     brainstate.GradientError, r'grad state Net\.i holds int32\[\].*no gradient.*ParamState'),
    (lambda n: T.grad(lambda: n.b.value * 2, n.b),
     brainstate.GradientError, r'shape \(3,\), but grad needs a scalar.*\.sum\(\).*vector_grad'),
    (lambda n: T.value_and_grad(lambda: n.b.value * 2, n.b),
     brainstate.GradientError, r'value_and_grad needs a scalar'),
    (lambda n: T.fwd_grad(lambda: n.b.value * 2, n.b),
     brainstate.GradientError, r'fwd_grad needs a scalar'),
    (lambda n: T.jacrev(lambda: n.b.value, [n.a, n.b]),
     brainstate.GradientError, r'jacrev: grad state Net\.a is never read'),
    (lambda n: T.grad(lambda: n.b.value.sum(), n.b, has_aux=True),
     brainstate.GradientError, r'has_aux=True: the function must return a pair'),
    (lambda n: T.grad(lambda: n.b.value.sum(), [n.b, 3]),
     brainstate.ArgumentTypeError, r'grad_states\[1\] is a int'),
    (lambda n: T.grad(lambda: n.b.value.sum(), jnp.ones(3)),
     brainstate.ArgumentTypeError, r'grad_states must be a State, a list/tuple of States'),
])
def test_grad_misuse(net, make, error, message):
    snap = snapshot(net)
    with pytest.raises(error, match=message):
        def f():
            net.a.value = net.a.value + 1  # a write that must not survive the failure
            return make(net)()
        T.jit(f)()
    assert_untouched(snap)
    grads = T.grad(lambda: (net.b.value ** 2).sum(), net.b)()
    np.testing.assert_allclose(grads, np.full(3, 2.))


@pytest.mark.parametrize('argnums, error, message', [
    (2, brainstate.GradientError, r'argnums=2 asks for positional argument 2, but the call has 1'),
    (-3, brainstate.GradientError, r'argnums=-3 has a negative position'),
    ((0, 0), brainstate.GradientError, r'repeats a position'),
    ((), brainstate.GradientError, r'argnums is empty'),
    ('x', brainstate.ArgumentTypeError, r"argnums must be an int or a sequence of ints, got 'x'"),
    (1.0, brainstate.ArgumentTypeError, r'argnums must be an int or a sequence of ints, got 1\.0'),
])
def test_grad_with_bad_argnums(net, argnums, error, message):
    snap = snapshot(net)

    def loss(x):
        net.a.value = net.a.value + x
        return (x * net.b.value).sum()

    with pytest.raises(error, match=message):
        T.grad(loss, argnums=argnums)(jnp.ones(3))
    assert_untouched(snap)
    np.testing.assert_allclose(T.grad(loss, argnums=0)(jnp.ones(3)), np.ones(3))
    np.testing.assert_allclose(net.a.value, np.ones(3))


def test_grad_of_an_integer_argument_is_jax_error_naming_the_dtype(net):
    snap = snapshot(net)
    with pytest.raises(TypeError, match='grad requires real- or complex-valued inputs.*int32'):
        T.grad(lambda x: (x * net.b.value).sum(), argnums=0)(jnp.ones(3, jnp.int32))
    assert_untouched(snap)


# -- vmap / map -------------------------------------------------------------------------------

def test_vmap_with_mismatched_axis_sizes(net):
    snap = snapshot(net)

    @T.vmap
    def f(x, y):
        net.a.value = net.a.value + 1
        return x + y

    with pytest.raises(brainstate.ArgumentValueError,
                       match=r'disagree on the batch size \(positional argument 0: 2; '
                             r'positional argument 1: 3\)'):
        f(jnp.ones((2, 3)), jnp.ones((3, 3)))
    with pytest.raises(brainstate.ArgumentValueError, match=r'positional argument 0.*no axis 0'):
        f(jnp.float32(1.), jnp.ones((2, 3)))
    with pytest.raises(brainstate.ArgumentValueError, match=r'in_axes=\(0, 0\) has 2 entries'):
        T.vmap(lambda x: x, in_axes=(0, 0))(jnp.ones((2, 3)))
    with pytest.raises(brainstate.ArgumentValueError, match='different leading axis sizes'):
        T.map(lambda x, y: x + y, jnp.ones((2, 3)), jnp.ones((3, 3)))
    assert_untouched(snap)
    np.testing.assert_allclose(f(jnp.ones((2, 3)), jnp.ones((2, 3))), np.full((2, 3), 2.))
    np.testing.assert_allclose(net.a.value, np.ones(3))


@pytest.mark.parametrize('in_jit', [False, True])
def test_vmap_batched_write_into_a_shared_state(net, in_jit):
    snap = snapshot(net)

    @T.vmap
    def f(x):
        net.a.value = net.a.value + 1
        net.b.value = net.b.value + x
        return x

    call = T.jit(f) if in_jit else f
    with pytest.raises(brainstate.BatchAxisError,
                       match=r'State Net\.b is shared by all lanes.*in_states=|out_states='):
        call(jnp.ones((2, 3)))
    assert_untouched(snap)

    g = T.vmap(lambda x: (setattr(net.a, 'value', net.a.value + 1), x * 2)[1])
    g = T.jit(g) if in_jit else g
    np.testing.assert_allclose(g(jnp.ones((2, 3))), np.full((2, 3), 2.))
    np.testing.assert_allclose(net.a.value, np.ones(3))


# -- loops ------------------------------------------------------------------------------------

@pytest.mark.parametrize('run, error, message', [
    (lambda n: T.scan(lambda c, x: (c + x[0].sum() + x[1].sum(), None), 0.,
                      (jnp.ones((3, 2)), jnp.ones((4, 2)))),
     brainstate.ArgumentValueError, r'different leading axis sizes \[3, 4\].*loop length'),
    (lambda n: T.for_loop(lambda x, y: y, jnp.ones((3, 3)), jnp.ones(4)),
     brainstate.ArgumentValueError, r'different leading axis sizes \[3, 4\]'),
    (lambda n: T.for_loop(lambda x: x, jnp.ones(3), length=4),
     brainstate.ArgumentValueError, r'`length=4` disagrees with the leading axis sizes \[3\]'),
    (lambda n: T.scan(lambda c, x: (c, None), 0., None),
     brainstate.ArgumentValueError, 'no inputs to loop over; give `length=`'),
    (lambda n: T.scan(lambda c, x: (jnp.ones(2), None), 0., jnp.ones(3)),
     brainstate.ArgumentTypeError, r'carry .* has type f32\[2\] but f32\[\] was expected.*Cast'),
    (lambda n: T.while_loop(lambda c: jnp.ones(3) > 0, lambda c: c, 0.),
     brainstate.ArgumentTypeError, r'condition must return a boolean scalar, got bool\[3\]'),
    (lambda n: T.while_loop(lambda c: c < 3, lambda c: c + 1.0, 0),
     brainstate.ArgumentTypeError, r'has type f32\[\] but i32\[\] was expected'),
    (lambda n: T.bounded_while_loop(lambda c: c < 3, lambda c: c + 1, 0, max_steps=-1),
     brainstate.ArgumentValueError, '`max_steps` must be a non-negative int, got -1'),
    (lambda n: T.while_loop(lambda c: (setattr(n.a, 'value', n.a.value + 1), c < 3)[1],
                            lambda c: c + 1, 0),
     brainstate.StateValueError, r'State Net\.a is written inside the condition function.*move the update into the '
          r'loop body'),
    (lambda n: T.bounded_while_loop(lambda c: (setattr(n.a, 'value', n.a.value + 1), c < 3)[1],
                                    lambda c: c + 1, 0, max_steps=5),
     brainstate.StateValueError, r'State Net\.a is written inside the condition function of a '
                                 r'bounded_while_loop.*move the update into the loop body'),
])
def test_loops_with_bad_input(net, run, error, message):
    snap = snapshot(net)

    def with_a_write():
        net.i.value = net.i.value + 1  # written before the bad loop: must not survive
        return run(net)

    with pytest.raises(error, match=message):
        T.jit(with_a_write)()
    with pytest.raises(error, match=message):
        run(net)
    assert_untouched(snap)
    out = T.for_loop(lambda x: (setattr(net.a, 'value', net.a.value + x), x)[1], jnp.ones(2))
    np.testing.assert_allclose(out, np.ones(2))
    np.testing.assert_allclose(net.a.value, np.full(3, 2.))


# -- branches ---------------------------------------------------------------------------------

@pytest.mark.parametrize('run, error, message', [
    (lambda: T.switch(0, []), brainstate.ArgumentValueError, 'empty sequence of branches'),
    (lambda: T.switch(0, [lambda: 1., 3]), brainstate.ArgumentTypeError,
     'every branch must be callable'),
    (lambda: T.switch(0, lambda: 1.), brainstate.ArgumentTypeError,
     r'`branches` must be a sequence of callables .*got function'),
    (lambda: T.switch(0, [lambda: jnp.ones(3), lambda: jnp.ones(2)]),
     brainstate.ArgumentTypeError, r'f32\[2\] but f32\[3\] was expected.*same shapes'),
    (lambda: T.switch(0.5, [lambda: 1., lambda: 2.]), brainstate.ArgumentTypeError,
     'index must be an integer, got float32'),
    (lambda: T.switch(jnp.zeros(2, int), [lambda: 1., lambda: 2.]),
     brainstate.ArgumentTypeError, r'index must be a scalar, got \(2,\)'),
    (lambda: T.cond(jnp.ones(2, bool), lambda: 1., lambda: 2.), brainstate.ArgumentTypeError,
     r'predicate must be a scalar'),
    (lambda: T.cond(True, 1., lambda: 2.), brainstate.ArgumentTypeError,
     '`true_fun` and `false_fun` must be callable'),
    (lambda: T.ifelse([True, False], [lambda: 1.]), brainstate.ArgumentValueError,
     'one condition per branch'),
])
def test_branches_with_bad_input(net, run, error, message):
    snap = snapshot(net)

    def with_a_write():
        net.a.value = net.a.value + 1
        return run()

    with pytest.raises(error, match=message):
        T.jit(with_a_write)()
    assert_untouched(snap)
    branches = [lambda: None, lambda: setattr(net.a, 'value', net.a.value + 1)]
    T.switch(1, branches)
    T.switch(0, branches)
    np.testing.assert_allclose(net.a.value, np.ones(3))


# -- a State passed as an argument ------------------------------------------------------------

STATE_ARGUMENT = {
    'jit': lambda s: T.jit(lambda x: x.value)(s),
    'jit-kwarg': lambda s: T.jit(lambda x: x)(x={'q': s}),
    'make_jaxpr': lambda s: T.make_jaxpr(lambda x: 1.)(s),
    'eval_shape': lambda s: T.eval_shape(lambda x: 1., s),
    'grad': lambda s: T.grad(lambda x: 1., argnums=0)(s),
    'vjp': lambda s: T.vjp(lambda x: x, s),
    'jvp': lambda s: T.jvp(lambda x: x, (s,), (jnp.ones(3),)),
    'vmap': lambda s: T.vmap(lambda x: 1.)(s),
    'vmap_new_states': lambda s: T.vmap_new_states(lambda x: 1.)(s),
    'map': lambda s: T.map(lambda x: 1., s),
    'for_loop': lambda s: T.for_loop(lambda x: x, s),
    'scan-init': lambda s: T.scan(lambda c, x: (c, None), s, jnp.ones(3)),
    'scan-xs': lambda s: T.scan(lambda c, x: (c, None), 0., s),
    'while_loop': lambda s: T.while_loop(lambda c: False, lambda c: c, s),
    'cond': lambda s: T.cond(True, lambda x: 1., lambda x: 2., s),
    'switch': lambda s: T.switch(0, [lambda x: 1., lambda x: 2.], s),
    'checkpoint-in-jit': lambda s: T.jit(lambda: T.checkpoint(lambda x: 1.)(s))(),
}


@pytest.mark.parametrize('name', list(STATE_ARGUMENT))
def test_a_state_passed_as_an_argument(net, name):
    snap = snapshot(net)
    with pytest.raises(brainstate.StateArgumentError, match=r'State Net\.a.*state\.value'):
        STATE_ARGUMENT[name](net.a)
    assert_untouched(snap)
    # The same call with the value works.
    if name not in ('jit', 'jit-kwarg'):
        STATE_ARGUMENT[name](net.a.value)


# -- optimizers -------------------------------------------------------------------------------

@pytest.mark.parametrize('grads, error, message', [
    (lambda p: {}, KeyError, r"missing \[\('b',\)\].*brainstate\.transform\.grad"),
    (lambda p: {**{k: jnp.ones(3) for k in p}, 'zz': jnp.ones(3)}, KeyError, r"unknown \['zz'\]"),
    (lambda p: {k: jnp.ones(4) for k in p}, brainstate.GradientError,
     r"gradient for \('b',\) \(State Net\.b\) has shapes \[\(4,\)\].*parameter has \[\(3,\)\]"),
    (lambda p: jnp.ones(3), brainstate.ArgumentTypeError, 'keyed like the registered parameters'),
])
@pytest.mark.parametrize('in_jit', [False, True])
def test_optimizer_update_with_bad_grads(net, grads, error, message, in_jit):
    opt = brainstate.optim.Adam(0.1)
    params = net.states(brainstate.ParamState)
    opt.register_trainable_weights(params)
    snap = snapshot(net, opt)

    def update(g):
        if in_jit:  # a write made in the same compiled step must not survive either
            net.a.value = net.a.value + 1
        opt.update(g)

    with pytest.raises(error, match=message) as info:
        (T.jit(lambda: update(grads(params))) if in_jit else lambda: update(grads(params)))()
    assert isinstance(info.value, BSE)
    assert_untouched(snap)
    T.jit(lambda: opt.update({k: jnp.ones(3) for k in params}))()
    assert np.all(np.asarray(net.b.value) < 1.)


def test_optimizer_update_before_registering(net):
    with pytest.raises(brainstate.BrainStateError, match='register_trainable_weights'):
        brainstate.optim.SGD(0.1).update({})
    with pytest.raises(brainstate.ArgumentTypeError, match=r"entry \('a',\) is a int"):
        brainstate.optim.SGD(0.1).register_trainable_weights({('a',): 3})


# -- random samplers --------------------------------------------------------------------------

R = brainstate.random


@pytest.mark.parametrize('draw, error, message', [
    (lambda: R.normal(size=(-1, 2)), brainstate.ArgumentValueError,
     r'normal: size must not contain negative numbers, got \(-1, 2\)'),
    (lambda: R.uniform(size='a'), brainstate.ArgumentTypeError,
     r"uniform: size must be None, a non-negative int or a tuple.*got 'a'"),
    (lambda: R.normal(size=(2.5,)), brainstate.ArgumentTypeError, r'got \(2\.5,\)'),
    (lambda: R.randint(0, 5, size=(-2,)), brainstate.ArgumentValueError, 'randint: size'),
    (lambda: R.bernoulli(0.5, size=(-1,)), brainstate.ArgumentValueError, 'bernoulli: size'),
    (lambda: R.rand((2, 3)), brainstate.ArgumentTypeError, r'rand\(2, 3\), or size=\(2, 3\)'),
    (lambda: R.normal(jnp.zeros(3), size=(2,)), brainstate.ArgumentValueError,
     r'`loc` has shape \(3,\), which does not broadcast to size=\(2,\)'),
    (lambda: R.choice(3, size=(5,), replace=False), brainstate.ArgumentValueError,
     'without replacement; use replace=True'),
    (lambda: T.jit(lambda n: R.normal(size=(n,)))(3), brainstate.ArgumentTypeError,
     'Inside a traced function the size must be a Python value'),
    (lambda: T.jit(lambda: R.normal(size=(-1,)))(), brainstate.ArgumentValueError,
     'must not contain negative'),
])
def test_random_sampler_with_a_bad_size(draw, error, message):
    R.seed(0)
    snap = snapshot(R.DEFAULT)
    with pytest.raises(error, match=message):
        draw()
    assert_untouched(snap)
    first = R.normal(size=(2,))
    R.seed(0)
    np.testing.assert_array_equal(R.normal(size=(2,)), first)


# -- passes -----------------------------------------------------------------------------------

def test_unknown_pass_name():
    with pytest.raises(BSE, match=r"No pass named 'no-such-pass'.*Registered passes: .*"
                                  r"hoist-states.*register"):
        brainstate.passes.PassManager('hoist-states,no-such-pass')
    with pytest.raises(BSE, match="No pass named 'no-such-pass'"):
        T.jit(lambda: 1., passes='no-such-pass')()


def test_a_raising_pass_leaves_states_unchanged_and_writes_a_reproducer(net, tmp_path,
                                                                         monkeypatch):
    def boom(graph):
        raise RuntimeError('pass bug')

    def step(x):
        net.a.value = net.a.value + x
        net.i.value = net.i.value + 1
        return x

    snap = snapshot(net)
    from brainstate.passes import _manager
    monkeypatch.setitem(_manager.DEFAULTS, 'reproducer_dir', None)  # restored after the test
    brainstate.passes.set_pass_options(reproducer_dir=str(tmp_path / 'default'))
    # The pass's own exception reaches the user unchanged, with the pass's name attached.
    with pytest.raises(RuntimeError, match=r"pass bug") as info:
        T.jit(step, passes=['hoist-states', boom])(jnp.ones(3))
    assert info.value.pass_name == 'boom'
    assert any("Raised in pass 'boom'" in note for note in info.value.__notes__)
    assert_untouched(snap)
    assert info.value.reproducer.startswith(str(tmp_path / 'default'))
    text = open(info.value.reproducer).read()
    assert 'failing pass: boom' in text and 'state_write @Net.a' in text

    pm = brainstate.passes.PassManager(['hoist-states', boom], reproducer_dir=str(tmp_path))
    graph = brainstate.ir.trace(step, jnp.ones(3))
    with pytest.raises(RuntimeError) as info:
        pm.run(graph)
    assert info.value.reproducer.startswith(str(tmp_path))
    assert_untouched(snap)

    T.jit(step, passes='hoist-states')(jnp.ones(3))
    np.testing.assert_allclose(net.a.value, np.ones(3))
    assert int(net.i.value) == 1


# -- stateful code under raw JAX transforms ---------------------------------------------------

def _stateful(net):
    def f(x):
        net.a.value = net.a.value + x
        return (net.a.value * net.b.value).sum()
    return f


RAW = {
    'jax.jit': lambda n: jax.jit(_stateful(n))(jnp.ones(3)),
    'jax.grad': lambda n: jax.grad(_stateful(n))(jnp.ones(3)),
    'jax.vmap': lambda n: jax.vmap(_stateful(n))(jnp.ones((2, 3))),
    'lax.scan': lambda n: jax.lax.scan(lambda c, x: (c + _stateful(n)(x), None), 0.,
                                       jnp.ones((2, 3))),
    'bs.jit-inside-jax.grad': lambda n: jax.grad(T.jit(_stateful(n)))(jnp.ones(3)),
    'bs.grad-inside-jax.jit': lambda n: jax.jit(T.grad(_stateful(n), argnums=0))(jnp.ones(3)),
    'bs.for_loop-inside-jax.jit': lambda n: jax.jit(
        lambda xs: T.for_loop(_stateful(n), xs))(jnp.ones((2, 3))),
    'bs.vmap-inside-jax.jit': lambda n: jax.jit(
        T.vmap(lambda x: (setattr(n.a, 'value', n.a.value + 1), x)[1]))(jnp.ones((2, 3))),
    'bs.cond-inside-jax.jit': lambda n: jax.jit(lambda p: T.cond(
        p, lambda: setattr(n.a, 'value', n.a.value + 1), lambda: None))(True),
}


@pytest.mark.parametrize('name', list(RAW))
def test_stateful_code_under_raw_jax_transforms(net, name):
    snap = snapshot(net)
    with pytest.raises(brainstate.TracerLeakError, match=r'(Net\.a|brainstate transform).*'
                                                         r'brainstate\.transform'):
        RAW[name](net)
    assert_untouched(snap)
    # The brainstate transform does it right.
    T.jit(_stateful(net))(jnp.ones(3))
    np.testing.assert_allclose(net.a.value, np.ones(3))


def test_static_argnums_beyond_the_signature_is_explained():
    with pytest.raises(brainstate.BrainStateError, match=r"takes 1 positional argument\(s\) \(x\), but static_argnums names \[3\]"):
        brainstate.transform.jit(lambda x: x, static_argnums=3)
    with pytest.raises(brainstate.BrainStateError, match='donate_argnums names'):
        brainstate.transform.jit(lambda x: x, donate_argnums=(0, 1))
    assert brainstate.transform.jit(lambda *xs: xs[0], static_argnums=2)(1.0, 2.0, 'a') == 1.0
