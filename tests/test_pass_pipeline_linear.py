"""The default pass pipeline does work linear in the size of the graph.

Not a timing test: it counts the lines of brainstate's own code that the pipeline executes
(a Python-level work counter, deterministic), on the generated graph of
``tools/bench_passes.py`` at two sizes. Linear work gives a ratio near the ratio of the sizes;
any per-node step that walks the whole graph (a use-list rebuild, a search of the node list,
an analysis recomputed per node) makes it grow with the square.
"""

import os
import sys

import pytest

import brainstate
from brainstate import passes

from _project_files import load_project_file  # (tests/)


def _bench_module():
    return load_project_file('tools/bench_passes.py', '_bench_passes')


def _lines_executed(graph, pipeline=passes.DEFAULT_PIPELINE) -> dict:
    """How many lines of brainstate's code (and this file's) each pass of ``pipeline`` runs
    on ``graph`` (not JAX's: folding calls into JAX once per distinct operation), and
    ``'total'``."""
    count = 0
    package = os.path.dirname(brainstate.__file__)
    per_pass, marks = {}, [0]

    def local(frame, event, arg):
        nonlocal count
        if event == 'line':
            count += 1
        return local

    def on_call(frame, event, arg):
        filename = frame.f_code.co_filename
        return local if filename.startswith(package) or filename == __file__ else None

    def observe(p, record, graph):
        per_pass[p.name] = count - marks[-1]
        marks.append(count)

    manager = passes.PassManager(pipeline, verify=False, capture_reproducer=False,
                                 observer=observe)
    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        manager.run(graph)
    finally:
        sys.settrace(previous)
    per_pass['total'] = count
    return per_pass


SMALL, LARGE = 2_000, 8_000  # 4x the nodes: linear work is 4x the lines, quadratic 16x


@pytest.fixture(scope='module')
def counts():
    bench = _bench_module()
    return (_lines_executed(bench.generated_graph(SMALL)),
            _lines_executed(bench.generated_graph(LARGE)))


def test_pipeline_work_grows_linearly_with_the_graph(counts):
    small, large = counts
    # A little under 4x: each run has a fixed cost.
    assert 3.5 < large['total'] / small['total'] < 4.5, (small, large)
    # And the constant is small: the pipeline's own code runs a few dozen lines per node.
    assert large['total'] / LARGE < 80, large


@pytest.mark.parametrize('name', passes.DEFAULT_PIPELINE.split(','))
def test_each_pass_is_linear(counts, name):
    small, large = counts
    assert large[name] <= 4.5 * small[name] + 100, (name, small[name], large[name])


def test_the_counter_sees_quadratic_work():
    """The check above can fail: a pass that looks at every node for every node trips it."""
    @passes.register('test-quadratic', replace=True)
    def quadratic(graph):
        """Look at every node for every 50th node (a test of the work counter)."""
        for node in graph.nodes[::50]:
            for other in graph.nodes:
                if other is node:
                    break

    bench = _bench_module()
    small = _lines_executed(bench.generated_graph(1_000), ['test-quadratic'])['total']
    large = _lines_executed(bench.generated_graph(4_000), ['test-quadratic'])['total']
    assert large / small > 4.5
