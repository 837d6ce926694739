"""Dictionary helpers of the published BrainState API: ``DictManager`` (a dict with selection
helpers, a pytree), ``DotDict`` (attribute access, nested), and small functions on dicts."""

from __future__ import annotations

import copy as _copy
import functools
import gc
import threading
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import jax

__all__ = ['DictManager', 'DotDict', 'split_total', 'get_unique_name', 'merge_dicts',
           'flatten_dict', 'unflatten_dict', 'not_instance_eval', 'is_instance_eval',
           'clear_buffer_memory']


def _by_identity(values, by):
    if by == 'id':
        ids = {id(v) for v in values}
        return lambda v: id(v) in ids
    if by == 'value':
        pool = values if isinstance(values, set) else set(values)
        return lambda v: v in pool
    raise ValueError(f"Invalid comparison method: {by}. Use 'id' or 'value'.")


@jax.tree_util.register_pytree_node_class
class DictManager(dict):
    """A dict (a pytree, keys static) with helpers to select, split and deduplicate entries."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._val_id_to_key = {}

    def _new(self, items=()):
        return type(self)(items)

    def subset(self, sep) -> 'DictManager':
        """Entries whose value is an instance of ``sep`` (a type or tuple), or satisfies it
        (a predicate on the value)."""
        if callable(sep) and not isinstance(sep, type):
            return self._new((k, v) for k, v in self.items() if sep(v))
        return self._new((k, v) for k, v in self.items() if isinstance(v, sep))

    def not_subset(self, sep) -> 'DictManager':
        """Entries whose value is not an instance of ``sep``."""
        return self._new((k, v) for k, v in self.items() if not isinstance(v, sep))

    def add_unique_key(self, key, val) -> None:
        """Add ``key: val``; the key may exist already only with this very value."""
        self._check_elem(val)
        if key in self:
            if self[key] is not val:
                raise ValueError(f"Key '{key}' already exists with a different value. Existing: "
                                 f"{self[key]}, New: {val}")
        else:
            self[key] = val

    def add_unique_value(self, key, val) -> bool:
        """Add ``key: val`` unless this very value is held already; returns whether added."""
        self._check_elem(val)
        if key in self and self[key] is not val:
            raise ValueError(f"Key '{key}' already exists with a different value. Existing: "
                             f"{self[key]}, New: {val}")
        self._val_id_to_key = {id(v): k for k, v in self.items()}
        if id(val) in self._val_id_to_key:
            return False
        self._val_id_to_key[id(val)] = key
        self[key] = val
        return True

    def unique(self) -> 'DictManager':
        """A copy keeping the first key of each distinct (by identity) value."""
        seen, out = set(), self._new()
        for k, v in self.items():
            if id(v) not in seen:
                seen.add(id(v))
                out[k] = v
        return out

    def unique_(self) -> 'DictManager':
        """As :meth:`unique`, in place; returns self."""
        keep = self.unique()
        for k in [k for k in self if k not in keep]:
            del self[k]
        return self

    def assign(self, *args: dict, **kwargs) -> None:
        """Update from dicts and keyword arguments."""
        for arg in args:
            if not isinstance(arg, dict):
                raise TypeError(f'Arguments must be dict instances, got {type(arg).__name__}')
            self.update(arg)
        self.update(kwargs)

    def split(self, *types) -> Tuple['DictManager', ...]:
        """One manager per type (each entry goes to the first type it is an instance of) and
        a last one with the rest."""
        parts = tuple(self._new() for _ in range(len(types) + 1))
        for k, v in self.items():
            for part, type_ in zip(parts, types):
                if isinstance(v, type_):
                    part[k] = v
                    break
            else:
                parts[-1][k] = v
        return parts

    def filter_by_predicate(self, predicate: Callable[[Any, Any], bool]) -> 'DictManager':
        """Entries with ``predicate(key, value)``."""
        return self._new((k, v) for k, v in self.items() if predicate(k, v))

    def map_values(self, func: Callable) -> 'DictManager':
        return self._new((k, func(v)) for k, v in self.items())

    def map_keys(self, func: Callable) -> 'DictManager':
        out = self._new()
        for k, v in self.items():
            new = func(k)
            if new in out:
                raise ValueError(f'Key transformation created duplicate: {new}')
            out[new] = v
        return out

    def pop_by_keys(self, keys: Iterable) -> None:
        for k in set(keys) & set(self):
            del self[k]

    def pop_by_values(self, values: Iterable, by: str = 'id') -> None:
        match = _by_identity(values, by)
        for k in [k for k, v in self.items() if match(v)]:
            del self[k]

    def difference_by_keys(self, keys: Iterable) -> 'DictManager':
        keys = set(keys)
        return self._new((k, v) for k, v in self.items() if k not in keys)

    def difference_by_values(self, values: Iterable, by: str = 'id') -> 'DictManager':
        match = _by_identity(values, by)
        return self._new((k, v) for k, v in self.items() if not match(v))

    def intersection_by_keys(self, keys: Iterable) -> 'DictManager':
        keys = set(keys)
        return self._new((k, v) for k, v in self.items() if k in keys)

    def intersection_by_values(self, values: Iterable, by: str = 'id') -> 'DictManager':
        match = _by_identity(values, by)
        return self._new((k, v) for k, v in self.items() if match(v))

    def __add__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        out = self._new(self)
        out.update(other)
        return out

    __or__ = __add__

    def __ior__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        self.update(other)
        return self

    def tree_flatten(self):
        return tuple(self.values()), tuple(self.keys())

    @classmethod
    def tree_unflatten(cls, keys, values):
        return cls(zip(keys, values))

    def _check_elem(self, elem) -> None:
        """Subclasses check what may be stored."""

    def to_dict(self) -> dict:
        return dict(self)

    def __copy__(self):
        return self._new(self)

    def __deepcopy__(self, memo):
        return self._new((_copy.deepcopy(k, memo), _copy.deepcopy(v, memo))
                         for k, v in self.items())

    def __repr__(self):
        items = ', '.join(f'{k!r}: {v!r}' for k, v in self.items())
        return f'{type(self).__name__}({{{items}}})'


@jax.tree_util.register_pytree_node_class
class DotDict(dict):
    """A dict whose keys are also attributes (``d.lr``); nested dicts (also inside lists and
    tuples) become DotDicts."""

    def __init__(self, *args, **kwargs):
        for arg in args:
            if not arg:
                continue
            if isinstance(arg, dict):
                items = arg.items()
            elif isinstance(arg, tuple) and len(arg) == 2 and not isinstance(arg[0], tuple):
                items = [arg]
            else:
                try:
                    items = [(k, v) for k, v in arg]
                except (TypeError, ValueError) as e:
                    raise TypeError(f'Invalid argument type for DotDict: '
                                    f'{type(arg).__name__}') from e
            for k, v in items:
                self[k] = v
        for k, v in kwargs.items():
            self[k] = v

    @classmethod
    def _hook(cls, item):
        if isinstance(item, dict) and not isinstance(item, cls):
            return cls(item)
        if isinstance(item, tuple):
            converted = [cls._hook(x) for x in item]
            return type(item)(*converted) if hasattr(item, '_fields') else type(item)(converted)
        if isinstance(item, list):
            return type(item)(cls._hook(x) for x in item)
        return item

    def __setitem__(self, key, value):
        super().__setitem__(key, self._hook(value))

    def __setattr__(self, name, value):
        if hasattr(type(self), name):
            raise AttributeError(f"Cannot set attribute '{name}': it's a built-in method of "
                                 f"{type(self).__name__}")
        self[name] = value

    def __getattr__(self, item):
        try:
            return self[item]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute "
                                 f"'{item}'") from None

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute "
                                 f"'{name}'") from None

    def __dir__(self):
        return list(self.keys()) + dir(type(self))

    def get(self, key, default=None):
        return super().get(key, default)

    def copy(self) -> 'DotDict':
        return _copy.copy(self)

    def deepcopy(self) -> 'DotDict':
        return _copy.deepcopy(self)

    def __copy__(self):
        out = type(self)()
        for k, v in self.items():
            dict.__setitem__(out, k, v)
        return out

    def __deepcopy__(self, memo):
        out = type(self)()
        memo[id(self)] = out
        for k, v in self.items():
            out[_copy.deepcopy(k, memo)] = _copy.deepcopy(v, memo)
        return out

    def to_dict(self) -> dict:
        """Plain nested dicts."""
        def plain(value):
            if isinstance(value, DotDict):
                return value.to_dict()
            if isinstance(value, tuple):
                items = [plain(x) for x in value]
                return type(value)(*items) if hasattr(value, '_fields') else type(value)(items)
            if isinstance(value, list):
                return type(value)(plain(x) for x in value)
            return value
        return {k: plain(v) for k, v in self.items()}

    @classmethod
    def from_dict(cls, d: dict) -> 'DotDict':
        return cls(d)

    def update(self, *args, **kwargs) -> None:
        """Update, merging nested dicts rather than replacing them."""
        if len(args) > 1:
            raise TypeError(f'update expected at most 1 argument, got {len(args)}')
        try:
            other = dict(args[0]) if args else {}
        except (TypeError, ValueError) as e:
            raise TypeError(f'update expected a mapping or iterable of key/value pairs, got '
                            f'{type(args[0]).__name__}') from e
        other.update(kwargs)
        for k, v in other.items():
            if k in self and isinstance(self[k], dict) and isinstance(v, dict):
                if not isinstance(self[k], DotDict):
                    self[k] = DotDict(self[k])
                self[k].update(v)
            else:
                self[k] = v

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def __or__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        out = type(self)(self)
        out.update(other)
        return out

    def __ror__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        out = type(self)(dict(other))
        out.update(self)
        return out

    def __ior__(self, other):
        if not isinstance(other, Mapping):
            return NotImplemented
        self.update(other)
        return self

    def __getstate__(self):
        return dict(self)

    def __setstate__(self, state):
        self.update(state)

    def tree_flatten(self):
        return tuple(self.values()), tuple(self.keys())

    @classmethod
    def tree_unflatten(cls, keys, values):
        return cls(zip(keys, values))

    def __repr__(self):
        return 'DotDict({' + ', '.join(f'{k!r}: {v!r}' for k, v in self.items()) + '})'


def split_total(total: int, fraction) -> int:
    """A part of ``total``: ``fraction`` of it (a float in [0, 1]) or a count (an int up to
    ``total``)."""
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError(f"'total' must be an integer, got {type(total).__name__}.")
    if total <= 0:
        raise ValueError(f"'total' must be a positive integer, got {total}.")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"'fraction' must be an integer or float, got "
                        f"{type(fraction).__name__}.")
    if fraction < 0:
        raise ValueError(f"'fraction' value cannot be negative, got {fraction}.")
    if isinstance(fraction, float):
        if fraction > 1:
            raise ValueError(f"'fraction' value cannot be greater than 1, got {fraction}.")
        return int(total * fraction)
    if fraction > total:
        raise ValueError(f"'fraction' value cannot be greater than total ({total}), got "
                         f"{fraction}.")
    return fraction


class NameContext(threading.local):
    """Per-thread counters of :func:`get_unique_name`."""

    def __init__(self):
        self.typed_names: Dict[str, int] = {}

    def reset(self, type_: Optional[str] = None) -> None:
        if type_ is None:
            self.typed_names.clear()
        elif type_ in self.typed_names:
            self.typed_names[type_] = 0


NAME = NameContext()


def get_unique_name(type_: str, prefix: str = '') -> str:
    """``f'{prefix}{type_}{n}'`` with a per-thread counter ``n`` per ``type_``."""
    n = NAME.typed_names.get(type_, 0)
    NAME.typed_names[type_] = n + 1
    return f'{prefix}{type_}{n}'


def merge_dicts(*dicts: dict, recursive: bool = True) -> dict:
    """Merge dicts left to right (nested dicts merged too, with ``recursive``)."""
    out: dict = {}
    for d in dicts:
        if not isinstance(d, dict):
            raise TypeError(f'All arguments must be dicts, got {type(d).__name__}')
        for k, v in d.items():
            if recursive and isinstance(out.get(k), dict) and isinstance(v, dict):
                out[k] = merge_dicts(out[k], v, recursive=True)
            else:
                out[k] = v
    return out


def flatten_dict(d: dict, parent_key: str = '', sep: str = '.') -> dict:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (empty nested dicts are kept as values)."""
    if not isinstance(d, dict):
        raise TypeError(f'd must be a dict, got {type(d).__name__}.')
    out: dict = {}

    def put(key, value):
        if key in out:
            raise ValueError(f'flatten_dict produced duplicate key {key!r}.')
        out[key] = value

    for k, v in d.items():
        if parent_key and not isinstance(k, str):
            raise TypeError(f'flatten_dict requires string keys for nested levels, got '
                            f'{type(k).__name__} key {k!r}.')
        key = f'{parent_key}{sep}{k}' if parent_key else k
        if isinstance(v, dict) and v:
            for nk, nv in flatten_dict(v, key, sep=sep).items():
                put(nk, nv)
        else:
            put(key, {} if isinstance(v, dict) else v)
    return out


