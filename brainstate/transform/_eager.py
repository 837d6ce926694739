"""Running a state-aware loop or branch outside any transform.

Called eagerly (no brainstate trace active), ``for_loop`` and friends compile themselves with
:func:`brainstate.transform.jit`, so an eager loop is one XLA loop too and its state updates are
kept (or, if it fails, none are). The compiled call is cached per control-flow operation, body
function and static options; the jit then caches per argument shapes, so calling the same loop
again with the same shapes neither retraces nor recompiles.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

__all__ = ['call_eagerly']

_MAX_CACHED = 128
_cache: OrderedDict = OrderedDict()


def call_eagerly(key: tuple, build: Callable[..., Any], name: str, *args):
    """``build(*args)`` compiled with ``jit`` and cached under ``key`` (the operation, its body
    functions and static options; an unhashable key just skips the cache)."""
    from ._jit import jit
    try:
        jitted = _cache.get(key)
    except TypeError:
        key, jitted = None, None
    if jitted is None:
        build.__name__ = name
        jitted = jit(build)
        if key is not None:
            _cache[key] = jitted
            if len(_cache) > _MAX_CACHED:
                _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return jitted(*args)
