"""The pictures (graph.to_dot / to_svg) name what the text IR names: %n ids, literals, and the
role and state of each region-body input."""

import os
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


# -- progress-bar bookkeeping folded; before and after side by side ---------------------------

def _simulate(pbar):
    net = LIF()

    def simulate(currents):
        return brainstate.transform.for_loop(net.update, currents, pbar=pbar)

    return brainstate.ir.trace(simulate, jnp.ones((6, 4)))


def _body(graph):
    return next(n for n in graph.nodes if n.kind == 'region').subgraphs[0]


def test_progress_bar_nodes_are_exactly_the_bookkeeping_the_bar_adds():
    plain, with_bar = _simulate(None), _simulate(True)
    assert brainstate.ir.progress_bar_nodes(plain) == []
    bookkeeping = brainstate.ir.progress_bar_nodes(with_bar)
    body = _body(with_bar)
    assert bookkeeping and all(node.graph is body for node in bookkeeping)
    # what is left is the loop body without a bar, operation for operation
    ops = lambda nodes: [n.name for n in nodes if n.kind not in ('input', 'output')]
    assert ops(n for n in body.nodes if n not in bookkeeping) == ops(_body(plain).nodes)
    ops = {n.name for n in bookkeeping}
    assert 'cond' in ops and 'add' in ops            # the host callbacks and the counter
    assert not any(n.is_state_op for n in bookkeeping)
    # passes keep what the nodes were traced in
    hoisted = brainstate.passes.hoist_states(with_bar.copy())
    assert len(brainstate.ir.progress_bar_nodes(hoisted)) == len(bookkeeping)


def test_named_scopes_reach_nodes_inlined_from_jit_helpers():
    import jax

    @jax.jit
    def helper(x):
        return jnp.sin(x) * 2

    def f(x):
        with jax.named_scope('my_scope'):
            y = helper(x) % 3.0           # jnp's remainder is a jit helper too
        return jnp.cos(y)

    graph = brainstate.ir.trace(f, jnp.ones(3))
    inside = {n.name for n in brainstate.ir.scope_nodes(graph, 'my_scope')}
    assert {'sin', 'mul', 'rem'} <= inside and 'cos' not in inside, inside


def _box_labels(dot):  # the boxes' labels (not the edges')
    return [m.replace('\\n', ' ') for m in re.findall(r'^\s*\w+ \[label="([^"]*)"', dot, re.M)]


def test_the_picture_folds_the_progress_bar_into_one_box():
    graph = _simulate(True)
    folded, unfolded = graph.to_dot(), graph.to_dot(fold_progress_bar=False)
    boxes = [label for label in _labels(folded) if label.startswith('progress bar')]
    count = len(brainstate.ir.progress_bar_nodes(graph))
    assert len(boxes) == 1 and f'{count} nodes folded' in boxes[0], boxes
    assert not any('progress bar' in label for label in _labels(unfolded))
    # folded: no other box defines the bookkeeping's values; unfolded: each has its box
    names = lambda v: brainstate.ir.value_name(v).split(':')[0]   # '%16:i32[]' -> '%16'
    hidden = {names(v) for n in brainstate.ir.progress_bar_nodes(graph) for v in n.outputs}
    shown = set(re.findall(r'(%\d+):', ' '.join(
        label for label in _box_labels(folded) if not label.startswith('progress bar'))))
    assert hidden and not hidden & shown, hidden & shown
    assert hidden <= set(re.findall(r'(%\d+):', ' '.join(_labels(unfolded))))
    # the counter is named as such, and no edge loops from the box to itself
    assert any(label.endswith('progress bar counter') for label in _labels(folded))
    assert not re.search(r'(\w+) -> \1 ', folded)
    assert len(_box_labels(folded)) == len(_box_labels(unfolded)) - count + 1


