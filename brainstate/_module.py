"""Module: the base class of models. Defined in :mod:`brainstate.nn` (``brainstate.Module`` and
``brainstate.nn.Module`` are the same class)."""

from .nn._module import Module

__all__ = ['Module']
