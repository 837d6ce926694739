"""The PassManager: runs a pipeline of passes with verification, IR printing, timing and
statistics as instrumentation every pass gets for free, and a reproducer on failure."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from typing import NamedTuple

from .._errors import BrainStateError
from ..ir._gc import paused_gc
from ._pass import Pass, PassStatistics, get_pass

__all__ = ['PassManager', 'PassFailure', 'PassRecord', 'parse_pipeline']


class PassFailure(BrainStateError):
    """A pass raised, or left a graph the verifier rejects. ``reproducer`` is the path of a file
    holding the pipeline and the IR as it was before the failing pass."""

    def __init__(self, message, reproducer: str | None = None):
        super().__init__(message)
        self.reproducer = reproducer


class PassRecord(NamedTuple):
    """What one pass did in one run: its wall time, counters, and whether the IR changed."""
    name: str
    seconds: float
    stats: PassStatistics
    changed: bool | None  # None when not measured (no IR printing asked for)


def parse_pipeline(pipeline) -> list[Pass]:
    """Passes from a string ``"a,b,c"``, a list of names / Pass objects / functions, or None."""
    if pipeline is None:
        return []
    if isinstance(pipeline, PassManager):
        return list(pipeline.passes)
    if isinstance(pipeline, str):
        names = [p.strip() for p in pipeline.split(',') if p.strip()]
        return [get_pass(name) for name in names]
    return [get_pass(p) for p in pipeline]


class PassManager:
    """Runs passes in order over a Graph.

    Args:
      pipeline: ``"hoist-states,dead-writes,dce,cse"``, a list of names, Pass objects or
        functions, or another PassManager. ``str(manager)`` prints it back as a string.
      verify: run the IR verifier after each pass (a broken edit is caught at the pass that
        made it).
      print_ir: ``None``, ``'before'``, ``'after'``, ``'both'`` or ``'changed'`` (after a pass
        only if it changed the text of the IR).
      stream: where IR printing goes (default ``sys.stdout``).
      reproducer_dir: where a failing pass leaves its reproducer (default: the temp folder).
      capture_reproducer: keep a copy of the IR before each pass, so a failure's reproducer
        holds the IR exactly as the failing pass received it (costs a graph copy per pass;
        without it the reproducer holds the IR as the failing pass left it).

    After ``run``, ``records`` holds a :class:`PassRecord` per pass and ``report()`` formats them.

    Example::

        pm = brainstate.passes.PassManager('hoist-states,dead-writes,dce', print_ir='changed')
        pm.run(graph)
        print(pm.report())
    """

    def __init__(self, pipeline=None, *, verify: bool = True, print_ir: str | None = None,
                 stream=None, reproducer_dir: str | None = None,
                 capture_reproducer: bool = True):
        if print_ir not in (None, 'before', 'after', 'both', 'changed'):
            raise ValueError(f"print_ir must be None, 'before', 'after', 'both' or 'changed', "
                             f"got {print_ir!r}.")
        self.passes: list[Pass] = parse_pipeline(pipeline)
        self.verify = verify
        self.print_ir = print_ir
        self.stream = stream
        self.reproducer_dir = reproducer_dir
        self.capture_reproducer = capture_reproducer
        self.records: list[PassRecord] = []

    def __str__(self):
        return ','.join(p.name for p in self.passes)

    def __repr__(self):
        return f'PassManager({str(self)!r})'

    def _print(self, text):
        print(text, file=self.stream or sys.stdout)

    def run(self, graph):
        """Run every pass on ``graph`` (in place) and return it."""
        # Passes allocate many small cyclic objects (nodes and values refer to each other); the
        # cycle collector would walk the whole graph again and again (~30% of the time at
        # 100k nodes). See brainstate/ir/_gc.py.
        with paused_gc():
            return self._run(graph)

    def _run(self, graph):
        self.records = []
        for index, p in enumerate(self.passes):
            want_text = self.print_ir is not None
            before = graph.format() if want_text else None
            if self.print_ir in ('before', 'both'):
                self._print(f'// ----- IR before {p.name} -----\n{before}')
            snapshot = graph.copy() if self.capture_reproducer else None
            stats = PassStatistics()
            start = time.perf_counter()
            try:
                p.run(graph, stats)
            except BrainStateError:
                raise  # the user's mistake, found by the pass (e.g. a BatchAxisError)
            except Exception as error:
                raise self._failure(graph, snapshot, index, error) from error
            seconds = time.perf_counter() - start
            if self.verify:
                try:
                    graph.verify()
                except Exception as error:
                    raise self._failure(graph, snapshot, index, error) from error
            after = graph.format() if want_text else None
            changed = (after != before) if want_text else None
            self.records.append(PassRecord(p.name, seconds, stats, changed))
            if self.print_ir in ('after', 'both') or (self.print_ir == 'changed' and changed):
                self._print(f'// ----- IR after {p.name} ({stats or "no counters"}) -----\n'
                            f'{after}')
        return graph

    def _failure(self, graph, snapshot, index, error) -> PassFailure:
        failing = self.passes[index]
        # The reproducer holds the pipeline from the failing pass on and the IR it received
        # (captured before the pass), or else the IR as the pass left it: enough to replay it.
        if snapshot is not None:
            source, what = snapshot, 'the IR before the failing pass'
        else:
            source, what = graph, ('the IR as the failing pass left it (capture_reproducer='
                                   'True keeps the IR before it)')
        try:
            text = source.format()
        except Exception as print_error:  # the failing pass broke the graph beyond printing
            text = f'<the graph could not be printed: {print_error!r}>'
        remaining = ','.join(p.name for p in self.passes[index:])
        folder = self.reproducer_dir or tempfile.gettempdir()
        os.makedirs(folder, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f'brainstate-reproducer-{failing.name}-',
                                    suffix='.txt', dir=folder)
        with os.fdopen(fd, 'w') as f:
            f.write(f'// brainstate pass reproducer\n// pipeline: {self}\n'
                    f'// failing pass: {failing.name} (replay: {remaining})\n'
                    f'// error: {error!r}\n// below: {what}\n')
            f.write(''.join('// ' + line + '\n' for line in
                            traceback.format_exception(error)[-6:]))
            f.write(text + '\n')
        return PassFailure(
            f'Pass {failing.name!r} failed: {error}. The pipeline and {what.split(" (")[0]} '
            f'are in {path}.', reproducer=path)

    def report(self) -> str:
        """One line per pass: wall time and counters, e.g. ``dead-writes  0.1 ms  3 writes
        removed``."""
        width = max((len(r.name) for r in self.records), default=0)
        lines = []
        for r in self.records:
            lines.append(f'{r.name:<{width}}  {r.seconds * 1e3:8.3f} ms  '
                         f'{str(r.stats) or "-"}')
        total = sum(r.seconds for r in self.records)
        lines.append(f'{"total":<{width}}  {total * 1e3:8.3f} ms')
        return '\n'.join(lines)

    def statistics(self) -> dict[str, PassStatistics]:
        """``{pass name: counters}`` of the last run."""
        return {r.name: r.stats for r in self.records}
