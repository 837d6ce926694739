"""Hidden states holding several variables in one array (the last axis indexes them), and the
``FakeState`` stand-in.

``HiddenGroupState(x)`` holds ``x`` of shape ``(*varshape, n)``; ``HiddenTreeState({'V': v,
'I': i})`` stacks equally shaped arrays (quantities with units are stored as their magnitudes,
and their units restored by ``get_value``).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._state import HiddenState, ShortTermState, _check_hidden_array

__all__ = ['HiddenGroupState', 'HiddenTreeState', 'FakeState']


def _unit_tools():
    try:
        import brainunit as u
    except ImportError:  # pragma: no cover - units are optional
        return None
    return u


class HiddenGroupState(HiddenState):
    """Several hidden variables of one shape in one array, stacked on the last axis; they are
    named ``'0'``, ``'1'``, ... (``name2index``)."""

    def __init__(self, value, **kwargs):
        value, name2index = self._check_value(value)
        ShortTermState.__init__(self, value, **kwargs)
        self.name2index = name2index

    def _check_value(self, value):
        _check_hidden_array(type(self), value)
        if value.ndim < 2:
            raise ValueError(f'Currently, {type(self).__name__} only supports hidden states with '
                             f'more than 2 dimensions, where the last dimension is the number of '
                             f'state size and the other dimensions are the hidden shape. But we '
                             f'got {value.ndim} dimensions.')
        return value, {str(i): i for i in range(value.shape[-1])}

    @property
    def varshape(self) -> tuple:
        """The shape of each variable (all axes but the last)."""
        return tuple(self.value.shape[:-1])

    @property
    def num_state(self) -> int:
        """How many variables are stacked."""
        return self.value.shape[-1]

    def _index(self, item) -> int:
        n = self.value.shape[-1]
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if item >= n or item < -n:
                raise IndexError(f'Index {item} out of range. The maximum index is {n - 1}.')
            return int(item) % n
        if isinstance(item, str):
            if item not in self.name2index:
                raise KeyError(f'Hidden state name {item} not found. Please check the hidden '
                               f'state names.')
            return self.name2index[item]
        raise TypeError(f'Currently, {type(self).__name__} only supports int or str for getting '
                        f'the hidden state. But we got {type(item)}.')

    def get_value(self, item):
        """The variable at index ``item`` (an int or a name)."""
        return self.value[..., self._index(item)]

    def _items(self, val):
        if isinstance(val, (tuple, list)):
            val = dict(enumerate(val))
        if not isinstance(val, dict):
            raise TypeError(f'Currently, {type(self).__name__}.set_value() only supports '
                            f'dictionary of hidden states. But we got {type(val)}.')
        out = []
        for key, v in val.items():
            if isinstance(key, str):
                if key not in self.name2index:
                    raise KeyError(f'Hidden state name {key} not found.')
                key = self.name2index[key]
            if not isinstance(key, (int, np.integer)) or isinstance(key, bool):
                raise TypeError(f'Key {key} should be int or str. But we got {type(key)}.')
            if not 0 <= key < self.num_state:
                raise ValueError(f'Index {key} out of range. The number of hidden states is '
                                 f'{self.num_state}.')
            if tuple(np.shape(v)) != self.varshape:
                raise ValueError(f'The shape of the hidden state should be {self.varshape}. But '
                                 f'we got {np.shape(v)}.')
            out.append((int(key), v))
        if not out:
            raise ValueError('No hidden state is set. Please check the hidden state names or '
                             'indices.')
        return out

    def set_value(self, val) -> None:
        """Set some variables: ``{index_or_name: array}`` or a sequence in index order."""
        items = self._items(val)
        u = _unit_tools()
        current = self.value
        if u is not None and isinstance(current, u.Quantity):
            unit = current.unit
            mag = jnp.asarray(current.mantissa)
            for index, v in items:
                mag = mag.at[..., index].set(jnp.asarray(u.Quantity(v).to(unit).mantissa))
            self.value = u.Quantity(mag, unit=unit)
            return
        array = jnp.asarray(current)
        for index, v in items:
            if u is not None:
                v = u.get_magnitude(v)
            array = array.at[..., index].set(jnp.asarray(v, dtype=array.dtype))
        self.value = array


class HiddenTreeState(HiddenGroupState):
    """Named hidden variables of one shape, ``{'V': v, 'I': i}`` (or a sequence, named
    ``'0'``, ``'1'``...), stacked on the last axis of one array; units are kept per variable."""

    def __init__(self, value, **kwargs):
        value, name2unit, name2index = self._check_value(value)
        ShortTermState.__init__(self, value, **kwargs)
        self.name2unit = name2unit
        self.name2index = name2index
        self.index2unit = dict(enumerate(name2unit.values()))
        self.index2name = {i: k for k, i in name2index.items()}

    def _check_value(self, value):
        if isinstance(value, (tuple, list)):
            value = {str(i): v for i, v in enumerate(value)}
        if not isinstance(value, dict):
            raise TypeError(f'Currently, {type(self).__name__} only supports dictionary/sequence '
                            f'of hidden states. But we got {type(value)}.')
        for key, v in value.items():
            if not (isinstance(v, (np.ndarray, jax.Array)) or type(v).__name__ == 'Quantity'):
                raise TypeError(f'Currently, {type(self).__name__} only supports numpy.ndarray, '
                                f'jax.Array or brainunit.Quantity. But we got {type(v)} for key '
                                f'{key}.')
        shapes = {k: tuple(v.shape) for k, v in value.items()}
        if len(set(shapes.values())) > 1:
            raise ValueError(f'Currently, {type(self).__name__} only supports hidden states with '
                             f'the same shape. But we got {shapes}.')
        u = _unit_tools()
        if u is not None:
            name2unit = {k: u.get_unit(v) for k, v in value.items()}
            mags = [u.get_magnitude(v) for v in value.values()]
        else:
            name2unit = {k: None for k in value}
            mags = list(value.values())
        name2index = {k: i for i, k in enumerate(value)}
        return jnp.stack([jnp.asarray(m) for m in mags], axis=-1), name2unit, name2index

    @property
    def num_state(self) -> int:
        if self.value.shape[-1] != len(self.name2index):
            raise ValueError(f'The number of hidden states ({self.value.shape[-1]}) is not equal '
                             f'to the number of hidden state names ({len(self.name2index)}).')
        return self.value.shape[-1]

    def get_value(self, item):
        """The variable ``item`` (a name or an index), with its unit."""
        index = self._index(item)
        val = self.value[..., index]
        unit = self.index2unit[index]
        if unit is None or unit.dim.is_dimensionless:
            return val
        return val * unit

    def set_value(self, val) -> None:
        """Set some variables (``{name_or_index: value}`` or a sequence); values are converted
        to each variable's unit."""
        items = self._items(val)
        u = _unit_tools()
        array = jnp.asarray(self.value)
        for index, v in items:
            unit = self.index2unit[index]
            if u is not None and unit is not None:
                v = u.Quantity(v).to(unit).mantissa
            array = array.at[..., index].set(jnp.asarray(v, dtype=array.dtype))
        self.value = array


class FakeState:
    """Looks like a State (``.value``, ``.name``) but is a plain holder: not traced, not
    found by ``module.states()``."""

    def __init__(self, value: Any, name: Optional[str] = None, **kwargs):
        self._value = value
        self._name = name

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        self._value = v

    @property
    def name(self) -> Optional[str]:
        return self._name

    @name.setter
    def name(self, name: str):
        self._name = name

    def __repr__(self):
        return f'FakedState(value={self._value})'
