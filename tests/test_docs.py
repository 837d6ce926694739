"""Every ```python block of the guide (docs/*.md) and of README.md runs, so the docs cannot drift.

The blocks of a page run in order in one namespace (like a notebook), from the repository root,
after the page's setup code. HTML comments steer the runner; they are invisible on the site:

* ``<!-- docs-test: skip REASON -->`` just before a block: not run (it needs something this
  machine lacks, or it is a sketch); the reason is required.
* ``<!-- docs-test: output -->`` just before a non-python block: it must equal what the python
  blocks printed since the last checked output (trailing spaces and blank edge lines ignored).
* ``<!-- docs-test: setup CODE -->`` anywhere: CODE runs before the page's first block.

Pages other helpers own get their setup here (``PAGE_SETUP``) rather than in their text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MARKER = re.compile(r'^\s*<!--\s*docs-test:\s*(skip|output|setup)\b\s*(.*?)\s*-->\s*$', re.S)
_FENCE = re.compile(r'^(\s*)(```+|~~~+)\s*([\w+-]*)')

# writing-a-pass.md builds on examples/custom_passes.py (its `step`, `node_flops`, `is_one`).
# ir.md's region-kind block works on `node`: a loop region of a hoisted graph.
PAGE_SETUP = {
    'docs/ir.md': '''
import jax.numpy as jnp
import brainstate
_acc = brainstate.State(jnp.zeros(2), name='acc')

def _step(xs):
    def body(x):
        _acc.value = _acc.value + x
        return x * 2
    return brainstate.transform.for_loop(body, xs)

_graph = brainstate.passes.hoist_states(brainstate.ir.trace(_step, jnp.ones((3, 2))))
node = next(n for n in _graph.walk() if n.kind == 'region')
i = j = k = 0      # the block's placeholder positions
''',
    'docs/writing-a-pass.md': "exec(compile(open('examples/custom_passes.py').read(), "
                              "'examples/custom_passes.py', 'exec'))",
}


@dataclasses.dataclass
class Block:
    language: str
    code: str
    line: int                 # 1-based line of the opening fence
    marker: str | None = None  # 'skip' or 'output'
    reason: str = ''


def parse_page(text: str) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a markdown page, with their markers, and the page's setup code."""
    lines = text.splitlines()
    blocks, setup, pending = [], [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith('<!--') and 'docs-test:' in line:
            end = i
            while '-->' not in lines[end]:
                end += 1
            match = _MARKER.match('\n'.join(lines[i:end + 1]))
            if match is None:
                raise ValueError(f'line {i + 1}: unreadable docs-test marker')
            kind, rest = match.groups()
            if kind == 'setup':
                setup.append(rest)
            else:
                if kind == 'skip' and not rest:
                    raise ValueError(f'line {i + 1}: docs-test: skip needs a reason')
                pending = (kind, rest)
            i = end + 1
            continue
        fence = _FENCE.match(line)
        if fence:
            indent, ticks, language = fence.groups()
            body, j = [], i + 1
            while j < len(lines) and not lines[j].strip().startswith(ticks):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
                j += 1
            block = Block(language, '\n'.join(body) + '\n', i + 1)
            if pending is not None:
                block.marker, block.reason = pending
            blocks.append(block)
            pending = None
            i = j + 1
            continue
        if line.strip():
            pending = None  # a marker stands just before its block (blank lines allowed)
        i += 1
    return blocks, setup


def _normalized(text: str) -> str:
    return '\n'.join(line.rstrip() for line in text.strip('\n').splitlines())


def run_page(path: str, setup: str | None = None) -> int:
    """Run the page's python blocks; return how many ran. Raises AssertionError naming the
    block (by line) that failed or whose shown output differs."""
    import brainstate
    with open(path) as f:
        blocks, setups = parse_page(f.read())
    namespace = {'__name__': '__docs__' + re.sub(r'\W', '_', os.path.relpath(path, ROOT))}
    printed = io.StringIO()
    saved_pipeline = brainstate.passes.get_default_pipeline()
    # The page registers passes (writing-a-pass.md defines the examples' ones again): it runs
    # with only the built-in passes registered, and leaves the registry as it found it.
    from brainstate.passes import _pass
    saved_registry = (dict(_pass._REGISTRY), dict(_pass._REGISTERED_FROM))
    for name, (module, _) in saved_registry[1].items():
        if not (module or '').startswith('brainstate.'):
            del _pass._REGISTRY[name], _pass._REGISTERED_FROM[name]
    cwd = os.getcwd()
    ran = 0
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(printed):
            for code in ([setup] if setup else []) + setups:
                exec(compile(code, f'{path} (setup)', 'exec'), namespace)
        for block in blocks:
            where = f'{os.path.relpath(path, ROOT)}:{block.line}'
            if block.marker == 'skip':
                continue
            if block.marker == 'output':
                shown, got = _normalized(block.code), _normalized(printed.getvalue())
                assert got == shown, (f'{where}: the block shows\n{shown}\nbut the code before '
                                      f'it prints\n{got}')
                printed = io.StringIO()
                continue
            if block.language not in ('python', 'py'):
                continue
            source = '\n' * (block.line) + block.code  # tracebacks point at the page's lines
            with contextlib.redirect_stdout(printed):
                try:
                    exec(compile(source, path, 'exec'), namespace)
                except Exception as error:
                    raise AssertionError(f'{where}: the block raised {error!r}') from error
            ran += 1
    finally:
        os.chdir(cwd)
        brainstate.passes.set_default_pipeline(saved_pipeline)
        for registry, saved in zip((_pass._REGISTRY, _pass._REGISTERED_FROM), saved_registry):
            registry.clear()
            registry.update(saved)
    return ran


def _pages():
    pages = sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md'))) + [os.path.join(ROOT, 'README.md')]
    out = []
    for page in pages:
        with open(page) as f:
            blocks, _ = parse_page(f.read())
        if any(b.language in ('python', 'py') for b in blocks):
            out.append(os.path.relpath(page, ROOT))
    return out


@pytest.mark.parametrize('page', _pages())
def test_python_blocks_of_the_page_run(page):
    assert run_page(os.path.join(ROOT, page), PAGE_SETUP.get(page)) > 0


# -- the runner itself -------------------------------------------------------------------------

def test_runner_reports_the_failing_block_and_a_drifted_output(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('Intro.\n\n```python\nx = 2\nprint(x * 3)\n```\n\n'
                    '<!-- docs-test: output -->\n```\n6\n```\n\n'
                    '<!-- docs-test: skip needs a GPU -->\n```python\nraise SystemExit\n```\n')
    assert run_page(str(page)) == 1
    page.write_text('```python\nprint(1)\n```\n<!-- docs-test: output -->\n```\n2\n```\n')
    with pytest.raises(AssertionError, match='page.md:5: the block shows'):
        run_page(str(page))
    page.write_text('```python\nok = 1\n```\n\n```python\nundefined_name\n```\n')
    with pytest.raises(AssertionError, match="page.md:5: the block raised NameError"):
        run_page(str(page))


def test_runner_needs_a_reason_to_skip_and_runs_setup_first(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('<!-- docs-test: skip -->\n```python\npass\n```\n')
    with pytest.raises(ValueError, match='needs a reason'):
        run_page(str(page))
    page.write_text('<!-- docs-test: setup y = 41 -->\n\n```python\nassert y + 1 == 42\n```\n')
    assert run_page(str(page)) == 1
