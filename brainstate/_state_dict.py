"""StateDictManager: a DictManager of States with helpers on their values."""

from __future__ import annotations

from typing import Tuple

from ._state import State
from .util._others import DictManager

__all__ = ['StateDictManager']


class StateDictManager(DictManager):
    """A dict of States: split them by class, collect or assign their values."""

    def assign_values(self, *args: dict) -> None:
        """Set ``self[key].value = value`` for every entry of the given dicts."""
        for arg in args:
            if not isinstance(arg, dict):
                raise TypeError('Must be an instance of dict.')
            for k, v in arg.items():
                self._set_elem(k, v)

    def split_values(self, *filters: type) -> Tuple[DictManager, ...]:
        """The values of the states, split by class as :meth:`split` does."""
        return tuple(DictManager((k, st.value) for k, st in part.items())
                     for part in DictManager.split(self, *filters))

    def collect_values(self) -> DictManager:
        """``{key: state.value}`` as a DictManager."""
        return DictManager((k, st.value) for k, st in self.items())

    def to_dict_values(self) -> dict:
        """``{key: state.value}``."""
        return {k: st.value for k, st in self.items()}

    def _check_elem(self, elem):
        if not isinstance(elem, State):
            raise TypeError(f'must be instance of {State}')

    def _set_elem(self, key, value) -> None:
        self[key].value = value
