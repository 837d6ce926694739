"""Padding layers (reflection, replication, zero, constant, circular; 1-3 spatial axes).

Inputs are channels-last: a 2-d padding takes ``(height, width, channels)`` or
``(batch, height, width, channels)`` and pads the two spatial axes. ``padding`` is an int (all
sides), one int per spatial axis (both sides), or ``2 * n`` ints ``(low0, high0, low1, ...)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._module import Module
from ._support import dftype

__all__ = ['ReflectionPad1d', 'ReflectionPad2d', 'ReflectionPad3d', 'ReplicationPad1d',
           'ReplicationPad2d', 'ReplicationPad3d', 'ZeroPad1d', 'ZeroPad2d', 'ZeroPad3d',
           'ConstantPad1d', 'ConstantPad2d', 'ConstantPad3d', 'CircularPad1d', 'CircularPad2d',
           'CircularPad3d']


def _format_padding(padding, ndim: int) -> list:
    """``ndim`` ``(low, high)`` pairs from an int, ``ndim`` ints or ``2 * ndim`` ints."""
    if isinstance(padding, (int, np.integer)) or getattr(padding, 'ndim', None) == 0:
        return [(int(padding), int(padding))] * ndim
    padding = list(padding)
    if len(padding) == ndim:
        return [(p, p) for p in padding]
    if len(padding) == 2 * ndim:
        return [(padding[2 * i], padding[2 * i + 1]) for i in range(ndim)]
    raise ValueError(f'Padding must have length {ndim} or {2 * ndim}, got {len(padding)}')


class _Pad(Module):
    """Pads the ``n`` spatial axes of a channels-last input with ``jnp.pad``'s ``mode``."""

    __module__ = 'brainstate.nn'
    n: int
    mode: str

    def __init__(self, padding, in_size=None, name: str | None = None):
        super().__init__(name=name)
        self.padding = _format_padding(padding, self.n)
        if in_size is not None:
            self.in_size = in_size
            self.out_size = jax.eval_shape(
                self.update, jax.ShapeDtypeStruct(self.in_size, dftype())).shape

    def _pad_width(self, x):
        if x.ndim == self.n + 1:
            return list(self.padding) + [(0, 0)]
        if x.ndim == self.n + 2:
            return [(0, 0)] + list(self.padding) + [(0, 0)]
        raise ValueError(f'Expected {self.n + 1}D or {self.n + 2}D input, got {x.ndim}D')

    def update(self, x):
        return jnp.pad(x, self._pad_width(x), mode=self.mode)


class _ConstantPad(_Pad):
    mode = 'constant'

    def __init__(self, padding, value: float = 0, in_size=None, name: str | None = None):
        self.value = value
        super().__init__(padding, in_size=in_size, name=name)

    def update(self, x):
        return jnp.pad(x, self._pad_width(x), mode='constant', constant_values=self.value)


_DOCS = {
    'reflect': 'Pad by reflecting the input at its border (the edge not repeated).',
    'edge': 'Pad by repeating the input\'s edge values.',
    'wrap': 'Pad circularly: values wrap around from the other side.',
}


def _make(name, base, n, mode=None, doc=None):
    attrs = {'n': n, '__module__': 'brainstate.nn', '__doc__': doc}
    if mode is not None:
        attrs['mode'] = mode
    return type(name, (base,), attrs)


ReflectionPad1d = _make('ReflectionPad1d', _Pad, 1, 'reflect', _DOCS['reflect'])
ReflectionPad2d = _make('ReflectionPad2d', _Pad, 2, 'reflect', _DOCS['reflect'])
ReflectionPad3d = _make('ReflectionPad3d', _Pad, 3, 'reflect', _DOCS['reflect'])
ReplicationPad1d = _make('ReplicationPad1d', _Pad, 1, 'edge', _DOCS['edge'])
ReplicationPad2d = _make('ReplicationPad2d', _Pad, 2, 'edge', _DOCS['edge'])
ReplicationPad3d = _make('ReplicationPad3d', _Pad, 3, 'edge', _DOCS['edge'])
CircularPad1d = _make('CircularPad1d', _Pad, 1, 'wrap', _DOCS['wrap'])
CircularPad2d = _make('CircularPad2d', _Pad, 2, 'wrap', _DOCS['wrap'])
CircularPad3d = _make('CircularPad3d', _Pad, 3, 'wrap', _DOCS['wrap'])
_CONST = 'Pad with the constant ``value``.'
ConstantPad1d = _make('ConstantPad1d', _ConstantPad, 1, doc=_CONST)
ConstantPad2d = _make('ConstantPad2d', _ConstantPad, 2, doc=_CONST)
ConstantPad3d = _make('ConstantPad3d', _ConstantPad, 3, doc=_CONST)


class _ZeroPad(_Pad):
    mode = 'constant'

    def update(self, x):
        return jnp.pad(x, self._pad_width(x), mode='constant', constant_values=0)


ZeroPad1d = _make('ZeroPad1d', _ZeroPad, 1, doc='Pad with zeros.')
ZeroPad2d = _make('ZeroPad2d', _ZeroPad, 2, doc='Pad with zeros.')
ZeroPad3d = _make('ZeroPad3d', _ZeroPad, 3, doc='Pad with zeros.')
