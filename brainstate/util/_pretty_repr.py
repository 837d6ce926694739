"""A small pretty-printing protocol: an object yields a :class:`PrettyType` header and then
:class:`PrettyAttr` items from ``__pretty_repr__``; :func:`pretty_repr_object` renders them one
item per line, indenting nested reprs. Cycles print as ``Type(...)``."""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Mapping, Optional, Union

__all__ = ['yield_unique_pretty_repr_items', 'PrettyType', 'PrettyAttr', 'PrettyRepr',
           'PrettyMapping', 'MappingReprMixin', 'pretty_repr_elem', 'pretty_repr_object',
           'PrettyReprContext']


@dataclasses.dataclass
class PrettyType:
    """The header of a pretty repr: the type (or a string), the brackets, the separator between
    keys and values, the indentation of items and what to print when there are none."""
    type: Union[str, type]
    start: str = '('
    end: str = ')'
    value_sep: str = '='
    elem_indent: str = '  '
    empty_repr: str = ''


@dataclasses.dataclass
class PrettyAttr:
    """One item of a pretty repr: ``key``, ``value`` (a string is printed as is, anything else
    by ``repr``) and text around it."""
    key: str
    value: Any
    start: str = ''
    end: str = ''


class PrettyRepr(ABC):
    """Base of objects printed by :func:`pretty_repr_object` (define ``__pretty_repr__``)."""
    __slots__ = ()

    @abstractmethod
    def __pretty_repr__(self) -> Iterator[Union[PrettyType, PrettyAttr]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return pretty_repr_object(self)


def pretty_repr_elem(obj: PrettyType, elem: Any) -> str:
    """One rendered item line (its continuation lines indented)."""
    if not isinstance(elem, PrettyAttr):
        raise TypeError(f'Item must be Elem, got {type(elem).__name__}')
    text = elem.value if isinstance(elem.value, str) else repr(elem.value)
    text = text.replace('\n', '\n' + obj.elem_indent)
    return f'{obj.elem_indent}{elem.start}{elem.key}{obj.value_sep}{text}{elem.end}'


def pretty_repr_object(obj: PrettyRepr) -> str:
    """Render a :class:`PrettyRepr`."""
    if not isinstance(obj, PrettyRepr):
        raise TypeError(f'Object {obj!r} is not representable')
    items = obj.__pretty_repr__()
    header = next(items)
    if not isinstance(header, PrettyType):
        raise TypeError(f'First item must be PrettyType, got {type(header).__name__}')
    lines = [pretty_repr_elem(header, item) for item in items]
    body = '\n' + ',\n'.join(lines) + '\n' if lines else header.empty_repr
    name = header.type if isinstance(header.type, str) else header.type.__name__
    return f'{name}{header.start}{body}{header.end}'


class MappingReprMixin(Mapping):
    """``__pretty_repr__`` for mappings: ``{key: value, ...}`` one entry per line."""

    def __pretty_repr__(self):
        yield PrettyType(type='', value_sep=': ', start='{', end='}')
        for key, value in self.items():
            yield PrettyAttr(repr(key), value)


@dataclasses.dataclass(repr=False)
class PrettyMapping(PrettyRepr):
    """Pretty repr of any mapping, prefixed by ``type_name``."""
    mapping: Mapping
    type_name: str = ''

    def __pretty_repr__(self):
        yield PrettyType(type=self.type_name, value_sep=': ', start='{', end='}')
        for key, value in self.mapping.items():
            yield PrettyAttr(repr(key), value)


@dataclasses.dataclass
class PrettyReprContext(threading.local):
    """The objects being printed in this thread (to cut cycles)."""
    seen_modules_repr: Optional[dict] = None


CONTEXT = PrettyReprContext()


def _default_repr_object(node) -> Iterator[PrettyType]:
    yield PrettyType(type=type(node))


def _default_repr_attr(node) -> Iterator[PrettyAttr]:
    for name, value in vars(node).items():
        if not name.startswith('_'):
            yield PrettyAttr(name, repr(value))


def yield_unique_pretty_repr_items(node, repr_object: Optional[Callable] = None,
                                   repr_attr: Optional[Callable] = None):
    """The pretty-repr items of ``node``: its header from ``repr_object(node)``, then its items
    from ``repr_attr(node)``; a node already being printed (a cycle) yields ``Type(...)``."""
    repr_object = repr_object or _default_repr_object
    repr_attr = repr_attr or _default_repr_attr
    outermost = CONTEXT.seen_modules_repr is None
    if outermost:
        CONTEXT.seen_modules_repr = {}
    try:
        if id(node) in CONTEXT.seen_modules_repr:
            yield PrettyType(type=type(node), empty_repr='...')
            return
        yield from repr_object(node)
        CONTEXT.seen_modules_repr[id(node)] = node
        yield from repr_attr(node)
    finally:
        if outermost:
            CONTEXT.seen_modules_repr = None
