"""Pretty-printed containers of the published API: ``PrettyObject`` (a base class whose repr
lists its attributes), ``PrettyDict`` / ``NestedDict`` / ``FlattedDict`` (the mappings the graph
functions return: nested by attribute, or flat keyed by path tuples), ``PrettyList``, and
``flat_mapping`` / ``nest_mapping`` to convert between the two shapes.
"""

from __future__ import annotations

from collections import abc
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import jax

from ._pretty_repr import (PrettyAttr, PrettyRepr, PrettyType, pretty_repr_object,
                           yield_unique_pretty_repr_items)
from .filter import to_predicate

__all__ = ['PrettyDict', 'NestedDict', 'FlattedDict', 'flat_mapping', 'nest_mapping',
           'PrettyList', 'PrettyObject', 'NestedStateRepr', 'empty_node']


def _prettify(value):
    """Containers inside a pretty repr print prettily too."""
    if isinstance(value, list) and not isinstance(value, PrettyList):
        value = PrettyList(value)
    if isinstance(value, dict) and not isinstance(value, PrettyDict):
        value = PrettyDict(value)
    if isinstance(value, PrettyDict):
        value = NestedStateRepr(value)
    return value


class PrettyObject(PrettyRepr):
    """A base class whose repr is ``Type(\\n  attr=value,\\n  ...)``. Override
    ``__pretty_repr_item__(key, value)`` to rename an attribute (return a new pair) or hide it
    (return ``None``)."""

    def __pretty_repr__(self):
        yield from yield_unique_pretty_repr_items(self, _repr_object_general,
                                                  _repr_attribute_general)

    def __pretty_repr_item__(self, k, v):
        return k, v


PrettyReprTree = PrettyObject


def _repr_object_general(node):
    yield PrettyType(type(node), value_sep='=', start='(', end=')')


def _repr_attribute_general(node):
    for k, v in vars(node).items():
        item_fn = getattr(node, '__pretty_repr_item__', None)
        if item_fn is not None:
            item = item_fn(k, v)
            if item is None:
                continue
            k, v = item
        if k is None:
            continue
        yield PrettyAttr(k, _prettify(v))


class _EmptyNode:
    """Marks an empty sub-mapping in a flat mapping (``flat_mapping(keep_empty_nodes=True)``)."""

    def __eq__(self, other):
        return isinstance(other, _EmptyNode)

    def __hash__(self):
        return hash(_EmptyNode)

    def __repr__(self):
        return '_EmptyNode()'


jax.tree_util.register_pytree_node(_EmptyNode, lambda x: ((), None), lambda aux, ch: _EmptyNode())

empty_node = _EmptyNode()


def _default_leaf(*args) -> bool:
    return False


def flat_mapping(xs: abc.Mapping, /, *, keep_empty_nodes: bool = False,
                 is_leaf: Optional[Callable] = _default_leaf,
                 sep: Optional[str] = None) -> 'FlattedDict':
    """``{'a': {'b': 1}}`` -> ``FlattedDict({('a', 'b'): 1})`` (keys joined by ``sep`` if
    given). ``is_leaf(path, value)`` stops the descent; with ``keep_empty_nodes`` an empty
    sub-mapping becomes an :data:`empty_node` entry."""
    if not isinstance(xs, abc.Mapping):
        raise TypeError(f'expected Mapping; got {type(xs).__qualname__}')
    is_leaf = is_leaf or _default_leaf
    out: Dict[Any, Any] = {}

    def key(path):
        return path if sep is None else sep.join(path)

    def walk(value, path):
        if not isinstance(value, abc.Mapping) or is_leaf(path, value):
            out[key(path)] = value
            return
        if not value:
            if keep_empty_nodes and path:
                out[key(path)] = empty_node
            return
        for k, v in value.items():
            walk(v, path + (k,))

    walk(xs, ())
    return FlattedDict(out)


def nest_mapping(xs: Any, /, *, sep: Optional[str] = None) -> 'NestedDict':
    """The inverse of :func:`flat_mapping`: ``{('a', 'b'): 1}`` -> ``NestedDict({'a': {'b':
    1}})`` (string keys split on ``sep`` if given)."""
    if not isinstance(xs, abc.Mapping):
        raise TypeError(f'expected Mapping; got {type(xs).__qualname__}')
    out: Dict[Any, Any] = {}
    for path, value in xs.items():
        path = tuple(path.split(sep)) if sep is not None else tuple(path)
        if not path:
            raise ValueError('Cannot nest an empty path.')
        if value is empty_node or isinstance(value, _EmptyNode):
            value = {}
        node = out
        for k in path[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, abc.Mapping):
                raise ValueError(f'Cannot expand scalar key prefix {k!r} in path {path!r}.')
            node = child
        if isinstance(node.get(path[-1]), abc.Mapping):
            raise ValueError(f'Cannot overwrite mapping at path {path!r} with a scalar value.')
        node[path[-1]] = value
    return NestedDict(out)


