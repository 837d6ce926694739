"""The environment settings a compiled program depends on, part of every cache key.

A function that reads ``brainstate.environ`` (``environ.get_dt()``, the ``fit`` flag of a
dropout layer, ``environ.dftype()``...) bakes the values it read into its trace, as Python
semantics require. So a transform reuses a compiled program only while the settings its trace
read still have the values they had then: change one (``environ.set(dt=...)``, a
``with environ.context(fit=False):`` block) and the next call traces again; change a setting
the function never read and nothing is retraced. The same holds for the pass pipeline
(``brainstate.passes.set_default_pipeline``, a ``default_pipeline`` block,
``set_pass_options``): a program whose passes followed them (:func:`read_pipeline`: a trace
given no ``passes=`` or a list, not a PassManager of its own, or any transform inside it that
did) is traced again under another choice.

:func:`recording_reads` wraps the trace (``_program.trace_program``, the one pipeline) and
gives each program an :class:`EnvironReads`; the caches (jit's entries, the eager runner's
reuse key, the grad family's programs) ask :meth:`EnvironReads.hold` before reusing one. A
reused program's reads also count as read by any trace that encloses the reuse, so an outer
jit keys on what its inner transforms read.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from .. import _state, environ
from ..passes._default_pipeline import pipeline_holds, pipeline_key

__all__ = ['EnvironReads', 'recording_reads', 'read_pipeline']

_view_stamp = environ._view_stamp
_current = environ._current


class _Recording(threading.local):
    """The EnvironReads being recorded in this thread (:func:`recording_reads`), outermost
    first, each with the :func:`~brainstate.passes.pipeline_key` in force where its trace
    began (a ``default_pipeline`` block the traced function enters itself is part of the
    function: a pipeline read under it counts as a read of the one outside)."""

    def __init__(self):
        self.stack = []


_RECORDING = _Recording()


def _note_pipeline() -> None:
    """Count the pipeline as read by the traces recording in this thread."""
    for reads, outside in _RECORDING.stack:
        if reads.pipeline is None:
            reads.pipeline = outside


def read_pipeline(reads: 'EnvironReads | None' = None) -> None:
    """A trace runs passes that follow the default pipeline and pass options (or decides by
    them, as a direct run does): the program (``reads``) and every trace enclosing it in this
    thread are valid only under the :func:`~brainstate.passes.pipeline_key` in force now."""
    if reads is not None:
        reads.pipeline = pipeline_key()
    if _RECORDING.stack:
        _note_pipeline()


def _same(a, b) -> bool:
    """Whether two setting values are the same (a setting that cannot be compared is not)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        equal = a == b
        return equal if isinstance(equal, bool) else bool(np.all(equal))
    except Exception:  # a traced value, an incomparable object: treat as changed
        return False


class EnvironReads:
    """The settings one or more traces read, with their values then (``environ._MISSING`` for a
    setting that was not set), the view stamp at which they were last seen to hold, and the
    pass pipeline in force when they were traced (:func:`brainstate.passes.pipeline_key`;
    None: any)."""

    __slots__ = ('values', 'stamp', 'pipeline')

    def __init__(self, values: dict | None = None, stamp=None, pipeline=None):
        self.values = dict(values or {})
        self.stamp = stamp
        self.pipeline = pipeline

    def hold(self) -> bool:
        """Whether every setting read still has its value (in this thread), and the pass
        pipeline is the one traced with. Cheap when no setting changed since the last check;
        counts the settings as read by the traces running in this thread."""
        pipeline = self.pipeline
        if pipeline is not None:
            if not pipeline_holds(pipeline):
                return False
            if _state._TRACES_ACTIVE and _RECORDING.stack:
                _note_pipeline()  # (reused inside a trace: that trace follows it too)
        values = self.values
        if not values:
            return True
        environ._replay_reads(values)
        stamp = _view_stamp()  # (taken before comparing: a change during the check shows next)
        if stamp == self.stamp:
            return True
        for key, value in values.items():
            if not _same(_current(key), value):
                return False
        self.stamp = stamp
        return True

    def merge(self, other: 'EnvironReads') -> None:
        """Add the settings ``other`` read (traced while these held, so common keys agree)."""
        for key, value in other.values.items():
            self.values.setdefault(key, value)
        if self.pipeline is None:
            self.pipeline = other.pipeline

    def copy(self) -> 'EnvironReads':
        return EnvironReads(self.values, self.stamp, self.pipeline)

    def __repr__(self):
        shown = {k: ('<unset>' if v is environ._MISSING else v) for k, v in self.values.items()}
        return f'EnvironReads({shown})'


@contextlib.contextmanager
def recording_reads():
    """Record the settings read while the block runs; yields the :class:`EnvironReads`, filled
    when the block ends."""
    reads = EnvironReads()
    stack = _RECORDING.stack
    recording = (reads, pipeline_key())
    stack.append(recording)
    try:
        with environ._recording() as recorder:
            try:
                yield reads
            finally:
                reads.values = dict(recorder.reads)
                reads.stamp = recorder.stamp
    finally:
        stack.remove(recording)
