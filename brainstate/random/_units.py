"""Physical units on sampler parameters (optional: only when ``brainunit`` is in use).

A ``loc`` or ``scale`` given as a ``brainunit.Quantity`` (``2.0 * u.mV``) gives samples in that
unit; shape, rate, count and probability parameters must be dimensionless. brainstate does not
depend on brainunit: a Quantity can only reach a sampler if the caller imported brainunit, so
these helpers look for it in ``sys.modules`` and never import it themselves. Without it every
parameter is a plain number or array and every helper is the identity.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp

__all__ = ['unitless', 'is_quantity', 'split_unit', 'with_unit', 'shared_unit',
           '_remove_unit_param', '_scale_unit', '_loc_scale_unit']


def _brainunit():
    return sys.modules.get('brainunit')


def unitless():
    """The marker of "no unit": ``brainunit.UNITLESS`` when brainunit is loaded, else ``None``."""
    bu = _brainunit()
    return None if bu is None else bu.UNITLESS


def is_quantity(x) -> bool:
    """Whether ``x`` is a ``brainunit.Quantity``."""
    bu = _brainunit()
    return bu is not None and isinstance(x, bu.Quantity)


def _has_dimension(unit) -> bool:
    return unit is not None and not unit.is_unitless


def split_unit(x):
    """``(mantissa, unit)`` of a parameter; a plain value has the unit :func:`unitless`."""
    if is_quantity(x):
        return x.mantissa, x.unit
    return x, unitless()


def with_unit(samples, unit):
    """Samples drawn in ``unit``'s mantissa, returned as a Quantity (plain if dimensionless)."""
    if not _has_dimension(unit):
        return samples
    return _brainunit().maybe_decimal(samples * unit)


def _remove_unit_param(name: str, x, dtype=None):
    """The mantissa of a parameter that must be dimensionless (shape, rate, count, probability).

    ``None`` stays ``None``; a unitless Quantity gives its mantissa; a dimensional one raises
    ``ValueError`` naming the parameter. With ``dtype`` the result is cast to it.
    """
    if x is None:
        return None
    if is_quantity(x):
        if _has_dimension(x.unit):
            raise ValueError(
                f"Parameter '{name}' must be dimensionless, but got unit {x.unit}. Pass the "
                f"plain number (e.g. `x.mantissa` or `x.to_decimal(unit)`).")
        x = x.mantissa
    return x if dtype is None else jnp.asarray(x, dtype=dtype)


def _scale_unit(scale):
    """``(mantissa, unit)`` of a scale-only parameter; ``None`` gives ``(None, unitless)``."""
    if scale is None:
        return None, unitless()
    return split_unit(scale)


def _loc_scale_unit(loc, scale):
    """``(loc_mantissa, scale_mantissa, unit)`` of a location/scale pair sharing one unit.

    The unit comes from whichever of the two carries one (``loc`` first); a plain value is read
    in that unit, a compatible unit is converted (``1 V`` against ``mV`` gives ``1000``), an
    incompatible one raises brainunit's ``UnitMismatchError``. Either may be ``None``.
    """
    loc_q, scale_q = is_quantity(loc), is_quantity(scale)
    if not loc_q and not scale_q:
        return loc, scale, unitless()
    unit = loc.unit if loc_q else scale.unit
    if loc_q:
        loc = loc.mantissa
    if scale_q:
        scale = scale.to(unit).mantissa if loc_q else scale.mantissa
    return loc, scale, unit


def shared_unit(*values):
    """The mantissas of several parameters in one shared unit, and that unit.

    Like :func:`_loc_scale_unit` for any number of parameters (``triangular``'s bounds,
    ``truncated_normal``'s bounds, loc and scale): the first dimensional one fixes the unit.
    """
    unit = None
    for v in values:
        if is_quantity(v) and _has_dimension(v.unit):
            unit = v.unit
            break
    if unit is None:
        return [v.mantissa if is_quantity(v) else v for v in values], unitless()
    return [v.to(unit).mantissa if is_quantity(v) else v for v in values], unit