def _default_compare(x, values: set) -> bool:
    return id(x) in values


def _default_process(x) -> int:
    return id(x)


class PrettyDict(dict, PrettyRepr):
    """A dict printed one entry per line (nested dicts indented); keys are attributes too."""

    def __getattr__(self, key):
        if key.startswith('__') and key.endswith('__'):
            raise AttributeError(key)
        return self[key]  # a missing key is a KeyError, as published

    def treefy_state(self):
        """The same structure with every State replaced by its ``to_state_ref()``."""
        from .._state import State
        leaves, treedef = jax.tree.flatten(self, is_leaf=lambda x: isinstance(x, State))
        return treedef.unflatten([x.to_state_ref() if isinstance(x, State) else x
                                  for x in leaves])

    def to_dict(self) -> dict:
        return dict(self)

    def __repr__(self):
        return pretty_repr_object(self)

    def __pretty_repr__(self):
        yield from yield_unique_pretty_repr_items(self, _dict_repr_object, _dict_repr_attr)

    def split(self, *filters):
        raise NotImplementedError

    def filter(self, *filters):
        raise NotImplementedError

    def merge(self, *states):
        raise NotImplementedError

    def subset(self, *filters):
        """Same as :meth:`filter`."""
        return self.filter(*filters)


class NestedStateRepr(PrettyRepr):
    """Prints a nested PrettyDict without its type name."""

    def __init__(self, state: PrettyDict):
        self.state = state

    def __pretty_repr__(self):
        yield PrettyType('', value_sep=': ', start='{', end='}')
        for item in self.state.__pretty_repr__():
            if not isinstance(item, PrettyType):
                yield item

    def __treescope_repr__(self, path, subtree_renderer):
        children = {k: NestedStateRepr(v) if isinstance(v, PrettyDict) else v
                    for k, v in self.state.items()}
        return subtree_renderer(children, path=path)


def _dict_repr_object(node):
    yield PrettyType('', value_sep=': ', start='{', end='}')


def _dict_repr_attr(node):
    for k, v in node.items():
        yield PrettyAttr(repr(k), _prettify(v))


def _check_ellipsis_last(filters):
    for i, f in enumerate(filters):
        if (f is Ellipsis or f is True) and any(g is not Ellipsis and g is not True
                                                for g in filters[i + 1:]):
            raise ValueError(f'`...` or `True` can only be used as the last filters, got {f} it '
                             f'at index {i}.')


def _partition(flat: abc.Mapping, filters) -> Tuple[dict, ...]:
    """Each entry goes to the first filter it matches; the last dict holds the rest."""
    _check_ellipsis_last(filters)
    predicates = [to_predicate(f) for f in filters]
    parts = tuple({} for _ in range(len(predicates) + 1))
    for path, value in flat.items():
        for part, predicate in zip(parts, predicates):
            if predicate(path, value):
                part[path] = value
                break
        else:
            parts[-1][path] = value
    return parts


def _non_exhaustive(rest):
    return ValueError(f'Non-exhaustive filters, got a non-empty remainder: {rest}.\nUse `...` '
                      f'to match all remaining elements.')


class NestedDict(PrettyDict):
    """A nested mapping (by attribute name) of states or values; a pytree."""

    def __or__(self, other):
        if not other:
            return self
        if not isinstance(other, NestedDict):
            raise TypeError(f'expected NestedDict; got {type(other).__qualname__}')
        return NestedDict.merge(self, other)

    def __sub__(self, other):
        if not other:
            return self
        if not isinstance(other, NestedDict):
            raise TypeError(f'expected NestedDict; got {type(other).__qualname__}')
        theirs = other.to_flat()
        return NestedDict.from_flat({k: v for k, v in self.to_flat().items() if k not in theirs})

    def to_flat(self) -> 'FlattedDict':
        """The same entries keyed by path tuples."""
        return flat_mapping(self)

    @classmethod
    def from_flat(cls, flat_dict) -> 'NestedDict':
        return cls(nest_mapping(dict(flat_dict)))

    def split(self, *filters):
        """Partition by filters (every entry must match one: end with ``...``); one NestedDict
        per filter (a single one for a single filter)."""
        *parts, rest = _partition(self.to_flat(), filters)
        if rest:
            raise _non_exhaustive(rest)
        parts = [NestedDict.from_flat(p) for p in parts]
        return parts[0] if len(parts) == 1 else tuple(parts)

    def filter(self, *filters):
        """The entries matching each filter (the rest dropped)."""
        parts = [NestedDict.from_flat(p) for p in _partition(self.to_flat(), filters)]
        return parts[0] if len(filters) == 1 else tuple(parts[:-1])

    @staticmethod
    def merge(*states) -> 'NestedDict':
        """Merge Nested/Flatted dicts (later entries win)."""
        return NestedDict.from_flat(_merge_flat(states))

    def to_pure_dict(self) -> dict:
        """Plain nested dicts (empty sub-mappings kept)."""
        return nest_mapping(flat_mapping(self, keep_empty_nodes=True)).to_dict()

    def replace_by_pure_dict(self, pure_dict: dict, replace_fn: Optional[Callable] = None):
        """Replace leaves by the values of a plain nested dict of the same paths (a leaf with a
        ``replace`` method, e.g. a TreefyState, is replaced by ``leaf.replace(value)``)."""
        if replace_fn is None:
            replace_fn = lambda x, v: x.replace(v) if hasattr(x, 'replace') else v
        current = self.to_flat()
        for path, value in flat_mapping(pure_dict).items():
            if path not in current:
                raise ValueError(f'key in pure_dict not available in state: {path}')
            current[path] = replace_fn(current[path], value)
        self.update(nest_mapping(current))


