"""The exception matrix: an exception at trace time or at run time, under every transform and
compositions of them up to three deep, leaves every State bit-identical, holding no tracer,
and the next call works (and computes what a fresh run computes).

Exceptions: an ordinary ``ValueError``, ``KeyboardInterrupt`` and a bare ``BaseException``
subclass. Trace time: the innermost function raises while it is traced (every eager transform
traces too). Run time: an ``io_callback`` raises while the compiled program runs.

The normal run covers every transform alone and a fixed sample of deeper compositions;
``BRAINSTATE_EXCEPTION_MATRIX=full`` runs every composition up to three deep.
"""

import itertools
import os
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from jax.sharding import Mesh, PartitionSpec

from brainstate.transform import (checkpoint, cond, for_loop, jit, shard_map, switch,
                                  value_and_grad, vmap, while_loop)


class Abort(BaseException):
    """Not an Exception: like KeyboardInterrupt, it must not be swallowed or half-handled."""


EXCEPTIONS = [ValueError, KeyboardInterrupt, Abort]


class World:
    """The States a composition touches, and the switch that makes it fail."""

    def __init__(self):
        self.counter = brainstate.ShortTermState(jnp.zeros((), jnp.int32), name='counter')
        self.param = brainstate.ParamState(jnp.array([1.5, -0.0, 2.0]), name='param')
        self.nested = brainstate.State({'a': jnp.arange(3.), 'b': [jnp.ones(2)]}, name='nested')
        self.fail = None          # None, or (when, exception class)

    def states(self):
        return [self.counter, self.param, self.nested]

    def snapshot(self):
        # ``_value``, not ``.value``: an eager read would mark the buffers as held by the user,
        # and a held buffer is never donated; this snapshot must not change what the failing
        # call does (it is the case where written states are donated).
        return [[np.array(leaf, copy=True) for leaf in jax.tree.leaves(s._value)]
                for s in self.states()]

    def _raise_now(self, x):
        if self.fail is not None and self.fail[0] == 'run':
            raise self.fail[1]('raised by a callback at run time')
        return np.zeros((), np.float32)

    def innermost(self):
        self.counter.value = self.counter.value + 1
        self.nested.value = {'a': self.nested.value['a'] * 2., 'b': [self.nested.value['b'][0] - 1.]}
        if self.fail is not None and self.fail[0] == 'trace':
            raise self.fail[1]('raised while tracing')
        # A pure callback (no effect, so JAX allows it under grad and vmap-of-cond); its
        # operand carries no tangent, so differentiation never asks for its derivative.
        bump = jax.pure_callback(self._raise_now, jax.ShapeDtypeStruct((), jnp.float32),
                                 jax.lax.stop_gradient(self.param.value[0]),
                                 vmap_method='sequential')
        return (self.param.value ** 2).sum() + self.nested.value['a'].sum() + bump


def _jit(world, f):
    return jit(f)


def _for_loop(world, f):
    return lambda: for_loop(lambda i: f(), jnp.arange(2))[-1]


def _while_loop(world, f):
    return lambda: while_loop(lambda c: c[0] < 2, lambda c: (c[0] + 1, f()),
                              (jnp.int32(0), jnp.float32(0.)))[1]


def _cond(world, f):
    return lambda: cond(world.param.value[0] > 0, f, lambda: jnp.float32(0.))


def _switch(world, f):
    return lambda: switch(jnp.int32(1), [lambda: jnp.float32(0.), f])


def _grad(world, f):
    def outer():
        # value_and_grad: the value keeps the callback alive (a gradient alone does not need it)
        out = value_and_grad(lambda: f() * 1., grad_states=[world.param])()
        return sum(leaf.sum() for leaf in jax.tree.leaves(out))
    return outer


def _vmap(world, f):
    return lambda: vmap(lambda x: f() + x)(jnp.arange(2.)).sum()


def _checkpoint(world, f):
    return checkpoint(f)


def _shard_map(world, f):
    mesh = Mesh(np.array(jax.devices()[:1]), ('x',))
    return shard_map(f, mesh, in_specs=(), out_specs=PartitionSpec())


TRANSFORMS = {'jit': _jit, 'for_loop': _for_loop, 'while_loop': _while_loop, 'cond': _cond,
              'switch': _switch, 'grad': _grad, 'vmap': _vmap, 'checkpoint': _checkpoint,
              'shard_map': _shard_map}


def _compose(world, chain):
    f = world.innermost
    for name in reversed(chain):
        f = TRANSFORMS[name](world, f)
    return f


def _chains():
    # shard_map (on a one-device mesh) is not sampled: it does not nest in itself on one axis;
    # it gets the fixed compositions below.
    names = [name for name in TRANSFORMS if name != 'shard_map']
    if os.environ.get('BRAINSTATE_EXCEPTION_MATRIX') == 'full':
        chains = [c for depth in (1, 2, 3) for c in itertools.product(names, repeat=depth)]
    else:
        rng = random.Random(8)
        chains = [(n,) for n in names]
        chains += rng.sample(list(itertools.product(names, repeat=2)), 4)
        chains += rng.sample(list(itertools.product(names, repeat=3)), 3)
        chains += [('jit', 'grad', 'for_loop'), ('for_loop', 'grad', 'cond'),
                   ('vmap', 'for_loop', 'jit')]
    chains += [('shard_map',), ('jit', 'shard_map'), ('shard_map', 'for_loop'),
               ('grad', 'shard_map')]
    cases = []
    for i, chain in enumerate(chains):
        for when in ('trace', 'run'):
            cases.append(pytest.param(chain, when, EXCEPTIONS[i % len(EXCEPTIONS)],
                                      id=f'{"-".join(chain)}-{when}'))
    return cases


def _assert_same(before, after):
    for state_before, state_after in zip(before, after):
        for a, b in zip(state_before, state_after):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize('chain, when, exception', _chains())
def test_exception_leaves_states_untouched(chain, when, exception):
    world = World()
    f = _compose(world, chain)
    if when == 'run':
        f()  # compiled (and run) twice: the failing call is a cached one where jit caches,
        f()  # and its states' buffers are not held by anyone (they could be donated)
        jax.effects_barrier()
    before = world.snapshot()
    world.fail = (when, exception)
    # JAX reports a raising callback as its runtime error; at trace time the
    # exception itself comes through, whatever its kind.
    expected = exception if when == 'trace' else BaseException
    with pytest.raises(expected):
        f()
        jax.effects_barrier()
    world.fail = None
    after = world.snapshot()
    _assert_same(before, after)
    for state in world.states():
        for leaf in jax.tree.leaves(state.value):
            assert not isinstance(leaf, jax.core.Tracer)
            assert isinstance(leaf, jax.Array)
    # The next call works, and computes what the same calls on fresh states compute.
    out = f()
    fresh = World()
    g = _compose(fresh, chain)
    if when == 'run':
        g()
        g()
    expected_out = g()
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected_out))
    _assert_same(fresh.snapshot(), world.snapshot())
