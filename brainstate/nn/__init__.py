"""Neural-network building blocks."""

from .._module import Module

__all__ = ['Module']
