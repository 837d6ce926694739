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

A name is registered once: registering another pass under a taken name (``dce``) is an error
unless the caller says ``replace=True``. Re-running the same definition (the same module and
qualified name, e.g. a module imported again or a notebook cell run twice) replaces it quietly.
"""

from __future__ import annotations

import collections
import inspect
import weakref
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
    """The docstring's first sentence (which may run over several lines), as one line."""
    doc = (inspect.getdoc(obj) or '').strip()
    if not doc:
        return ''
    paragraph = ' '.join(doc.split('\n\n')[0].split())
    end = paragraph.find('. ')
    return paragraph[:end + 1] if end >= 0 else paragraph


def _sentence(summary: str) -> str:
    """Summaries are whole sentences: a capital first letter and a full stop."""
    summary = ' '.join(summary.split())
    if summary and summary[-1] not in '.!?':
        summary += '.'
    return summary[:1].upper() + summary[1:]


# function -> whether it takes stats: every pipeline run makes its passes afresh, and
# inspect.signature costs ~20 us per pass.
_TAKES_STATS = weakref.WeakKeyDictionary()


def _takes_stats(function, what: str) -> bool:
    """Whether ``function`` is called ``(graph, stats)`` rather than ``(graph)``; decided once,
    from its signature, so a TypeError raised inside the pass is never mistaken for a call
    with the wrong arguments."""
    try:
        return _TAKES_STATS[function]
    except (KeyError, TypeError):  # not seen yet, or not weakly referable
        pass
    takes = _inspect_takes_stats(function, what)
    try:
        _TAKES_STATS[function] = takes
    except TypeError:
        pass
    return takes


def _inspect_takes_stats(function, what: str) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: assume (graph, stats)
        return True
    for args in ((None, None), (None,)):
        try:
            signature.bind(*args)
            return len(args) == 2
        except TypeError:
            continue
    raise TypeError(f'{what} must accept (graph) or (graph, stats); its signature is '
                    f'{signature}.')


