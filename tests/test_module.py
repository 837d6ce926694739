"""Module trees: registration, paths, selection by filters."""

import jax.numpy as jnp
import pytest

import brainstate
from brainstate.util import filter as F


class Layer(brainstate.Module):
    def __init__(self, n):
        super().__init__()
        self.w = brainstate.ParamState(jnp.ones((n, n)))
        self.b = brainstate.ParamState(jnp.zeros(n), tag='bias')
        self.v = brainstate.HiddenState(jnp.zeros(n))


class Net(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.layers = [Layer(2), Layer(3)]
        self.extra = {'count': brainstate.ShortTermState(jnp.zeros(()))}
        self.pair = (brainstate.LongTermState(jnp.zeros(1)),)


def test_states_keyed_by_path_in_stable_order():
    net = Net()
    states = net.states()
    # Attributes in alphabetical order (as the published BrainState walks a Node).
    assert list(states) == [
        ('extra', 'count'),
        ('layers', 0, 'b'), ('layers', 0, 'v'), ('layers', 0, 'w'),
        ('layers', 1, 'b'), ('layers', 1, 'v'), ('layers', 1, 'w'),
        ('pair', 0)]
    assert states[('layers', 1, 'w')] is net.layers[1].w


def test_filter_by_type_tag_predicate_and_everything():
    net = Net()
    params = net.states(brainstate.ParamState)
    assert set(params) == {('layers', 0, 'w'), ('layers', 0, 'b'), ('layers', 1, 'w'),
                           ('layers', 1, 'b')}
    assert set(net.states('bias')) == {('layers', 0, 'b'), ('layers', 1, 'b')}
    assert set(net.states(lambda path, s: path[-1] == 'v')) == {('layers', 0, 'v'),
                                                                ('layers', 1, 'v')}
    assert len(net.states(...)) == 8
    # HiddenState is a ShortTermState.
    assert len(net.states(brainstate.ShortTermState)) == 3


def test_filter_combinators():
    net = Net()
    sel = net.states(F.All(brainstate.ParamState, F.Not(F.WithTag('bias'))))
    assert set(sel) == {('layers', 0, 'w'), ('layers', 1, 'w')}
    # ParamState is a LongTermState (as published): exclude the parameters.
    sel = net.states(F.Any(F.All(F.OfType(brainstate.LongTermState),
                                 F.Not(brainstate.ParamState)), F.PathContains('extra')))
    assert set(sel) == {('extra', 'count'), ('pair', 0)}
    sel = net.states(F.All(F.PathContains(1), brainstate.HiddenState))
    assert set(sel) == {('layers', 1, 'v')}


def test_several_filters_give_one_mapping_each_first_match_wins():
    net = Net()
    params, hidden, rest = net.states(brainstate.ParamState, brainstate.HiddenState, ...)
    assert len(params) == 4 and len(hidden) == 2 and len(rest) == 2
    assert not set(params) & set(rest)


def test_a_state_reachable_twice_appears_once():
    net = Net()
    net.alias = net.layers[0].w
    paths = [p for p, s in net.states().items() if s is net.layers[0].w]
    assert paths == [('alias',)]   # the first path in alphabetical attribute order


def test_nodes_and_function_forms():
    net = Net()
    nodes = net.nodes()
    assert list(nodes) == [('layers', 0), ('layers', 1), ()]   # children before their parent
    assert brainstate.graph.nodes(net, Layer).keys() == {('layers', 0), ('layers', 1)}
    assert brainstate.graph.states(net, brainstate.ParamState) == net.states(brainstate.ParamState)
    assert brainstate.nn.Module is brainstate.Module
    assert issubclass(brainstate.Module, brainstate.graph.Node)


def test_state_label_is_its_path_from_the_root():
    net = Net()
    assert net.layers[1].w.label() == 'Net.layers.1.w'
    assert net.extra['count'].label() == 'Net.extra.count'


def test_states_appended_later_are_found():
    net = Net()
    net.layers.append(Layer(1))
    assert ('layers', 2, 'w') in net.states()
    assert net.layers[2].w.label() == 'Net.layers.2.w'


def test_flat_mapping_helpers():
    net = Net()
    params = net.states(brainstate.ParamState)
    values = params.to_dict_values()
    assert values[('layers', 0, 'w')].shape == (2, 2)
    values[('layers', 0, 'b')] = jnp.ones(2)
    params.assign_dict_values(values)       # every key must be given, as published
    assert float(net.layers[0].b.value.sum()) == 2.0
    with pytest.raises(KeyError):
        params.assign_dict_values({('layers', 0, 'b'): jnp.ones(2)})
    assert params.to_nest()['layers'][1]['w'] is net.layers[1].w
    assert set(params.filter('bias')) == {('layers', 0, 'b'), ('layers', 1, 'b')}


def test_bad_filter_is_explained():
    with pytest.raises(TypeError, match='Invalid collection filter'):
        Net().states(3)
