"""BoundedCache: a thread-safe least-recently-used cache of compiled programs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Dict

__all__ = ['BoundedCache']


class BoundedCache:
    """At most ``maxsize`` entries; the least recently used one is dropped first. Entries are
    never overwritten silently (:meth:`set` refuses an existing key; use :meth:`replace`)."""

    def __init__(self, maxsize: int = 128):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f'maxsize must be an integer, got {type(maxsize).__name__}.')
        if maxsize < 0:
            raise ValueError(f'maxsize must be non-negative, got {maxsize}.')
        self._cache: OrderedDict = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.RLock()
        self._hits = 0
        self._misses = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def get(self, key, default=None, raise_on_miss: bool = False, error_context: str = 'item'):
        """The value of ``key`` (now the most recently used), else ``default``; with
        ``raise_on_miss`` a ``ValueError`` listing the cached keys."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self._hits += 1
                return self._cache[key]
            self._misses += 1
            if not raise_on_miss:
                return default
            keys = list(self._cache)
            lines = [f'{error_context} not compiled for the requested cache key.', '',
                     'Requested key:', f'  {key}', '', f'Available {len(keys)} keys:']
            lines += [f'  [{i}] {k}' for i, k in enumerate(keys, 1)] or \
                ['  (none - not compiled yet)']
            lines += ['', 'Call make_jaxpr() first with matching arguments.']
            raise ValueError('\n'.join(lines))

    def set(self, key, value) -> None:
        """Add an entry (``ValueError`` if the key exists), dropping the oldest when full."""
        with self._lock:
            if key in self._cache:
                raise ValueError(f'Cache key already exists: {key}. Cannot overwrite existing '
                                 f'cached value. Clear the cache first if you need to recompile.')
            if self._maxsize == 0:
                return
            if len(self._cache) >= self._maxsize:
                self._cache.popitem(last=False)
            self._cache[key] = value

    def pop(self, key, default=None):
        with self._lock:
            return self._cache.pop(key, default)

    def replace(self, key, value) -> None:
        """Replace an existing entry (``KeyError`` if absent)."""
        with self._lock:
            if key not in self._cache:
                raise KeyError(f'Cache key does not exist: {key}. Cannot replace non-existent '
                               f'cached value. Use set() to add a new cache entry.')
            self._cache[key] = value
            self._cache.move_to_end(key)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._cache

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0

    def keys(self) -> list:
        with self._lock:
            return list(self._cache)

    def get_stats(self) -> Dict[str, Any]:
        """Size, capacity, hits, misses and hit rate (percent)."""
        with self._lock:
            total = self._hits + self._misses
            return {'size': len(self._cache), 'maxsize': self._maxsize, 'hits': self._hits,
                    'misses': self._misses,
                    'hit_rate': self._hits / total * 100 if total else 0.0}
