"""What every transformed-function object shares: binding as a method, and its repr."""

from __future__ import annotations

import functools

__all__ = ['TransformedFunction']


class TransformedFunction:
    """Base of the objects the transforms return (grad, vmap, ...). Subclasses set ``kind``
    (the transform's name) and ``fun_name``."""

    kind: str = 'transform'
    fun_name: str = '?'

    def __get__(self, obj, objtype=None):
        # Decorating a method: the instance becomes the first argument.
        if obj is None:
            return self
        return functools.partial(self, obj)

    def _cache_key(self):
        """What this transform computes: its kind, function and options (its public
        attributes; caches are private). The eager runner reuses a compiled program for an
        equal key (see brainstate/transform/_fun_key.py)."""
        out = [self.kind]
        for name, value in vars(self).items():
            if not name.startswith('_'):
                out += (name, value)
        return tuple(out)

    def __repr__(self):
        return f'<brainstate.transform.{self.kind} of {self.fun_name}>'