def test_before_and_after_are_drawn_side_by_side():
    traced = _simulate(True)
    hoisted = brainstate.passes.hoist_states(traced.copy())
    dot = hoisted.to_dot(before=traced)
    assert dot.count('subgraph cluster_before {') == 1
    assert dot.count('subgraph cluster_after {') == 1
    before_part, after_part = dot.split('subgraph cluster_after {')
    # each frame is that graph's own picture: its boxes, its %n names
    assert sorted(_labels(before_part)) == sorted(_labels(traced.to_dot()))
    assert sorted(_labels(after_part)) == sorted(_labels(hoisted.to_dot()))
    assert _labels(before_part) != _labels(after_part)
    unfolded = hoisted.to_dot(before=traced, fold_progress_bar=False)
    assert 'progress bar' not in unfolded


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


def test_graph_to_html_with_before_shows_both_and_their_diff():
    traced = _simulate(True)
    hoisted = brainstate.passes.hoist_states(traced.copy())
    page = hoisted.to_html(before=traced)
    _check_self_contained(page)
    names = re.findall(r'<a href="#stage-\d+"[^>]*>([^<]*)</a>', page)
    assert names == ['simulate (before)', 'simulate']
    assert '<span class="del">' in page and '<span class="add">' in page
    picture = page[page.index('id="picture"'):]
    assert 'before: simulate' in picture and 'after: simulate' in picture
    assert 'nodes folded' in picture
    assert 'nodes folded' not in hoisted.to_html(before=traced, fold_progress_bar=False)


def test_command_line_before_and_unfold(tmp_path, capsys):
    from brainstate._cli import ir_tool
    source = tmp_path / 'model.py'
    source.write_text(
        'import jax.numpy as jnp\nimport brainstate\n'
        'v = brainstate.State(jnp.zeros(3), name="v")\n'
        'def body(x):\n'
        '    v.value = v.value * 0.5 + x\n'
        '    return v.value.sum()\n'
        'def simulate(xs):\n'
        '    return brainstate.transform.for_loop(body, xs, pbar=True)\n')
    outputs = {}
    for flags in ([], ['--before'], ['--before', '--unfold']):
        dot = tmp_path / f'{len(flags)}.dot'
        assert ir_tool.main([f'{source}:simulate', '--args', 'f32[5,3]', '--show', 'final',
                             '--dot', str(dot)] + flags) == 0
        outputs[tuple(flags)] = dot.read_text()
    capsys.readouterr()
    plain, side, unfolded = outputs.values()
    assert 'cluster_before' not in plain and plain.count('nodes folded') == 1
    assert 'cluster_before' in side and 'cluster_after' in side
    assert side.count('nodes folded') == 2           # one loop drawn twice
    assert 'cluster_before' in unfolded and 'nodes folded' not in unfolded
    assert 'label="before: simulate"' in side
    assert ir_tool.build_parser().parse_args(['m.py:f', '--before', '--unfold']).unfold


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
        '    return brainstate.transform.for_loop(body, xs, pbar=True)\n')
    report = tmp_path / 'report.html'
    assert ir_tool.main([f'{source}:step', '--args', 'f32[4,3]', '--show', 'final',
                         '--before', '--html', str(report)]) == 0
    stages = len(re.findall(r'<a href="#stage-\d+"', report.read_text()))

    # Chromium's own files (dconf, caches) go to tmp_path, not the user's home
    home = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / 'cache'),
                XDG_CONFIG_HOME=str(tmp_path / 'config'))

    def load(page):  # (DOM after load, console lines) from a headless Chromium
        done = subprocess.run(
            [_chromium(), '--headless', '--no-sandbox', '--disable-gpu',
             '--enable-logging=stderr', '--v=0', f'--user-data-dir={tmp_path / "profile"}',
             '--dump-dom', page.as_uri()], capture_output=True, text=True, timeout=120,
            env=home)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout, [line for line in done.stderr.splitlines() if 'CONSOLE' in line]

    dom, console = load(report)
    assert stages >= 3 and all(f'id="stage-{i}"' in dom for i in range(stages)), dom[:500]
    assert 'id="states"' in dom and 'id="picture"' in dom
    assert 'before: step' in dom and 'nodes folded' in dom  # the picture, both sides, folded
    assert console == [], console
    # the check sees console errors: a page that logs one is caught
    bad = tmp_path / 'bad.html'
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("boom")</script>'
                   '</body></html>')
    assert any('boom' in line for line in load(bad)[1])