def unflatten_dict(d: dict, sep: str = '.') -> dict:
    """The inverse of :func:`flatten_dict`."""
    if not isinstance(d, dict):
        raise TypeError(f'd must be a dict, got {type(d).__name__}.')
    out: dict = {}
    for key, value in d.items():
        parts = key.split(sep)
        if any(part == '' for part in parts):
            raise ValueError(f'Invalid flattened key {key!r}.')
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f'Cannot expand scalar key prefix {part!r} in {key!r}.')
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f'Cannot overwrite mapping at key {key!r} with a scalar value.')
        node[parts[-1]] = dict(value) if isinstance(value, dict) else value
    return out


def _not_instance(x, cls):
    return not isinstance(x, cls)


def _instance(x, cls):
    return isinstance(x, cls)


def not_instance_eval(*cls) -> Callable[[Any], bool]:
    """A predicate: ``x`` is not an instance of any of ``cls``."""
    return functools.partial(_not_instance, cls=cls)


def is_instance_eval(*cls) -> Callable[[Any], bool]:
    """A predicate: ``x`` is an instance of one of ``cls``."""
    return functools.partial(_instance, cls=cls)


def clear_buffer_memory(platform: Optional[str] = None, array: bool = True,
                        compilation: bool = False) -> None:
    """Delete the live device buffers of ``platform`` (with ``array``) and JAX's compilation
    caches (with ``compilation``), then collect garbage."""
    if array:
        from .. import _compatible_import
        for buf in _compatible_import.get_backend(platform).live_buffers():
            try:
                buf.delete()
            except Exception as e:  # a buffer in use elsewhere: keep going
                warnings.warn(f'Failed to delete buffer {buf!r}: {e}', RuntimeWarning)
    if compilation:
        jax.clear_caches()
    gc.collect()
