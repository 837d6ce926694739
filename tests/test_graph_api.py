"""brainstate.graph's functional API (flatten, treefy_split/merge, states, ...) and util's
containers, checked against plain Python / JAX expectations."""

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainstate
from brainstate import graph, util


class Block(brainstate.graph.Node):
    def __init__(self, n):
        self.w = brainstate.ParamState(jnp.ones((n, n)))
        self.h = brainstate.HiddenState(jnp.zeros(n))
        self.act = 'relu'


class Net(brainstate.graph.Node):
    graph_invisible_attrs = ('cache',)

    def __init__(self):
        self.blocks = [Block(2), Block(3)]
        self.shared = self.blocks[0].w          # the same State twice
        self.cache = {'not': 'seen'}


def test_split_merge_roundtrip_keeps_sharing_and_values():
    net = Net()
    graphdef, params, rest = graph.treefy_split(net, brainstate.ParamState, ...)
    assert set(params.to_flat()) == {('blocks', 0, 'w'), ('blocks', 1, 'w')}
    assert set(rest.to_flat()) == {('blocks', 0, 'h'), ('blocks', 1, 'h')}
    doubled = jax.tree.map(lambda x: 2 * x, params)
    new = graph.treefy_merge(graphdef, doubled, rest)
    assert new is not net and new.shared is new.blocks[0].w and new.blocks[1].act == 'relu'
    np.testing.assert_array_equal(new.blocks[1].w.value, 2 * jnp.ones((3, 3)))
    np.testing.assert_array_equal(net.blocks[1].w.value, jnp.ones((3, 3)))  # original intact
    assert hash(graphdef) == hash(graph.graphdef(net)) and graphdef == graph.graphdef(net)
    with pytest.raises(ValueError, match='Non-exhaustive'):
        graph.treefy_split(net, brainstate.ParamState)


def test_states_nodes_and_hierarchy():
    net = Net()
    states = graph.states(net)
    assert list(states) == [('blocks', 0, 'h'), ('blocks', 0, 'w'), ('blocks', 1, 'h'),
                            ('blocks', 1, 'w')]                 # alphabetical, each once
    params, hidden = graph.states(net, brainstate.ParamState, brainstate.HiddenState)
    assert len(params) == 2 and len(hidden) == 2
    # (0, 0): only what the root holds without entering a sub-node: the alias 'shared'
    assert list(graph.states(net, allowed_hierarchy=(0, 0))) == [('shared',)]
    assert len(graph.states(net, allowed_hierarchy=(1, 1))) == 4
    assert list(graph.nodes(net)) == [('blocks', 0), ('blocks', 1), ()]
    assert 'cache' not in dict(graph.iter_leaf(net)).keys()


def test_clone_pop_update_and_deepcopy():
    net = Net()
    twin = graph.clone(net)
    twin.blocks[0].w.value = jnp.zeros((2, 2))
    assert float(net.blocks[0].w.value.sum()) == 4.0
    deep = copy.deepcopy(net)
    assert deep.blocks[0].w is not net.blocks[0].w
    values = graph.treefy_states(net, brainstate.ParamState)
    values = jax.tree.map(lambda x: x + 1, values)
    graph.update_states(net, values)
    assert float(net.blocks[1].w.value[0, 0]) == 2.0
    popped = graph.pop_states(net, brainstate.HiddenState)
    assert set(popped.to_flat()) == {('blocks', 0, 'h'), ('blocks', 1, 'h')}
    assert not hasattr(net.blocks[0], 'h')


def test_graph_to_tree_and_back_shares_states_across_leaves():
    a = Block(2)
    tree, found = graph.graph_to_tree((a, a))
    assert len(found) == 2
    back = graph.tree_to_graph(tree)
    assert back[0] is back[1] and back[0] is not a


def test_nested_and_flatted_dicts():
    nested = util.NestedDict({'a': {'b': 1, 'c': 2}, 'd': 3})
    flat = nested.to_flat()
    assert dict(flat) == {('a', 'b'): 1, ('a', 'c'): 2, ('d',): 3}
    assert flat.to_nest() == nested
    assert util.nest_mapping(util.flat_mapping({'x': {}}, keep_empty_nodes=True)) == {'x': {}}
    merged = util.NestedDict.merge(nested, util.FlattedDict({('a', 'b'): 10}))
    assert merged['a']['b'] == 10 and merged['d'] == 3
    leaves = jax.tree.leaves(nested)
    assert sorted(leaves) == [1, 2, 3]


def test_dict_helpers_and_struct():
    d = util.DotDict({'lr': 0.1, 'inner': {'beta': 0.9}})
    assert d.inner.beta == 0.9
    d.inner.update({'gamma': 1})
    assert d.to_dict() == {'lr': 0.1, 'inner': {'beta': 0.9, 'gamma': 1}}
    frozen = util.freeze({'a': {'b': 1}})
    with pytest.raises(TypeError):
        frozen['a'] = 2
    assert hash(frozen) == hash(util.FrozenDict({'a': {'b': 1}}))
    assert pickle.loads(pickle.dumps(frozen)) == frozen
    assert util.flatten_dict({'a': {'b': 1}}) == {'a.b': 1}
    assert util.unflatten_dict({'a.b': 1}) == {'a': {'b': 1}}

    @util.dataclass
    class P:
        w: jax.Array
        name: str = util.field(pytree_node=False, default='p')

    p = P(jnp.ones(2))
    assert jax.tree.leaves(p)[0].shape == (2,) and len(jax.tree.leaves(p)) == 1
    q = jax.tree.map(lambda x: x * 3, p)
    assert q.name == 'p' and float(q.w[0]) == 3.0
    assert p.replace(name='q').name == 'q'


def test_filters_as_published():
    from brainstate.util.filter import OfType, PathContains, WithTag
    tagged = brainstate.State(jnp.zeros(1), tag='fast')
    assert WithTag('fast')((), tagged) and not WithTag('slow')((), tagged)
    with pytest.raises(TypeError):
        WithTag(3)
    with pytest.raises(AttributeError):
        WithTag('x').tag = 'y'
    path = jax.tree_util.tree_leaves_with_path({'layer': {'weight': 1}})[0][0]
    assert PathContains('weight')(path, None)
    assert OfType(brainstate.ParamState)((), brainstate.ParamState(jnp.zeros(1)).to_state_ref())
