"""State-aware transforms: they read and write States for you, and never drop an update."""

from ._jit import JittedFunction, jit
from ._make_jaxpr import make_jaxpr

__all__ = ['jit', 'JittedFunction', 'make_jaxpr']
