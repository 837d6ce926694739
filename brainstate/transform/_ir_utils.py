"""Errors and small helpers of the jaxpr utilities (``eqns_to_jaxpr``...)."""

from __future__ import annotations

from jax.extend.core import Var

from .._errors import BrainStateError

__all__ = ['IRError', 'IRValidationError', 'UnsupportedPrimitiveError', 'check_all_vars']


class IRError(BrainStateError):
    """Base class of the errors of the jaxpr utilities."""


class IRValidationError(IRError, ValueError):
    """A malformed jaxpr input (also a ValueError)."""


class UnsupportedPrimitiveError(IRError):
    """A primitive or control-flow construct a jaxpr utility cannot handle."""


def check_all_vars(varseq, name: str):
    """IRValidationError unless every item of ``varseq`` is a jaxpr ``Var``."""
    for v in varseq:
        if not isinstance(v, Var):
            raise IRValidationError(f'{name} must contain only Var instances; got '
                                    f'{type(v).__name__}.')
