"""``FlatMapping``: the earlier name of :class:`brainstate.util.FlattedDict`, the flat,
path-keyed mapping that ``Module.states()`` and ``Module.nodes()`` return."""

from ._pretty_pytree import FlattedDict

FlatMapping = FlattedDict

__all__ = ['FlatMapping']
