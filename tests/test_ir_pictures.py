"""The pictures (graph.to_dot / to_svg) name what the text IR names: %n ids, literals, and the
role and state of each region-body input."""

import re

import jax.numpy as jnp

import brainstate


class LIF(brainstate.Module):
    def __init__(self):
        super().__init__()
        self.V = brainstate.HiddenState(jnp.zeros(4))
        self.W = brainstate.ParamState(jnp.ones(4))

    def update(self, current):
        V = self.V.value + 0.5 * (current * self.W.value - self.V.value)
        self.V.value = jnp.where(V >= 1.0, 0.0, V)
        return V


def _graphs():
    net = LIF()

    def simulate(currents):
        return brainstate.transform.for_loop(net.update, currents)

    traced = brainstate.ir.trace(simulate, jnp.ones((6, 4)))
    return traced, brainstate.passes.hoist_states(traced.copy()), net


def _labels(dot: str) -> list:
    return [m.replace('\\n', ' ') for m in re.findall(r'\[label="([^"]*)"', dot)]


def test_every_value_of_the_text_ir_names_a_box_of_the_picture():
    for graph in _graphs()[:2]:
        text, dot = str(graph), graph.to_dot()
        defined = set(re.findall(r'(%\d+):', text))
        labels = ' '.join(_labels(dot))
        in_picture = set(re.findall(r'(%\d+):', labels))
        assert defined and defined == in_picture, (defined ^ in_picture)
        # each box says what it computes from what, as the text line does
        for line in text.splitlines():
            match = re.match(r'\s*(%\d+):(\S+) = (\w+) ([^{]*?)\s*$', line)
            if match and '[' not in match.group(3):
                name, typ, op, _ = match.groups()
                assert any(label.startswith(f'{name}:{typ} = {op}') for label in _labels(dot)), line


def test_literal_operands_are_shown():
    traced, _, _ = _graphs()
    labels = _labels(traced.to_dot())
    assert any(label.endswith('1.0:f32[]') and ' = ge ' in label for label in labels), labels
    assert any('0.5:f32[]' in label and ' = mul ' in label for label in labels), labels


def test_region_body_inputs_are_labelled_by_role_and_state():
    _, hoisted, net = _graphs()
    labels = _labels(hoisted.to_dot())
    inputs = [label for label in labels if label.startswith('input ')]
    # the states as the text IR names them (state_read @...)
    assert f'state_read @{net.V.label()}' in str(hoisted)
    assert any(label.endswith(f'carry of @{net.V.label()}') for label in inputs), inputs
    assert any(label.endswith(f'invariant of @{net.W.label()}') for label in inputs), inputs
    assert any(re.search(r'slice of %0$', label) for label in inputs), inputs
