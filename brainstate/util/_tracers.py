"""StateJaxTracer: remembers the JAX trace it was created in, to tell later whether code runs
in that same trace."""

from __future__ import annotations

from ._pretty_repr import PrettyAttr, PrettyRepr, PrettyType

__all__ = ['StateJaxTracer', 'current_jax_trace']


def current_jax_trace():
    """An opaque token of the current JAX trace (equal tokens: the same trace)."""
    from jax._src import core
    return core.get_opaque_trace_state(convention='nnx')


class StateJaxTracer(PrettyRepr):
    """The JAX trace current when it was created; :meth:`is_valid` tells whether it still is."""
    __slots__ = ['_jax_trace']

    def __init__(self):
        self._jax_trace = current_jax_trace()

    @property
    def jax_trace(self):
        return self._jax_trace

    def is_valid(self) -> bool:
        """Whether the current JAX trace is the one it was created in."""
        return self._jax_trace == current_jax_trace()

    def __eq__(self, other):
        return isinstance(other, StateJaxTracer) and self._jax_trace == other._jax_trace

    def __hash__(self):
        return hash(StateJaxTracer)

    def __pretty_repr__(self):
        yield PrettyType(type(self).__name__)
        yield PrettyAttr('jax_trace', self._jax_trace)
