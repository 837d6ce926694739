"""What a pass is, and the registry that names them.

A pass is a function or class over a :class:`~brainstate.ir.Graph` that edits it in place with
the Graph's public editing API. It has a name (used in pipeline strings such as
``"hoist-states,dead-writes,dce"``), a one-line summary, and statistics counters it may bump
(``stats['writes removed'] += 1``), which the PassManager reports.

Register your own with the same decorator the built-in passes use::

    @brainstate.passes.register('count-writes')
    def count_writes(graph, stats):
        '''Count the state writes (an analysis: it changes nothing).'''
        stats['writes'] += len(graph.find_nodes('state_write'))
"""

from __future__ import annotations

import collections
import inspect
from typing import Callable

from .._errors import BrainStateError

__all__ = ['Pass', 'FunctionPass', 'PassStatistics', 'register', 'get_pass', 'registered_passes']


class PassStatistics(collections.Counter):
    """Named counters a pass bumps: ``stats['writes removed'] += 1``."""

    def __str__(self):
        return ', '.join(f'{count} {name}' for name, count in self.items() if count)


class Pass:
    """Base class of passes. Subclasses set ``name`` and ``summary`` and implement ``run``.

    ``run(graph, stats)`` edits ``graph`` in place; it should recurse into region bodies
    (``node.subgraphs``) itself, since only the pass knows whether that is meaningful.
    """

    name: str = ''
    summary: str = ''

    def run(self, graph, stats: PassStatistics) -> None:
        raise NotImplementedError

    def __call__(self, graph, stats: PassStatistics | None = None):
        """Run the pass alone on ``graph`` and return the graph."""
        self.run(graph, PassStatistics() if stats is None else stats)
        return graph

    def __repr__(self):
        return f'<pass {self.name}: {self.summary}>'


def _summary_of(obj) -> str:
    doc = inspect.getdoc(obj) or ''
    return doc.strip().splitlines()[0] if doc.strip() else ''


class FunctionPass(Pass):
    """A pass made from a function ``f(graph)`` or ``f(graph, stats)``."""

    def __init__(self, function: Callable, name: str | None = None, summary: str | None = None):
        self.function = function
        self.name = name or function.__name__.replace('_', '-')
        self.summary = summary if summary is not None else _summary_of(function)
        try:
            self._takes_stats = len(inspect.signature(function).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_stats = False

    def run(self, graph, stats):
        if self._takes_stats:
            self.function(graph, stats)
        else:
            self.function(graph)


_REGISTRY: dict[str, Callable[[], Pass]] = {}


def register(name: str, summary: str | None = None):
    """Decorator: register a pass function or class under ``name`` for pipeline strings.

    A function ``f(graph)`` / ``f(graph, stats)``, a :class:`Pass` subclass, or any class whose
    instances have ``run(graph, stats)``. The summary defaults to the docstring's first line.
    """
    if not isinstance(name, str) or not name or ',' in name:
        raise ValueError(f'A pass name is a non-empty string without commas, got {name!r}.')

    def decorate(obj):
        if inspect.isclass(obj):
            def factory(cls=obj):
                instance = cls()
                if not isinstance(instance, Pass):
                    instance = _ObjectPass(instance, name, summary or _summary_of(cls))
                else:
                    instance.name = instance.name or name
                    instance.summary = instance.summary or summary or _summary_of(cls)
                return instance
            if issubclass(obj, Pass):
                obj.name = obj.name or name
                obj.summary = obj.summary or summary or _summary_of(obj)
        elif callable(obj):
            def factory(fn=obj):
                return FunctionPass(fn, name, summary)
        else:
            raise TypeError(f'@register({name!r}) decorates a function or a class, not {obj!r}.')
        _REGISTRY[name] = factory
        return obj

    return decorate


class _ObjectPass(Pass):
    def __init__(self, obj, name, summary):
        self.obj, self.name, self.summary = obj, name, summary

    def run(self, graph, stats):
        try:
            self.obj.run(graph, stats)
        except TypeError:
            self.obj.run(graph)


def registered_passes() -> dict[str, str]:
    """``{name: summary}`` for every registered pass."""
    return {name: factory().summary for name, factory in sorted(_REGISTRY.items())}


def get_pass(spec) -> Pass:
    """A Pass from a registered name, a Pass instance, a Pass class or a function."""
    if isinstance(spec, Pass):
        return spec
    if isinstance(spec, str):
        factory = _REGISTRY.get(spec.strip())
        if factory is None:
            known = ', '.join(sorted(_REGISTRY))
            raise BrainStateError(
                f'No pass named {spec.strip()!r}. Registered passes: {known}. Register your own '
                f'with @brainstate.passes.register("name").')
        return factory()
    if inspect.isclass(spec) and issubclass(spec, Pass):
        return spec()
    if callable(spec):
        return FunctionPass(spec)
    raise TypeError(f'{spec!r} is not a pass: give a registered name, a Pass, or a function.')
