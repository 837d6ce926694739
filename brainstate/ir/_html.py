"""A self-contained HTML report of a graph: its IR after each pass with the diff against the
previous stage, the state table and the picture. One file, no network (styles inline, the
picture as inline SVG when Graphviz is installed, else its DOT text).

``graph.to_html()`` reports one graph; ``brainstate-ir ... --html report.html`` reports a step
through every pass of the pipeline.
"""

from __future__ import annotations

import dataclasses
import difflib
import html
import shutil

__all__ = ['Stage', 'html_report']

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; display: flex; }
nav { position: sticky; top: 0; height: 100vh; overflow: auto; min-width: 14em;
      background: #f4f4f4; padding: 1em; box-sizing: border-box; }
nav a { display: block; color: #224; text-decoration: none; padding: .15em 0; }
nav a.unchanged { color: #888; }
main { padding: 1em 2em; overflow: auto; flex: 1; }
pre { background: #fafafa; border: 1px solid #ddd; padding: .6em; overflow: auto;
      font-size: 12px; line-height: 1.35; }
.add { background: #e6ffec; } .del { background: #ffebe9; } .hunk { color: #777; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.info { color: #555; font-size: 90%; }
svg { max-width: 100%; height: auto; }
"""


@dataclasses.dataclass
class Stage:
    """One step of the pipeline: its name, a line of information (time, counters) and the IR
    text after it."""
    name: str
    info: str
    text: str


def _diff_html(before: str, after: str) -> str:
    lines = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), 'before',
                                     'after', lineterm='', n=3):
        css = ('add' if line.startswith('+') and not line.startswith('+++') else
               'del' if line.startswith('-') and not line.startswith('---') else
               'hunk' if line.startswith('@@') else '')
        escaped = html.escape(line)
        lines.append(f'<span class="{css}">{escaped}</span>' if css else escaped)
    return '\n'.join(lines)


def _picture(graph, before, fold_progress_bar) -> str:
    from ._export import to_dot, to_svg
    if shutil.which('dot') is not None:
        try:
            svg = to_svg(graph, None, before, fold_progress_bar)
            return svg[svg.index('<svg'):]  # inline: drop the XML prologue and doctype
        except Exception as error:  # a picture is a bonus: the report still stands
            note = f'Graphviz could not draw the graph: {html.escape(str(error))}'
    else:
        note = ('Graphviz is not installed (Debian/Ubuntu: apt-get install graphviz): the '
                'picture is given as its DOT text.')
    return (f'<p class="info">{note}</p><details><summary>DOT</summary>'
            f'<pre>{html.escape(to_dot(graph, before, fold_progress_bar))}</pre></details>')


def html_report(title: str, stages: list[Stage], graph, before=None,
                fold_progress_bar: bool = True) -> str:
    """The page: a navigation list, one section per stage (IR and diff against the previous
    stage), then the state table and picture of ``graph`` (the last stage's graph); with
    ``before`` (the first stage's graph), the picture draws the two side by side.
    ``fold_progress_bar`` as for :func:`brainstate.ir._export.to_dot`."""
    nav, sections = [], []
    previous = None
    for index, stage in enumerate(stages):
        anchor = f'stage-{index}'
        unchanged = previous is not None and previous == stage.text
        nav.append(f'<a href="#{anchor}"{" class=unchanged" if unchanged else ""}>'
                   f'{html.escape(stage.name)}</a>')
        parts = [f'<section id="{anchor}"><h2>{html.escape(stage.name)}</h2>']
        if stage.info:
            parts.append(f'<p class="info">{html.escape(stage.info)}</p>')
        if previous is not None:
            if unchanged:
                parts.append('<p class="info">unchanged</p>')
            else:
                parts.append('<details open><summary>diff against the previous stage</summary>'
                             f'<pre class="diff">{_diff_html(previous, stage.text)}</pre>'
                             '</details>')
        parts.append(f'<details{" open" if index in (0, len(stages) - 1) else ""}>'
                     f'<summary>IR</summary><pre>{html.escape(stage.text)}</pre></details>')
        parts.append('</section>')
        sections.append('\n'.join(parts))
        previous = stage.text
    nav.append('<a href="#states">states</a><a href="#picture">picture</a>')
    sections.append(f'<section id="states"><h2>states</h2>'
                    f'<pre>{html.escape(graph.state_table())}</pre></section>')
    picture = _picture(graph, before, fold_progress_bar)
    sections.append(f'<section id="picture"><h2>picture</h2>{picture}</section>')
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>'
            f'<nav><strong>{html.escape(title)}</strong>{"".join(nav)}</nav>'
            f'<main>{"".join(sections)}</main></body></html>\n')
