"""The pictures (graph.to_dot / to_svg) name what the text IR names: %n ids, literals, and the
role and state of each region-body input."""

import re

import pytest

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


# -- the HTML report ---------------------------------------------------------------------------

def _check_self_contained(page: str):
    import html.parser

    class Collect(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.fetches, self.ids, self.links = [], set(), []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag in ('script', 'img', 'iframe') and attrs.get('src') or \
                    tag == 'link' and attrs.get('href'):
                self.fetches.append((tag, attrs))
            if 'id' in attrs:
                self.ids.add(attrs['id'])
            if tag == 'a':
                self.links.append(attrs.get('href'))

    parser = Collect()
    parser.feed(page)
    assert page.startswith('<!DOCTYPE html>')
    assert parser.fetches == []                   # nothing to load: works offline
    for link in parser.links:                     # every navigation link has its target
        assert link.startswith('#') and link[1:] in parser.ids, link
    return parser


def test_graph_to_html_is_a_self_contained_page(tmp_path):
    traced, _, net = _graphs()
    path = tmp_path / 'graph.html'
    page = traced.to_html(str(path))
    assert path.read_text() == page
    _check_self_contained(page)
    assert f'state_read @{net.V.label()}' in page and 'scan[' in page
    assert 'id="states"' in page and net.W.label() in page and 'id="picture"' in page


def test_command_line_html_report_shows_every_pass_and_its_diff(tmp_path, capsys):
    from brainstate._cli import ir_tool
    source = tmp_path / 'model.py'
    source.write_text(
        'import jax.numpy as jnp\nimport brainstate\n'
        'acc = brainstate.State(jnp.zeros(()), name="acc")\n'
        'def step(x):\n'
        '    acc.value = x * 2\n'
        '    acc.value = acc.value + jnp.sin(x) + jnp.sin(x)\n'
        '    return acc.value\n')
    report = tmp_path / 'report.html'
    pipeline = 'dead-writes,cse,hoist-states,dce'
    assert ir_tool.main([f'{source}:step', '--args', 'f32[]', '--passes', pipeline,
                         '--show', 'final', '--html', str(report)]) == 0
    assert f'// wrote {report}' in capsys.readouterr().out
    page = report.read_text()
    parser = _check_self_contained(page)
    names = re.findall(r'<a href="#stage-\d+"[^>]*>([^<]*)</a>', page)
    assert names == ['step: as traced'] + [f'after {p}' for p in pipeline.split(',')]
    assert {f'stage-{i}' for i in range(len(names))} <= parser.ids
    assert '<span class="del">' in page and '<span class="add">' in page  # the diffs


def _chromium():
    import shutil
    return shutil.which('chromium') or shutil.which('chromium-browser')


@pytest.mark.skipif(_chromium() is None,
                    reason='needs a headless Chromium (.ci/run installs Debian\'s chromium)')
def test_report_loads_in_a_headless_browser_without_console_errors(tmp_path):
    import subprocess
    from brainstate._cli import ir_tool
    source = tmp_path / 'model.py'
    source.write_text(
        'import jax.numpy as jnp\nimport brainstate\n'
        'v = brainstate.State(jnp.zeros(3), name="v")\n'
        'def step(xs):\n'
        '    def body(x):\n'
        '        v.value = v.value * 0.5 + x\n'
        '        return v.value.sum()\n'
        '    return brainstate.transform.for_loop(body, xs)\n')
    report = tmp_path / 'report.html'
    assert ir_tool.main([f'{source}:step', '--args', 'f32[4,3]', '--show', 'final',
                         '--html', str(report)]) == 0
    stages = len(re.findall(r'<a href="#stage-\d+"', report.read_text()))
    done = subprocess.run(
        [_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--enable-logging=stderr',
         '--v=0', f'--user-data-dir={tmp_path / "profile"}', '--dump-dom',
         report.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert stages >= 3 and all(f'id="stage-{i}"' in dom for i in range(stages)), dom[:500]
    assert 'id="states"' in dom and 'id="picture"' in dom
    console = [line for line in done.stderr.splitlines() if 'CONSOLE' in line]
    assert console == [], console
