"""Gradient transforms with respect to States, checked against hand-written JAX on the same math."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import ParamState, ShortTermState
from brainstate.transform import (eval_shape, fwd_grad, grad, hessian, jacfwd, jacrev, jit, jvp,
                                  value_and_grad, vector_grad, vjp)

TOL = dict(rtol=1e-5, atol=1e-5)


def assert_tree_close(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b), (jax.tree.structure(a),
                                                          jax.tree.structure(b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **TOL)


class Model(brainstate.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = ParamState(jnp.array([[0.5, -1.0], [1.5, 0.25], [-0.3, 0.8]]))
        self.b = ParamState({'bias': jnp.array([0.1, -0.2])})
        self.count = ShortTermState(jnp.array(0))


def pure_loss(w, b, x, scale):
    y = jnp.tanh(x @ w + b['bias'])
    return jnp.sum(y ** 2) * scale


@pytest.fixture
def setup():
    model = Model()
    x = jnp.array([[1.0, 2.0, -1.0], [0.5, -0.5, 0.3]])
    scale = jnp.array(1.5)

    def loss(x, scale):
        model.count.value = model.count.value + 1   # written, never differentiated
        return pure_loss(model.w.value, model.b.value, x, scale)

    return model, loss, x, scale


def reference(model, x, scale, argnums):
    return jax.grad(pure_loss, argnums=argnums)(model.w.value, model.b.value, x, scale)


# -- return forms ------------------------------------------------------------------------

def _forms(model, loss, x, scale):
    """(call, expected) pairs covering every return form."""
    gw, gb, gx, gs = reference(model, x, scale, (0, 1, 2, 3))
    value = pure_loss(model.w.value, model.b.value, x, scale)

    def aux_loss(x, scale):
        return loss(x, scale), {'twice': 2 * x}

    aux = {'twice': 2 * x}
    params = model.states(ParamState)
    flat = brainstate.util.FlatMapping({('w',): gw, ('b',): gb})
    return [
        (lambda: grad(loss, model.w)(x, scale), gw),
        (lambda: grad(loss, [model.w, model.b])(x, scale), [gw, gb]),
        (lambda: grad(loss, (model.w, model.b))(x, scale), (gw, gb)),
        (lambda: grad(loss, {'w': model.w, 'b': model.b})(x, scale), {'w': gw, 'b': gb}),
        (lambda: grad(loss, params)(x, scale), flat),
        (lambda: grad(loss)(x, scale), gx),
        (lambda: grad(loss, argnums=1)(x, scale), gs),
        (lambda: grad(loss, argnums=(0, 1))(x, scale), (gx, gs)),
        (lambda: grad(loss, model.w, argnums=0)(x, scale), (gw, gx)),
        (lambda: grad(loss, [model.w], argnums=(0, 1))(x, scale), ([gw], (gx, gs))),
        (lambda: grad(aux_loss, model.w, has_aux=True)(x, scale), (gw, aux)),
        (lambda: grad(loss, model.w, return_value=True)(x, scale), (gw, value)),
        (lambda: grad(aux_loss, model.w, has_aux=True, return_value=True)(x, scale),
         (gw, value, aux)),
        (lambda: grad(aux_loss, model.w, argnums=0, has_aux=True, return_value=True)(x, scale),
         ((gw, gx), value, aux)),
        (lambda: value_and_grad(loss, model.w)(x, scale), (value, gw)),
        (lambda: value_and_grad(aux_loss, params, has_aux=True)(x, scale),
         ((value, aux), flat)),
        (lambda: value_and_grad(loss, argnums=(0, 1))(x, scale), (value, (gx, gs))),
    ]


def test_return_forms_eager(setup):
    model, loss, x, scale = setup
    for i, (call, expected) in enumerate(_forms(model, loss, x, scale)):
        before = int(model.count.value)
        got = call()
        assert_tree_close(got, expected)
        assert int(model.count.value) == before + 1, f'form {i}: written state not written once'


def test_return_forms_inside_jit(setup):
    model, loss, x, scale = setup
    for i, (call, expected) in enumerate(_forms(model, loss, x, scale)):
        before = int(model.count.value)
        got = jit(call)()
        assert_tree_close(got, expected)
        assert int(model.count.value) == before + 1, f'form {i}'


def test_mapping_gradients_keep_keys_and_type(setup):
    model, loss, x, scale = setup
    params = model.states(ParamState)
    grads = grad(loss, params)(x, scale)
    assert type(grads) is brainstate.util.FlatMapping
    assert list(grads.keys()) == list(params.keys())
    grads = jit(lambda x, s: grad(loss, params)(x, s))(x, scale)
    assert type(grads) is brainstate.util.FlatMapping
    assert list(grads.keys()) == list(params.keys())


def test_decorator_form(setup):
    model, loss, x, scale = setup
    g = grad(grad_states=model.w)(loss)(x, scale)
    assert_tree_close(g, reference(model, x, scale, 0))


# -- composition ---------------------------------------------------------------------------

def test_jit_inside_grad(setup):
    model, loss, x, scale = setup
    jitted_loss = jit(loss)
    g = grad(jitted_loss, [model.w, model.b])(x, scale)
    assert_tree_close(g, list(reference(model, x, scale, (0, 1))))
    assert int(model.count.value) == 1


def test_jit_of_grad_of_jit(setup):
    model, loss, x, scale = setup
    step = jit(lambda x, s: grad(jit(loss), model.b)(x, s))
    assert_tree_close(step(x, scale), reference(model, x, scale, 1))
    assert_tree_close(step(x, scale), reference(model, x, scale, 1))
    assert int(model.count.value) == 2


def test_grad_of_grad():
    w = ParamState(jnp.array([1.0, -2.0, 0.5]))
    x = jnp.array([0.3, 1.2, -0.7])

    def inner(x):
        return jnp.sum(w.value * jnp.sin(x) ** 3)

    def outer(x):
        return jnp.sum(grad(inner)(x) ** 2)

    def pure_outer(w, x):
        return jnp.sum(jax.grad(lambda x: jnp.sum(w * jnp.sin(x) ** 3))(x) ** 2)

    expected = jax.grad(pure_outer, argnums=(0, 1))(w.value, x)
    assert_tree_close(grad(outer, w, argnums=0)(x), expected)
    assert_tree_close(jit(lambda x: grad(outer, w, argnums=0)(x))(x), expected)
    # second derivative with respect to the same state
    d2 = grad(lambda x: jnp.sum(grad(inner, w)(x) ** 2), w)(x)
    expected_d2 = jax.grad(lambda w: jnp.sum(jax.grad(
        lambda w: jnp.sum(w * jnp.sin(x) ** 3))(w) ** 2))(w.value)
    assert_tree_close(d2, expected_d2)


def test_grad_inside_raw_vmap_reads_states():
    w = ParamState(jnp.array([1.0, 2.0]))
    xs = jnp.array([[1.0, 0.0], [0.5, 2.0], [3.0, 1.0]])
    got = jax.vmap(grad(lambda x: jnp.sum(w.value * x ** 2)))(xs)
    np.testing.assert_allclose(got, 2 * w.value * xs, **TOL)


def test_grad_inside_raw_jit_that_writes_is_an_error():
    w = ParamState(jnp.array([1.0, 2.0]))
    count = ShortTermState(jnp.array(0))

    def loss(x):
        count.value = count.value + 1
        return jnp.sum(w.value * x)

    with pytest.raises(brainstate.TracerLeakError):
        jax.jit(lambda x: grad(loss, w)(x))(jnp.ones(2))
    assert int(count.value) == 0


# -- the training program -------------------------------------------------------------------

class MLP(brainstate.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = [brainstate.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

    def update(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


def _xent(logits, y):
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * jax.nn.one_hot(y, logits.shape[-1]),
                             -1))


def _pure_mlp(params, x):
    for p in params[:-1]:
        x = jax.nn.relu(x @ p['weight'] + p['bias'])
    return x @ params[-1]['weight'] + params[-1]['bias']


def test_five_line_training_program_matches_pure_jax():
    brainstate.random.seed(0)
    model = MLP([6, 16, 16, 3])
    params = model.states(brainstate.ParamState)
    lr = 0.2

    def loss_fn(x, y):
        return _xent(model(x), y)

    @jit
    def train_step(x, y):
        grads = brainstate.transform.grad(loss_fn, params)(x, y)
        for key in params:
            params[key].value = jax.tree.map(lambda p, g: p - lr * g, params[key].value,
                                             grads[key])
        return loss_fn(x, y)

    pure_params = [s.value for s in params.values()]

    @jax.jit
    def pure_step(ps, x, y):
        grads = jax.grad(lambda ps: _xent(_pure_mlp(ps, x), y))(ps)
        ps = jax.tree.map(lambda p, g: p - lr * g, ps, grads)
        return ps, _xent(_pure_mlp(ps, x), y)

    rng = np.random.RandomState(0)
    for _ in range(20):
        x = jnp.asarray(rng.randn(32, 6), jnp.float32)
        y = jnp.asarray(rng.randint(0, 3, 32))
        loss = train_step(x, y)
        pure_params, pure_loss_value = pure_step(pure_params, x, y)
        np.testing.assert_allclose(loss, pure_loss_value, **TOL)
    assert_tree_close([s.value for s in params.values()], pure_params)

    # The IR: parameter reads at entry, the gradient computation, writes at exit.
    graph = train_step.optimized_ir(x, y)
    kinds = [node.kind for node in graph.nodes if node.kind not in ('input', 'constant')]
    n_params = len(params)
    assert kinds[:n_params] == ['state_read'] * n_params
    assert kinds[-n_params - 1:] == ['state_write'] * n_params + ['output']
    assert 'state_read' not in kinds[n_params:] and 'state_write' not in kinds[:-n_params - 1]
    assert sum(1 for n in graph.nodes if n.kind == 'primitive' and n.op.name == 'dot_general') \
        >= 3 * 3  # forward, and two per layer backward


def test_eager_grad_does_not_retrace(setup):
    model, _, x, scale = setup
    traces = []

    def loss(x, scale):
        traces.append(1)
        return pure_loss(model.w.value, model.b.value, x, scale)

    g = grad(loss, model.w)
    for _ in range(4):
        g(x, scale)
    # The first eager call runs the function directly (as raw JAX's eager grad does); the
    # second traces it once; later calls run the kept program.
    assert len(traces) == 2
    g(x[:1], scale)   # a new shape traces again
    assert len(traces) == 3


# -- the rest of the family -----------------------------------------------------------------

def test_vector_grad(setup):
    model, _, x, _ = setup

    def f(x):
        return jnp.tanh(x @ model.w.value)

    expected = jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w)), argnums=(0, 1))(model.w.value, x)
    assert_tree_close(vector_grad(f, model.w)(x), expected[0])
    assert_tree_close(vector_grad(f, model.w, argnums=0)(x), expected)
    got, value = jit(lambda x: vector_grad(f, model.w, return_value=True)(x))(x)
    assert_tree_close(got, expected[0])
    assert_tree_close(value, f(x))


@pytest.mark.parametrize('name', ['jacrev', 'jacfwd'])
def test_jacobians(setup, name):
    model, _, x, _ = setup
    transform = {'jacrev': jacrev, 'jacfwd': jacfwd}[name]
    jax_transform = {'jacrev': jax.jacrev, 'jacfwd': jax.jacfwd}[name]

    def f(x):
        return jnp.tanh(x @ model.w.value)

    expected = jax_transform(lambda w, x: jnp.tanh(x @ w), argnums=(0, 1))(model.w.value, x)
    assert_tree_close(transform(f, model.w)(x), expected[0])
    assert_tree_close(transform(f)(x), expected[1])
    assert_tree_close(transform(f, model.w, argnums=0)(x), expected)
    got = jit(lambda x: transform(f, [model.w], return_value=True)(x))(x)
    assert_tree_close(got, ([expected[0]], f(x)))
    assert brainstate.transform.jacobian is jacrev


def test_hessian(setup):
    model, _, x, scale = setup

    def loss(x):
        return pure_loss(model.w.value, model.b.value, x, scale)

    expected = jax.hessian(lambda w, x: pure_loss(w, model.b.value, x, scale),
                           argnums=(0, 1))(model.w.value, x)
    assert_tree_close(hessian(loss, model.w)(x), expected[0][0])
    assert_tree_close(hessian(loss, model.w, argnums=0)(x), expected)
    assert_tree_close(jit(lambda x: hessian(loss)(x))(x), expected[1][1])


def test_vjp_and_jvp(setup):
    model, loss, x, scale = setup

    def f(x):
        model.count.value = model.count.value + 1
        return jnp.tanh(x @ model.w.value)

    pure = lambda w, x: jnp.tanh(x @ w)
    y_ref, pullback_ref = jax.vjp(pure, model.w.value, x)
    ct = jnp.ones_like(y_ref) * jnp.array([1.0, -2.0])
    y, pullback = vjp(f, x, grad_states=model.w)
    assert_tree_close(y, y_ref)
    dw, dx = pullback(ct)   # argnums=0 (an int): the argument's cotangent unwrapped
    assert_tree_close((dw, dx), pullback_ref(ct))
    assert int(model.count.value) == 1
    y, pullback = vjp(f, x)
    assert_tree_close(pullback(ct), pullback_ref(ct)[1])
    _, pullback = vjp(f, x, argnums=(0,))
    assert_tree_close(pullback(ct), (pullback_ref(ct)[1],))
    _, pullback = vjp(f, x, grad_states=model.w, argnums=None)
    assert_tree_close(pullback(ct), pullback_ref(ct)[0])
    _, pullback = vjp(lambda a, b: jnp.tanh(a @ b), x, model.w.value, argnums=-1)
    assert_tree_close(pullback(ct), pullback_ref(ct)[0])
    with pytest.raises(brainstate.GradientError, match='out of range'):
        vjp(f, x, argnums=1)
    with pytest.raises(ValueError, match='twice'):
        vjp(lambda a, b: a @ b, x, model.w.value, argnums=(0, -2))
    with pytest.raises(ValueError, match='nothing to differentiate'):
        vjp(lambda: model.w.value.sum())
    # inside jit
    dw2 = jit(lambda x: vjp(f, x, grad_states=model.w)[1](ct)[0])(x)
    assert_tree_close(dw2, pullback_ref(ct)[0])

    tw, tx = jnp.ones_like(model.w.value) * 0.1, jnp.ones_like(x) * -0.2
    expected = jax.jvp(pure, (model.w.value, x), (tw, tx))
    assert_tree_close(jvp(f, (x,), (tx,), grad_states=model.w, state_tangents=tw), expected)
    assert_tree_close(jit(lambda x: jvp(f, (x,), (tx,), grad_states=model.w,
                                        state_tangents=tw))(x), expected)
    expected_x_only = jax.jvp(lambda x: pure(model.w.value, x), (x,), (tx,))
    assert_tree_close(jvp(f, (x,), (tx,)), expected_x_only)


def test_fwd_grad_is_an_unbiased_estimate():
    w = ParamState(jnp.array([1.0, -2.0, 0.5]))
    x = jnp.array([0.3, 1.2, -0.7])

    def loss(x):
        return jnp.sum(w.value ** 2 * x)

    exact = 2 * w.value * x
    estimate = fwd_grad(loss, w, num_samples=20000, key=0)(x)
    np.testing.assert_allclose(estimate, exact, atol=0.08)
    # one direction: (g . v) v, a new direction on every call (the key is a state)
    f = fwd_grad(loss, w, key=1, return_value=True)
    (g1, value), (g2, _) = f(x), f(x)
    np.testing.assert_allclose(value, loss(x), **TOL)
    assert not np.allclose(g1, g2)
    g3 = jit(lambda x: f(x)[0])(x)
    assert g3.shape == (3,)
    # with argnums
    gw, gx = fwd_grad(loss, w, argnums=0, num_samples=20000, key=2)(x)
    np.testing.assert_allclose(gx, w.value ** 2, atol=0.15)


def test_fwd_grad_default_key_is_brainstate_random():
    w = ParamState(jnp.array([1.0, 2.0]))
    brainstate.random.seed(3)
    before = jax.random.key_data(brainstate.random.get_key())
    fwd_grad(lambda: jnp.sum(w.value ** 2), w)()
    after = jax.random.key_data(brainstate.random.get_key())
    assert not np.array_equal(before, after)


def test_eval_shape(setup):
    model, loss, x, scale = setup
    shape = jax.ShapeDtypeStruct((5, 3), jnp.float32)
    states, out = eval_shape(loss, shape, scale, return_state_shapes=True)
    assert out.shape == () and out.dtype == jnp.float32
    assert {model.count, model.w} <= set(states)   # read and written states
    assert states[model.count].shape == () and states[model.count].dtype == jnp.int32
    assert states[model.w].shape == model.w.value.shape
    assert int(model.count.value) == 0
    out_only = eval_shape(loss, shape, scale)
    assert out_only.shape == () and out_only.dtype == jnp.float32

    def uses_shapes(x):
        out = eval_shape(lambda x: (x @ model.w.value, x.sum()), x)
        return jnp.zeros(out[0].shape)

    assert jit(uses_shapes)(x).shape == (2, 2)


# -- errors ---------------------------------------------------------------------------------

def test_error_grad_state_never_read(setup):
    model, loss, x, scale = setup
    unused = ParamState(jnp.ones(2), name='unused_param')
    with pytest.raises(brainstate.GradientError, match='unused_param.*never read'):
        grad(loss, [model.w, unused])(x, scale)
    with pytest.raises(brainstate.GradientError, match='Model.count'):
        grad(lambda x: jnp.sum(x) + 0 * (model.count.__setattr__('value', 1) or 0),
             model.count)(x)
    assert int(model.count.value) == 0


def test_error_non_scalar_output(setup):
    model, _, x, _ = setup
    with pytest.raises(brainstate.GradientError, match='shape \\(2, 2\\).*vector_grad'):
        grad(lambda x: x @ model.w.value, model.w)(x)
    with pytest.raises(brainstate.GradientError, match='has_aux=True'):
        grad(lambda x: (jnp.sum(x @ model.w.value), x), model.w)(x)


def test_error_integer_grad_state(setup):
    model, _, x, _ = setup
    with pytest.raises(brainstate.GradientError, match='Model.count.*integer'):
        grad(lambda x: jnp.sum(x) * model.count.value, model.count)(x)


def test_error_argnums(setup):
    model, loss, x, scale = setup
    with pytest.raises(brainstate.GradientError, match='negative'):
        grad(loss, argnums=-1)
    with pytest.raises(brainstate.GradientError, match='positional argument 2'):
        grad(loss, argnums=(0, 2))(x, scale)
    with pytest.raises(brainstate.GradientError, match='twice'):
        grad(loss, [model.w, model.w])


def test_failed_call_leaves_states_unchanged(setup):
    model, _, x, scale = setup

    def loss(x):
        model.count.value = model.count.value + 1
        model.w.value = model.w.value * 2
        return jnp.sum(x @ model.w.value)   # fine
    w_before = model.w.value

    def bad(x):
        model.count.value = model.count.value + 1
        return x @ model.w.value            # not a scalar

    with pytest.raises(brainstate.GradientError):
        grad(bad, model.w)(x)
    assert int(model.count.value) == 0
    np.testing.assert_array_equal(model.w.value, w_before)
    grad(loss, model.w)(x)
    assert int(model.count.value) == 1
    np.testing.assert_allclose(model.w.value, 2 * w_before, **TOL)


def test_state_argument_is_an_error(setup):
    model, loss, x, scale = setup
    with pytest.raises(brainstate.StateArgumentError, match='Model.w'):
        grad(lambda w: jnp.sum(w), argnums=0)(model.w)


def test_grad_through_a_state_aware_loop_and_inside_one():
    w = ParamState(jnp.array([0.5, -0.3]))
    h = brainstate.HiddenState(jnp.zeros(2))
    xs = jnp.ones((5, 2)) * 0.3

    def loss(xs):
        def body(x):
            h.value = jnp.tanh(h.value * w.value + x)
            return h.value
        return jnp.sum(brainstate.transform.for_loop(body, xs) ** 2)

    def pure(w, xs):
        def body(h, x):
            h = jnp.tanh(h * w + x)
            return h, h
        return jnp.sum(jax.lax.scan(body, jnp.zeros(2), xs)[1] ** 2)

    expected = jax.grad(pure)(w.value, xs)
    assert_tree_close(grad(loss, w)(xs), expected)
    assert float(jnp.abs(h.value).sum()) > 0       # the hidden state was written back
    h.value = jnp.zeros(2)
    assert_tree_close(jit(lambda xs: grad(loss, w)(xs))(xs), expected)

    # grad inside a loop body, updating the parameter at every step
    w0 = w.value

    def step(x):
        g = grad(lambda: jnp.sum((w.value * x) ** 2), w)()
        w.value = w.value - 0.1 * g
        return g

    jit(lambda xs: brainstate.transform.for_loop(step, xs))(xs)
    expected_w = w0
    for x in xs:
        expected_w = expected_w - 0.1 * jax.grad(lambda w: jnp.sum((w * x) ** 2))(expected_w)
    assert_tree_close(w.value, expected_w)
