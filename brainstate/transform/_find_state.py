"""StateFinder: which States a function reads and writes, found by tracing it once."""

from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

from .._state import State
from ._stateful_function import StatefulFunction

__all__ = ['StateFinder']


def _walk(graph, order: dict, written: set):
    for node in graph.nodes:
        if node.kind in ('state_read', 'state_write'):
            order.setdefault(node.state, None)
            if node.kind == 'state_write':
                written.add(node.state)
        for sub in node.subgraphs:
            _walk(sub, order, written)


class StateFinder:
    """Trace ``fn`` for a call and return the States it uses (nothing runs, no State changes).

    Args:
      fn: the function.
      filter: keep only matching states (a State class, a tuple of classes, or any filter of
        :mod:`brainstate.util.filter`).
      usage: ``'all'`` (every state), ``'read'`` (read and not written), ``'write'`` (written),
        or ``'both'`` (``{'read': ..., 'write': ...}``).
      return_type: ``'dict'`` (keyed by ``key_fn(index, state)``, default the index), ``'list'``
        or ``'tuple'``.
      key_fn: how dict keys are made; a ``None`` or repeated key falls back to the state's name
        (then ``state_<i>``), with ``_1``, ``_2``... suffixes to keep keys unique.

    Example::

        params = brainstate.transform.StateFinder(loss, filter=brainstate.ParamState)(x)
    """

    _VALID_USAGE = ('all', 'read', 'write', 'both')
    _VALID_RETURN_TYPE = ('dict', 'list', 'tuple')

    def __init__(self, fn: Callable, filter=None, *, usage: str = 'all',
                 return_type: str = 'dict', key_fn: Callable[[int, State], Hashable] | None = None):
        if usage not in self._VALID_USAGE:
            raise ValueError(f"Invalid usage {usage!r}. Expected one of {self._VALID_USAGE}.")
        if return_type not in self._VALID_RETURN_TYPE:
            raise ValueError(f"Invalid return_type {return_type!r}. Expected one of "
                             f"{self._VALID_RETURN_TYPE}.")
        self.fn = fn
        self._usage = usage
        self._return_type = return_type
        self._key_fn = key_fn if key_fn is not None else self._default_key_fn
        self._predicate = None
        if filter is not None:
            from ..util.filter import to_predicate
            self._predicate = to_predicate(filter)
        self.stateful_fn = StatefulFunction(fn, name='statefinder')

    def __call__(self, *args, **kwargs):
        if self._usage == 'both':
            return {'read': self._format(self._collect('read', args, kwargs)),
                    'write': self._format(self._collect('write', args, kwargs))}
        return self._format(self._collect(self._usage, args, kwargs))

    def _collect(self, usage: str, args, kwargs) -> list:
        # The graph as traced (before any pass): a read whose value is unused still counts.
        from ._program import trace_program
        sf = self.stateful_fn
        spec = sf._argument_spec(len(args))
        graph = trace_program(self.fn, spec, spec.signature(args, kwargs, allow_tracers=True),
                              lower=False).traced_graph
        order, written = {}, set()
        _walk(graph, order, written)
        if usage == 'read':
            states = [s for s in order if s not in written]
        elif usage == 'write':
            states = [s for s in order if s in written]
        else:
            states = list(order)
        if self._predicate is not None:
            states = [s for s in states if self._predicate(s.path() or (), s)]
        return list(states)

    def _format(self, states: Sequence[State]):
        if self._return_type == 'list':
            return list(states)
        if self._return_type == 'tuple':
            return tuple(states)
        out, used = {}, set()
        for idx, state in enumerate(states):
            key = self._ensure_unique_key(self._ensure_hashable(self._key_fn(idx, state)), idx,
                                          state, used)
            used.add(key)
            out[key] = state
        return out

    @staticmethod
    def _default_key_fn(idx: int, state: State) -> Hashable:
        return idx

    @staticmethod
    def _ensure_hashable(key: Any) -> Hashable:
        if key is None:
            return None
        try:
            hash(key)
        except TypeError:
            return str(key)
        return key

    @staticmethod
    def _ensure_unique_key(key: Hashable, idx: int, state: State, used: set) -> Hashable:
        if key is None:
            name = getattr(state, 'name', None)
            key = name if name not in (None, '') else f'state_{idx}'
        if key not in used:
            return key
        n = 1
        while f'{key}_{n}' in used:
            n += 1
        return f'{key}_{n}'
