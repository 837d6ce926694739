"""The flat, path-keyed mapping returned by ``Module.states()`` and ``Module.nodes()``."""

from __future__ import annotations

import jax

from . import filter as filters


class FlatMapping(dict):
    """A dict from path tuples (``('layers', 0, 'w')``) to states or modules.

    Iteration follows the order the tree was walked in: attribute definition order, list order,
    dict insertion order. Besides the dict API it offers the few helpers training code needs.
    """

    def filter(self, *filter_args):
        """Select the entries matching a filter; with several filters, one mapping per filter."""
        split = self.split(*filter_args, ...)
        return split[0] if len(filter_args) == 1 else split[:-1]

    def split(self, *filter_args):
        """Partition the entries: each goes to the first filter that matches it.

        Entries matched by no filter are dropped; end with ``...`` to keep them.
        """
        predicates = [filters.to_predicate(f) for f in filter_args]
        parts = tuple(FlatMapping() for _ in predicates)
        for path, obj in self.items():
            for part, predicate in zip(parts, predicates):
                if predicate(path, obj):
                    part[path] = obj
                    break
        return parts

    def to_dict_values(self) -> dict:
        """``{path: state.value}`` for every state."""
        return {path: state.value for path, state in self.items()}

    def assign_dict_values(self, values: dict):
        """Set ``state.value`` for every path in ``values``."""
        for path, value in values.items():
            self[path].value = value

    def to_nest(self) -> dict:
        """The same entries as nested dicts: ``{'layers': {0: {'w': ...}}}``."""
        nest: dict = {}
        for path, obj in self.items():
            node = nest
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1] if path else ()] = obj
        return nest

    def __repr__(self):
        if not self:
            return 'FlatMapping({})'
        lines = ',\n'.join(f'  {path!r}: {obj!r}' for path, obj in self.items())
        return 'FlatMapping({\n' + lines + '\n})'


# A pytree, so gradients keyed like `model.states(ParamState)` (a FlatMapping of arrays) pass
# through jit, jax.tree.map and optimizers; entries keep their insertion order.
def _flatten_with_keys(mapping):
    return [(jax.tree_util.DictKey(k), v) for k, v in mapping.items()], tuple(mapping.keys())


def _unflatten(keys, values):
    out = FlatMapping()
    for key, value in zip(keys, values):
        dict.__setitem__(out, key, value)
    return out


jax.tree_util.register_pytree_with_keys(
    FlatMapping, _flatten_with_keys, _unflatten,
    flatten_func=lambda mapping: (list(mapping.values()), tuple(mapping.keys())))
