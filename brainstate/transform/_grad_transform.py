"""GradientTransform under its published module name (the implementation is in
:mod:`._autograd`)."""

from ._autograd import GradientTransform, _check_nan_jit_compatible

__all__ = ['GradientTransform']