def _merge_flat(states) -> dict:
    out: dict = {}
    for state in states:
        if isinstance(state, NestedDict):
            out.update(state.to_flat())
        elif isinstance(state, FlattedDict):
            out.update(state)
        else:
            raise TypeError(f'Expected Nested or Flatted Mapping, got {type(state)} instead.')
    return out


class FlattedDict(PrettyDict):
    """A flat mapping from path tuples to states or values; a pytree."""

    def __or__(self, other):
        if not other:
            return self
        if not isinstance(other, FlattedDict):
            raise TypeError(f'expected FlattedDict; got {type(other).__qualname__}')
        return FlattedDict.merge(self, other)

    def __sub__(self, other):
        if not other:
            return self
        if not isinstance(other, FlattedDict):
            raise TypeError(f'expected FlattedDict; got {type(other).__qualname__}')
        return FlattedDict({k: v for k, v in self.items() if k not in other})

    def to_nest(self) -> NestedDict:
        """The same entries as nested dicts."""
        return nest_mapping(self)

    @classmethod
    def from_nest(cls, nested_dict) -> 'FlattedDict':
        return flat_mapping(dict(nested_dict))

    def split(self, first, /, *filters):
        """Partition by filters (exhaustively: end with ``...``)."""
        *parts, rest = _partition(self, (first, *filters))
        if rest:
            raise _non_exhaustive(rest)
        parts = [FlattedDict(p) for p in parts]
        return parts[0] if len(parts) == 1 else tuple(parts)

    def filter(self, first, /, *filters):
        """The entries matching each filter (the rest dropped)."""
        *parts, _ = _partition(self, (first, *filters))
        parts = [FlattedDict(p) for p in parts]
        return parts[0] if len(parts) == 1 else tuple(parts)

    @staticmethod
    def merge(*states) -> 'FlattedDict':
        return FlattedDict(_merge_flat(states))

    def to_dict_values(self) -> dict:
        """``{path: state.value}`` (non-State entries as they are)."""
        from .._state import State
        return {k: v.value if isinstance(v, State) else v for k, v in self.items()}

    def assign_dict_values(self, data: dict) -> None:
        """Set every entry from ``data`` (States by ``.value =``); every key must be given."""
        from .._state import State
        for k in list(self.keys()):
            if k not in data:
                raise KeyError(f'Invalid key: {k!r}')
            if isinstance(self[k], State):
                self[k].value = data[k]
            else:
                self[k] = data[k]


def _sorted_items(x):
    try:
        return sorted(x.items())
    except TypeError:  # keys of mixed types
        return sorted(x.items(), key=lambda kv: repr(kv[0]))


def _mapping_flatten_with_keys(x):
    items = _sorted_items(x)
    return (tuple((jax.tree_util.DictKey(k), v) for k, v in items),
            tuple(k for k, _ in items))


jax.tree_util.register_pytree_with_keys(NestedDict, _mapping_flatten_with_keys,
                                        lambda keys, leaves: NestedDict(zip(keys, leaves)))
jax.tree_util.register_pytree_with_keys(FlattedDict, _mapping_flatten_with_keys,
                                        lambda keys, leaves: FlattedDict(zip(keys, leaves)))


@jax.tree_util.register_pytree_node_class
class PrettyList(list, PrettyRepr):
    """A list printed one item per line; a pytree."""

    def __pretty_repr__(self):
        yield from yield_unique_pretty_repr_items(self, _list_repr_object, _list_repr_attr)

    def __repr__(self):
        return pretty_repr_object(self)

    def tree_flatten(self):
        return list(self), ()

    @classmethod
    def tree_unflatten(cls, aux_data, children):
        return cls(children)


def _list_repr_object(node):
    yield PrettyType('', value_sep='', start='[', end=']')


def _list_repr_attr(node):
    for v in node:
        yield PrettyAttr('', _prettify(v))
