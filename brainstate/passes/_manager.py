"""The PassManager: runs a pipeline of passes with verification, IR printing, timing and
statistics as instrumentation every pass gets for free, and a reproducer on failure.

What reaches the user when something goes wrong:

* a pass raises: the pass's own exception, unchanged (same object, same type), with the pass's
  name attached (``error.pass_name``, and a note shown under the traceback) and the path of a
  reproducer (``error.reproducer``). Errors that are the user's program's fault, found by a pass
  (a :class:`~brainstate.BrainStateError` such as a ``BatchAxisError``), get the name only;
* a pass leaves a graph the verifier rejects: :class:`PassFailure` naming the pass, with the
  verifier's message (which names the values by the ``%n`` of the printed IR) and a reproducer.

A reproducer is a text file: the pipeline from the failing pass on, and the IR. It replays with
``brainstate-ir replay FILE`` (see :mod:`brainstate._cli.ir_tool`). Reproducers are written
only when a pass fails, to ``reproducer_dir`` (the PassManager's, else the one set with
``brainstate.passes.set_pass_options(reproducer_dir=...)``, else the ``BRAINSTATE_REPRODUCER_DIR``
environment variable, else the system's temporary folder).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from typing import NamedTuple

import jax

from .._errors import BrainStateError
from ..ir import GraphEditError, IRVerificationError
from ..ir._gc import paused_gc
from ._pass import (PARSED_PIPELINES, REGISTRATIONS, FunctionPass, Pass, PassStatistics,
                    get_pass)

__all__ = ['PassManager', 'PassFailure', 'PassRecord', 'parse_pipeline']


class PassFailure(BrainStateError):
    """A pass left a graph the verifier rejects. ``pass_name`` names the pass; ``reproducer``
    is the path of a file holding the pipeline and the IR (see the module docstring)."""

    def __init__(self, message, reproducer: str | None = None, pass_name: str | None = None):
        super().__init__(message)
        self.reproducer = reproducer
        self.pass_name = pass_name


class PassRecord(NamedTuple):
    """What one pass did in one run: its wall time, counters, and whether it changed the graph
    (edited it through the Graph's editing API: see ``Graph.edit_count``)."""
    name: str
    seconds: float
    stats: PassStatistics
    changed: bool


# Settings shared by every PassManager that is not given its own (set_pass_options sets them).
DEFAULTS = {'reproducer_dir': None}


def reproducer_folder(explicit: str | None = None) -> str:
    """Where a failing pass writes its reproducer (see the module docstring)."""
    return (explicit or DEFAULTS['reproducer_dir'] or os.environ.get('BRAINSTATE_REPRODUCER_DIR')
            or tempfile.gettempdir())


def parse_pipeline(pipeline) -> list[Pass]:
    """Passes from a string ``"a,b,c"``, a list of names / Pass objects / functions, a single
    Pass object, Pass class or function, another PassManager, or None."""
    if pipeline is None:
        return []
    if isinstance(pipeline, PassManager):
        return list(pipeline.passes)
    if isinstance(pipeline, Pass) or isinstance(pipeline, type) or (
            callable(pipeline) and not hasattr(pipeline, '__iter__')):
        return [get_pass(pipeline)]  # one pass: passes=my_pass
    if not isinstance(pipeline, str) and not hasattr(pipeline, '__iter__'):
        raise TypeError(f'{pipeline!r} is not a pipeline: give a string such as "cse,dce", a '
                        f'list of pass names, Pass objects or functions, a single pass, or a '
                        f'PassManager.')
    if isinstance(pipeline, str):
        generation = REGISTRATIONS[0]  # read before the registry (see PARSED_PIPELINES)
        known = PARSED_PIPELINES.get(pipeline)
        if known is not None and known[0] == generation:
            return list(known[1])
        names = [p.strip() for p in pipeline.split(',') if p.strip()]
        passes = [get_pass(name) for name in names]
        if all(type(p) is FunctionPass for p in passes):  # (shared, stateless instances)
            PARSED_PIPELINES[pipeline] = (generation, tuple(passes))
        return passes
    if iter(pipeline) is pipeline:  # a generator or iterator: used up by the first trace
        raise TypeError(f'{pipeline!r} is an iterator: a pipeline is read again at every trace, '
                        f'and an iterator gives its passes only once. Give a list instead '
                        f'(list(...)).')
    return [get_pass(p) for p in pipeline]


def fixed_signature(graph) -> tuple:
    """The top-level graph's parameter and result types, as ``graph.meta['fixed_signature']``
    takes them: a transform sets it before its pipeline runs, since the compiled function is
    called with the traced function's arguments and its results are unflattened into the
    traced function's output structure. A pass that changes them (removes an unused
    parameter, drops a result, returns a value of another shape) is then stopped, by name."""
    return (tuple([(v.aval.shape, v.aval.dtype) for v in graph.inputs]),
            tuple([(v.aval.shape, v.aval.dtype) for v in graph.outputs]))


def signature_change(graph, fixed) -> str | None:
    """Why ``graph`` no longer has the signature ``fixed`` (see :func:`fixed_signature`), or
    None."""
    now = fixed_signature(graph)
    if now == fixed:
        return None
    from ..ir._printer import short_type

    def show(sig):
        ins, outs = (', '.join(short_type(jax.core.ShapedArray(s, d)) for s, d in types)
                     for types in sig)
        return f'({ins}) -> ({outs})'

    return (f"graph '{graph.name}' is the traced function, called with its arguments: its "
            f"parameters and results must stay as traced, {show(fixed)}, but are now "
            f"{show(now)}. A pass may change a region body's inputs and outputs (with its "
            f"region: brainstate.ir.region_kind(node)), not the top-level graph's.")


def _is_users_mistake(error) -> bool:
    """An error a pass found in the user's program (not a bug of a pass)."""
    return isinstance(error, BrainStateError) and not isinstance(
        error, (IRVerificationError, GraphEditError))


class PassManager:
    """Runs passes in order over a Graph.

    Args:
      pipeline: ``"hoist-states,dead-writes,dce,cse"``, a list of names, Pass objects or
        functions, a single Pass object, Pass class or function, or another PassManager.
        ``str(manager)`` prints it back as a string.
      verify: run the IR verifier after each pass (a broken edit is caught at the pass that
        made it, as a :class:`PassFailure` naming it).
      print_ir: ``None``, ``'before'``, ``'after'``, ``'both'`` or ``'changed'`` (after a pass
        only if it changed the graph).
      stream: where IR printing goes (default ``sys.stdout``).
      reproducer_dir: where a failing pass leaves its reproducer (default: see the module
        docstring). Nothing is written unless a pass fails.
      capture_reproducer: keep a copy of the IR before each pass, so a failure's reproducer
        holds the IR exactly as the failing pass received it (costs a graph copy per pass;
        without it the reproducer holds the IR as the failing pass left it).
      observer: ``observer(pass, record, graph)``, called after each pass (and its
        verification) with the graph as the pass left it: how tools (``brainstate-ir``) show or
        collect the IR per pass while the one pipeline runs.

    After ``run``, ``records`` holds a :class:`PassRecord` per pass and ``report()`` formats them.
    Given to a transform (``jit(f, passes=manager)``), it holds those of the transform's last
    trace, the passes the transform adds (hoist-states, its analyses) included.

    Example::

        pm = brainstate.passes.PassManager('hoist-states,dead-writes,dce', print_ir='changed')
        pm.run(graph)
        print(pm.report())
    """

    def __init__(self, pipeline=None, *, verify: bool = True, print_ir: str | None = None,
                 stream=None, reproducer_dir: str | None = None,
                 capture_reproducer: bool = True, observer=None):
        if print_ir not in (None, 'before', 'after', 'both', 'changed'):
            raise ValueError(f"print_ir must be None, 'before', 'after', 'both' or 'changed', "
                             f"got {print_ir!r}.")
        self.passes: list[Pass] = parse_pipeline(pipeline)
        self.verify = verify
        self.print_ir = print_ir
        self.stream = stream
        self.reproducer_dir = reproducer_dir
        self.capture_reproducer = capture_reproducer
        # observer(pass, record, graph): called after each pass (verified, if verify is on)
        # with the graph as the pass left it — for tools that show or collect the IR per pass.
        self.observer = observer
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
        meta = graph.meta
        for index, p in enumerate(self.passes):
            if self.print_ir in ('before', 'both'):
                self._print(f'// ----- IR before {p.name} -----\n{graph.format()}')
            snapshot = graph.copy() if self.capture_reproducer else None
            stats = PassStatistics()
            edits = graph.edit_count
            start = time.perf_counter()
            try:
                p.run(graph, stats)
            except Exception as error:
                self._attach(graph, snapshot, index, error)
                raise
            seconds = time.perf_counter() - start
            changed = graph.edit_count != edits
            if changed:
                # Which passes changed the graph since it was last verified: lowering names them
                # if it fails (see brainstate/ir/_lower.py).
                meta['unverified_passes'] = meta.get('unverified_passes', ()) + (p.name,)
                fixed = meta.get('fixed_signature')
                if fixed is not None:  # checked with or without verify: it is cheap
                    why = signature_change(graph, fixed)
                    if why is not None:
                        raise self._failure(graph, snapshot, index, IRVerificationError(why))
            if self.verify:
                try:
                    graph.verify()
                except IRVerificationError as error:
                    raise self._failure(graph, snapshot, index, error) from error
                meta.pop('unverified_passes', None)
            record = PassRecord(p.name, seconds, stats, changed)
            self.records.append(record)
            if self.observer is not None:
                self.observer(p, record, graph)
            if self.print_ir in ('after', 'both') or (self.print_ir == 'changed' and changed):
                self._print(f'// ----- IR after {p.name} ({stats or "no counters"}) -----\n'
                            f'{graph.format()}')
        return graph

    def _attach(self, graph, snapshot, index, error):
        """Give a pass's own exception the pass's name (and, for a bug, a reproducer)."""
        failing = self.passes[index]
        if getattr(error, 'pass_name', None) is not None:
            return  # already named by a PassManager run inside the pass: the closer one
        error.pass_name = failing.name
        if _is_users_mistake(error):
            return
        path = self._write_reproducer(graph, snapshot, index, error)
        error.reproducer = path
        note = f"Raised in pass '{failing.name}' (pipeline: {self}). Reproducer: {path}"
        earlier = [n for n in graph.meta.get('unverified_passes', ()) if n != failing.name]
        if earlier:
            note += (f". Earlier passes changed the graph without verification "
                     f"({', '.join(earlier)}); if one of them broke it, "
                     f"`brainstate.passes.set_pass_options(verify=True)` will say which")
        error.add_note(note + '.')

    def _write_reproducer(self, graph, snapshot, index, error) -> str:
        failing = self.passes[index]
        # The reproducer holds the pipeline from the failing pass on and the IR it received
        # (captured before the pass), or else the IR as the pass left it: enough to replay it.
        if snapshot is not None:
            source, what = snapshot, 'the IR before the failing pass'
        else:
            source, what = graph, ('the IR as the failing pass left it (capture_reproducer='
                                   'True keeps the IR before it)')
        try:
            text = source.format(exact=True)  # every param: brainstate.ir.parse reads it back
        except Exception as print_error:  # the failing pass broke the graph beyond printing
            text = f'<the graph could not be printed: {print_error!r}>'
        remaining = ','.join(p.name for p in self.passes[index:])
        folder = reproducer_folder(self.reproducer_dir)
        os.makedirs(folder, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix=f'brainstate-reproducer-{failing.name}-',
                                    suffix='.txt', dir=folder)
        with os.fdopen(fd, 'w') as f:
            f.write(f'// brainstate pass reproducer\n// pipeline: {self}\n'
                    f'// failing pass: {failing.name} (replay: {remaining})\n'
                    f'// replay with: brainstate-ir replay {path}\n'
                    f'// error: {error!r}\n// below: {what}\n')
            f.write(''.join('// ' + line + '\n' for line in
                            ''.join(traceback.format_exception(error)[-6:]).splitlines()))
            f.write(text + '\n')
        return path

    def _failure(self, graph, snapshot, index, error) -> PassFailure:
        failing = self.passes[index]
        path = self._write_reproducer(graph, snapshot, index, error)
        what = 'the IR before the pass' if snapshot is not None else 'the IR as it left it'
        if snapshot is not None:
            # Not the pass's fault if the graph it received was already broken (by an edit
            # made before the pipeline, or an earlier pass run without verification).
            try:
                snapshot.verify()
            except IRVerificationError as before:
                return PassFailure(
                    f"The graph was already invalid before pass '{failing.name}' ran (it "
                    f"was given to the PassManager so, or broken by an edit made without "
                    f"verification before): {before} The pipeline and {what} are in {path}.",
                    reproducer=path, pass_name=failing.name)
        return PassFailure(
            f"Pass '{failing.name}' failed: it left a graph the verifier rejects. {error} "
            f"The pipeline and {what} are in {path}; replay with `brainstate-ir replay {path}`.",
            reproducer=path, pass_name=failing.name)

    def report(self) -> str:
        """One line per pass: wall time and counters, e.g. ``dead-writes  0.1 ms  3 writes
        removed``; passes that changed nothing are marked ``(no change)``."""
        width = max((len(r.name) for r in self.records), default=0)
        lines = []
        for r in self.records:
            lines.append(f'{r.name:<{width}}  {r.seconds * 1e3:8.3f} ms  '
                         f'{str(r.stats) or "-"}{"" if r.changed else "  (no change)"}')
        total = sum(r.seconds for r in self.records)
        lines.append(f'{"total":<{width}}  {total * 1e3:8.3f} ms')
        return '\n'.join(lines)

    def statistics(self) -> dict[str, PassStatistics]:
        """``{pass name: counters}`` of the last run."""
        return {r.name: r.stats for r in self.records}