class FunctionPass(Pass):
    """A pass made from a function ``f(graph)`` or ``f(graph, stats)``."""

    def __init__(self, function: Callable, name: str | None = None, summary: str | None = None,
                 *, _takes_stats_known: bool | None = None):
        self.function = function
        self.name = name or function.__name__.replace('_', '-')
        self.summary = _sentence(summary if summary is not None else _summary_of(function))
        # A registered pass's signature was read once, at registration (inspect.signature
        # costs more than many small passes take to run: not per PassManager).
        self._takes_stats = (_takes_stats_known if _takes_stats_known is not None else
                             _takes_stats(function, f'The pass function {self.name!r}'))

    def run(self, graph, stats):
        if self._takes_stats:
            self.function(graph, stats)
        else:
            self.function(graph)

    def __setattr__(self, attribute, value):
        # A registered function pass is one instance shared by every pipeline naming it
        # (get_pass('dce'), PassManager('dce').passes[0]): changing it would change them all.
        if self.__dict__.get('_shared'):
            raise BrainStateError(
                f'The pass {self.name!r} is the registered one, shared by every pipeline that '
                f'names it: its {attribute!r} is not changed here. Make your own copy, e.g. '
                f'FunctionPass(get_pass({self.name!r}).function, name=...), or register '
                f'another pass.')
        object.__setattr__(self, attribute, value)

    def __copy__(self):
        """A copy of one's own (of a registered pass too: the copy can be changed)."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.pop('_shared', None)
        return copy


_REGISTRY: dict[str, Callable[[], Pass]] = {}
# Pipeline strings already parsed into passes whose instances hold no state between runs
# (registered function passes): ``{string: (registration count, tuple of passes)}``. An entry
# counts only while the registration count is still the one it was parsed under: after any
# registration a name may mean another pass, and a string parsed in one thread while another
# registers may have read the registry before that registration (see _manager.parse_pipeline).
PARSED_PIPELINES: dict[str, tuple] = {}
REGISTRATIONS = [0]  # how many registrations so far (bumped after each changed the registry)
_REGISTERED_FROM: dict[str, tuple] = {}  # name -> (module, qualified name) of the definition


def _is_ours(origin: tuple) -> bool:
    module = origin[0] or ''
    return module == 'brainstate' or module.startswith('brainstate.')


def names_builtin_passes(names) -> bool:
    """Whether each of ``names`` still names a pass brainstate itself defines (a user's
    ``register('dce', replace=True)`` makes 'dce' name the user's pass). A transform may skip a
    pipeline of built-in passes on a first eager call (they preserve results and print
    nothing), never a user's pass: see brainstate/transform/_direct.py."""
    return all(_is_ours(_REGISTERED_FROM.get(name, (None, None))) for name in names)


def _origin(obj) -> tuple:
    return (getattr(obj, '__module__', None), getattr(obj, '__qualname__', None))


def register(name: str, summary: str | None = None, *, replace: bool = False):
    """Decorator: register a pass function or class under ``name`` for pipeline strings.

    A function ``f(graph)`` / ``f(graph, stats)``, a :class:`Pass` subclass, or any class whose
    instances have ``run(graph, stats)`` / ``run(graph)``. The summary (shown by
    :func:`registered_passes`) defaults to the docstring's first sentence. The pass is named
    ``name`` in every pipeline that names it (a class's own ``name`` attribute is for
    ``get_pass(TheClass)``).

    Registering a different pass under a name already taken raises
    :class:`~brainstate.BrainStateError` (it would silently change every pipeline naming it,
    ``dce`` included); pass ``replace=True`` to mean it. Re-running the same definition (same
    module and qualified name) replaces the earlier one without complaint.
    """
    if not isinstance(name, str) or not name or ',' in name or name != name.strip():
        raise ValueError(f'A pass name is a non-empty string without commas or surrounding '
                         f'spaces, got {name!r}.')

    def decorate(obj):
        origin = _origin(obj)
        if name in _REGISTRY and not replace and _REGISTERED_FROM.get(name) != origin:
            module, qualname = _REGISTERED_FROM.get(name, (None, None))
            raise BrainStateError(
                f'A pass named {name!r} is already registered (by {module}.{qualname}). '
                f'Choose another name, or say @register({name!r}, replace=True) to replace it '
                f'in every pipeline that names it.')
        if inspect.isclass(obj):
            def factory(cls=obj):
                instance = cls()
                if not isinstance(instance, Pass):
                    instance = _ObjectPass(instance, name, summary or _summary_of(cls))
                else:
                    # The registered name, whatever the class says (its own ``name``, or one
                    # inherited from the pass it extends): records, reports and reproducers
                    # name the pass as pipelines do, so ``brainstate-ir replay`` finds it.
                    instance.name = name
                    instance.summary = _sentence(instance.summary or summary or
                                                 _summary_of(cls))
                return instance
            if issubclass(obj, Pass):
                obj.name = obj.name or name
                obj.summary = _sentence(obj.summary or summary or _summary_of(obj))
        elif callable(obj):
            takes_stats = _takes_stats(obj, f'The pass function {name!r}')  # fail now
            pass_summary = _sentence(summary if summary is not None else _summary_of(obj))

            # A function pass holds nothing between runs: one instance serves every pipeline.
            instance = FunctionPass(obj, name, pass_summary, _takes_stats_known=takes_stats)
            instance._shared = True  # read-only from now on (see FunctionPass.__setattr__)

            def factory(instance=instance):
                return instance
        else:
            raise TypeError(f'@register({name!r}) decorates a function or a class, not {obj!r}.')
        _REGISTRY[name] = factory
        _REGISTERED_FROM[name] = origin
        REGISTRATIONS[0] += 1  # every parsed pipeline is stale now (see PARSED_PIPELINES)
        return obj

    return decorate


class _ObjectPass(Pass):
    def __init__(self, obj, name, summary):
        self.obj, self.name, self.summary = obj, name, _sentence(summary)
        self._takes_stats = _takes_stats(obj.run, f'{type(obj).__name__}.run')

    def run(self, graph, stats):
        if self._takes_stats:
            self.obj.run(graph, stats)
        else:
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
        instance = spec()
        instance.name = instance.name or spec.__name__
        return instance
    if callable(spec):
        return FunctionPass(spec)
    raise TypeError(f'{spec!r} is not a pass: give a registered name, a Pass, or a function.')
