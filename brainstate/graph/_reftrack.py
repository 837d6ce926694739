"""RefMap: a mapping keyed by object identity (so unhashable or equal-comparing objects, such
as States and Nodes, are distinct keys)."""

from __future__ import annotations

from collections.abc import MutableMapping

from ..util._pretty_repr import MappingReprMixin

__all__ = ['RefMap']


class RefMap(MutableMapping, MappingReprMixin):
    """A dict keyed by ``id(key)`` that keeps its keys alive and iterates over them."""

    def __init__(self, mapping=()):
        self._mapping: dict = {}
        self.update(mapping)

    def __getitem__(self, key):
        return self._mapping[id(key)][1]

    def __contains__(self, key) -> bool:
        return id(key) in self._mapping

    def __setitem__(self, key, value):
        self._mapping[id(key)] = (key, value)

    def __delitem__(self, key):
        del self._mapping[id(key)]

    def __iter__(self):
        return (key for key, _ in self._mapping.values())

    def __len__(self) -> int:
        return len(self._mapping)

    def __repr__(self):
        from ..util._pretty_repr import pretty_repr_object, PrettyRepr
        return _RefMapRepr(self).__repr__()

    __str__ = __repr__


class _RefMapRepr:
    def __init__(self, refmap):
        self.refmap = refmap

    def __repr__(self):
        if not self.refmap:
            return 'RefMap({})'
        items = ',\n'.join(f'  {k!r}: {v!r}' for k, v in self.refmap.items())
        return 'RefMap({\n' + items + '\n})'
