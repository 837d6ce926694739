"""The donation matrix: every way a user can hold (part of) a state's value; after compiled calls
that write the state (and donate its buffer where it may), the held array is still readable and
unchanged, and the state has the right value."""

import dataclasses
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate.transform import for_loop, grad, jit, vmap


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Pair:
    left: jax.Array
    right: jax.Array


def _state(kind):
    x = jnp.arange(3.)
    if kind == 'array':
        return brainstate.State(x)
    if kind == 'dict':
        return brainstate.State({'a': {'b': x}, 'c': x + 10.})
    if kind == 'list':
        return brainstate.State([[x], x + 10.])
    return brainstate.State(Pair(x, x + 10.))


def _first_leaf(value):
    return jax.tree.leaves(value)[0]


# Each way of holding returns (held object, function reading the held arrays as numpy).
HOLDERS = {
    'the value itself': lambda s: (s.value, lambda h: [np.asarray(l) for l in jax.tree.leaves(h)]),
    'a sub-tree': lambda s: (_sub(s.value), lambda h: [np.asarray(l) for l in jax.tree.leaves(h)]),
    'a leaf': lambda s: (_first_leaf(s.value), lambda h: [np.asarray(h)]),
    'device_put of a leaf': lambda s: (jax.device_put(_first_leaf(s.value), jax.devices()[0]),
                                       lambda h: [np.asarray(h)]),
    'addressable_data': lambda s: (_first_leaf(s.value).addressable_data(0),
                                   lambda h: [np.asarray(h)]),
    'a numpy view': lambda s: (np.asarray(_first_leaf(s.value)), lambda h: [h.copy()]),
    'the value it was set to': lambda s: (_set_fresh(s), lambda h: [np.asarray(l) for l in jax.tree.leaves(h)]),
    'a jit result forwarding it': lambda s: (jit(lambda: s.value)(),
                                             lambda h: [np.asarray(l) for l in jax.tree.leaves(h)]),
    'a jit result equal to the new value': lambda s: (_write_and_return(s),
                                                      lambda h: [np.asarray(l) for l in jax.tree.leaves(h)]),
}


def _sub(value):
    if isinstance(value, dict):
        return value['a']
    if isinstance(value, list):
        return value[0]
    if isinstance(value, Pair):
        return value.left
    return value


def _set_fresh(s):
    fresh = jax.tree.map(lambda l: l * 1., s.value)
    s.value = fresh
    return fresh


def _write_and_return(s):
    @jit
    def f():
        s.value = jax.tree.map(lambda l: l + 0.5, s.value)
        return s.value
    return f()


def _bump(s):
    s.value = jax.tree.map(lambda l: l + 1., s.value)


WRITERS = {
    'jit': lambda s: jit(lambda: _bump(s)),
    'jit of for_loop': lambda s: jit(lambda: for_loop(lambda i: _bump(s), jnp.arange(2))),
    'eager for_loop': lambda s: (lambda: for_loop(lambda i: _bump(s), jnp.arange(2))),
    'jit with the value as argument': lambda s: (lambda: jit(lambda v: _bump(s) or v)(s.value)),
    'jit of grad': lambda s: jit(lambda: grad(lambda: (_bump(s), 0.)[1] + jax.tree.leaves(
        s.value)[0].sum(), grad_states=[s])()),
}


KINDS = ['array', 'dict', 'list', 'dataclass']


def _cases():
    """Every holder of every kind of value under jit, and the holders most likely to break
    (a sub-tree, a NumPy view sharing the buffer, a jit result forwarding it) under every
    other writer; ``BRAINSTATE_DONATION_MATRIX=full``: the whole product."""
    if os.environ.get('BRAINSTATE_DONATION_MATRIX') == 'full':
        return list(itertools.product(KINDS, HOLDERS, WRITERS))
    cases = [(k, h, 'jit') for k in KINDS for h in HOLDERS]
    cases += [('dict', h, w) for w in WRITERS if w != 'jit'
              for h in ('a sub-tree', 'a numpy view', 'a jit result forwarding it')]
    return cases


@pytest.mark.parametrize('kind, holder, writer', _cases())
def test_held_values_survive_donation(kind, holder, writer):
    s = _state(kind)
    step = WRITERS[writer](s)
    step()  # compiled; the state's buffer now comes from a compiled call (donatable)
    held, read = HOLDERS[holder](s)
    expected = [a.copy() for a in read(held)]
    state_before = [np.array(l) for l in jax.tree.leaves(s._value)]
    step()
    step()
    for got, want in zip(read(held), expected):
        np.testing.assert_array_equal(got, want)
    # and the state moved on by the writes
    after = [np.asarray(l) for l in jax.tree.leaves(s.value)]
    increments = 2 * (2 if 'for_loop' in writer else 1)
    for a, b in zip(after, state_before):
        np.testing.assert_array_equal(a, b + increments)


def test_matrix_can_fail():
    """Donating a buffer the user holds does delete it: the matrix would see it."""
    x = jnp.ones(3) + 0.
    f = jax.jit(lambda v: v + 1, donate_argnums=0)
    f(x)
    with pytest.raises(RuntimeError, match='deleted'):
        np.asarray(x)
