"""Training helpers: counting a model's parameters and clipping gradients by their norm."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .._state import ParamState, State
from ._module import Module

__all__ = ['count_parameters', 'clip_grad_norm']


def _format_parameter_count(num_params, precision: int = 2) -> str:
    """``1234 -> '1.23K'``; counts under 1000 as they are."""
    if num_params < 1000:
        return str(num_params)
    suffixes = ['', 'K', 'M', 'B', 'T', 'P', 'E']
    magnitude = 0
    while abs(num_params) >= 1000:
        magnitude += 1
        num_params /= 1000.0
    text = f'{num_params:.{precision}f}{suffixes[magnitude]}'
    # Rounding may reach 1000 of the unit (999.999K -> '1000.00K'): move up one suffix.
    if magnitude < len(suffixes) - 1 and num_params >= 1000 * (1 - 10 ** (-precision)):
        magnitude += 1
        num_params /= 1000.0
        text = f'{num_params:.{precision}f}{suffixes[magnitude]}'
    return text


def count_parameters(module: Module, precision: int = 2, return_table: bool = False):
    """Print a table of the module's ParamStates and their sizes; return the total count
    (and the ``prettytable.PrettyTable`` when ``return_table``)."""
    if not isinstance(module, Module):
        raise AssertionError('Input must be a neural network module')
    table = _table(['Modules', 'Parameters'])
    total = 0
    for name, state in module.states(ParamState).items():
        n = sum(int(jnp.size(leaf)) for leaf in jax.tree.leaves(state.value))
        table.add_row([name, _format_parameter_count(n, precision)])
        total += n
    table.add_row(['Total', _format_parameter_count(total, precision)])
    print(table)
    return (table, total) if return_table else total


class _PlainTable:
    """A two-column text table, used when ``prettytable`` is not installed."""

    def __init__(self, field_names):
        self.field_names = list(field_names)
        self.rows = []

    def add_row(self, row):
        self.rows.append([str(c) for c in row])

    def __str__(self):
        rows = [self.field_names] + self.rows
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(self.field_names))]
        line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
        fmt = lambda r: '|' + '|'.join(f' {str(c):<{w}} ' for c, w in zip(r, widths)) + '|'
        return '\n'.join([line, fmt(self.field_names), line] + [fmt(r) for r in self.rows]
                         + [line])


def _table(field_names):
    try:
        from prettytable import PrettyTable
    except ImportError:
        return _PlainTable(field_names)
    return PrettyTable(field_names)


def clip_grad_norm(grad, max_norm, norm_type=2.0, return_norm: bool = False):
    """Scale a gradient pytree so its global norm is at most ``max_norm``.

    ``norm_type`` is the vector norm's order over all leaves together (2 by default;
    ``'inf'``/``'-inf'`` accepted). Returns the clipped tree, and its norm before clipping when
    ``return_norm``.

    Example::

        grads = brainstate.nn.clip_grad_norm(grads, max_norm=1.0)
    """
    if norm_type is None:
        norm_type = 2.0
    if norm_type == 'inf':
        norm_type = jnp.inf
    elif norm_type == '-inf':
        norm_type = -jnp.inf
    leaves = jax.tree.leaves(grad)
    if not leaves:
        return (grad, jnp.array(0.0)) if return_norm else grad
    total = partial(jnp.linalg.norm, ord=norm_type)(jnp.concatenate([g.ravel() for g in leaves]))
    factor = jnp.minimum(1.0, max_norm / (total + 1e-6))
    clipped = jax.tree.map(lambda g: g * factor, grad)
    return (clipped, total) if return_norm else clipped


def get_value(param):
    """A State's value, or the argument itself."""
    return param.value if isinstance(param, State) else param


def get_size(size) -> tuple:
    """A size as a tuple."""
    if isinstance(size, int):
        return (size,)
    if isinstance(size, (tuple, list)):
        return tuple(size)
    raise ValueError(f'size must be int, tuple, or list, got {type(size).__name__}')
