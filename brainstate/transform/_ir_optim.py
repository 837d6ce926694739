"""Optimize a plain jaxpr with brainstate's own passes (the published ``brainstate.transform``
jaxpr optimizers: ``constant_fold``, ``dead_code_elimination``, ``optimize_jaxpr``...).

Each function converts the jaxpr into the state IR (:func:`brainstate.ir.graph_from_jaxpr`),
runs passes of :mod:`brainstate.passes` on it (``fold-constants``, ``algebraic-simplify``,
``copy-propagation``, ``cse``, ``dce``) and lowers the graph back, so a jaxpr is optimized by
exactly the code that optimizes every brainstate program. The result keeps the jaxpr's
interface: the very same ``constvars``, ``invars`` and ``outvars`` objects; an output that the
passes turned into an input, a literal or a copy of another output gets an identity equation
(``convert_element_type`` to its own type) that defines it. Calls of ``jax.jit`` helpers are
inlined on the way (their bodies are optimized with the rest).

Example::

    closed = jax.make_jaxpr(f)(x)
    smaller = brainstate.transform.optimize_jaxpr(closed)     # a ClosedJaxpr again
    jax.core.eval_jaxpr(smaller.jaxpr, smaller.consts, x)     # the same results as f(x)
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.extend.core as jex_core
from jax import lax

from ..ir import graph_from_jaxpr, lower_to_jaxpr
from ..passes import FunctionPass, PassManager, algebraic_simplify, get_pass
from ..passes._cse import param_key
from ._ir_utils import IdentitySet, IRValidationError

__all__ = ['constant_fold', 'dead_code_elimination', 'common_subexpression_elimination',
           'copy_propagation', 'algebraic_simplification', 'optimize_jaxpr', 'IdentitySet']

# The published helper's name for the parameter key CSE compares params by.
_canonical_param = param_key


def _published_algebra():
    # The published identities include x + 0.0 = x, which turns -0.0 into +0.0... the other
    # way round; brainstate's own pass keeps signed zeros unless told otherwise.
    return FunctionPass(functools.partial(algebraic_simplify, signed_zeros=False),
                        name='algebraic-simplify')


# Published optimization name -> the pass that does it.
_PASSES = {
    'constant_fold': lambda: get_pass('fold-constants'),
    'algebraic_simplification': _published_algebra,
    'copy_propagation': lambda: get_pass('copy-propagation'),
    'cse': lambda: get_pass('cse'),
    'dce': lambda: get_pass('dce'),
}
_DEFAULT_ORDER = ('constant_fold', 'algebraic_simplification', 'copy_propagation', 'cse', 'dce')


def _split(jaxpr, what: str):
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        return jaxpr.jaxpr, list(jaxpr.consts), True
    if isinstance(jaxpr, jex_core.Jaxpr):
        return jaxpr, None, False
    raise TypeError(f'{what}: Expected Jaxpr or ClosedJaxpr, got {type(jaxpr).__name__}. Make '
                    f'one with jax.make_jaxpr(f)(*args) or brainstate.transform.make_jaxpr.')


def _identity(atom, outvar, source_info):
    """``outvar = convert_element_type(atom)`` to ``outvar``'s own type: defines an output."""
    aval = outvar.aval
    params = {'new_dtype': aval.dtype, 'weak_type': bool(getattr(aval, 'weak_type', False)),
              'sharding': None}
    return jex_core.new_jaxpr_eqn([atom], [outvar], lax.convert_element_type_p, params,
                                  frozenset(), source_info)


def _run_passes(jaxpr, passes: Sequence, what: str, records: list | None = None):
    """``jaxpr`` (a Jaxpr or ClosedJaxpr) optimized by ``passes``, with its interface kept
    (what each pass did is appended to ``records``)."""
    jaxpr, consts, closed = _split(jaxpr, what)
    original = jaxpr
    # Constants stand as leading inputs: an open jaxpr's constvars have no values here, and a
    # closed one's stay arguments (never folded into the program).
    flat = jex_core.Jaxpr([], list(jaxpr.constvars) + list(jaxpr.invars), list(jaxpr.outvars),
                          list(jaxpr.eqns), jaxpr.effects,
                          jex_core.DebugInfo('brainstate', 'jaxpr', None, None))
    graph = graph_from_jaxpr(jex_core.ClosedJaxpr(flat, []), name='jaxpr')
    manager = PassManager(list(passes) + [get_pass('hoist-states')], capture_reproducer=False)
    manager.run(graph)
    if records is not None:
        records.extend(manager.records[:len(passes)])
    lowered_graph = lower_to_jaxpr(graph)
    if lowered_graph.read_states or lowered_graph.written_states:
        states = lowered_graph.read_states + lowered_graph.written_states
        raise IRValidationError(
            f'{what}: the jaxpr reads or writes brainstate State {states[0].label()} through '
            f'state primitives; optimize the jaxpr of brainstate.transform.make_jaxpr(f) '
            f'instead, whose states are plain inputs and outputs.')
    lowered = lowered_graph.closed_jaxpr
    new = lowered.jaxpr
    rename = dict(zip(new.invars, flat.invars))
    extra_constvars, extra_consts = [], []
    for var, value in zip(new.constvars, lowered.consts):  # constants of inlined jit calls
        if closed:
            rename[var] = jex_core.Var(var.aval)
            extra_constvars.append(rename[var])
            extra_consts.append(value)
        else:
            rename[var] = jex_core.Literal(value, var.aval)
    defined = IdentitySet(flat.invars)
    produced = IdentitySet(v for eqn in new.eqns for v in eqn.outvars)
    tail = []
    source_info = new.eqns[-1].source_info if new.eqns else None
    if source_info is None:
        source_info = jax.extend.source_info_util.new_source_info()
    for atom, outvar in zip(new.outvars, flat.outvars):
        if isinstance(outvar, jex_core.Literal):
            continue  # a literal output stays one
        mapped = rename.get(atom, atom) if isinstance(atom, jex_core.Var) else atom
        if mapped is outvar:
            continue
        if (isinstance(atom, jex_core.Var) and atom in produced and atom not in rename and
                outvar not in defined and atom.aval == outvar.aval):
            rename[atom] = outvar  # the equation producing it defines the output itself
        elif outvar not in defined:
            tail.append((mapped, outvar))
        defined.add(outvar)

    def atom_of(atom):
        return rename.get(atom, atom) if isinstance(atom, jex_core.Var) else atom

    eqns = [eqn.replace(invars=[atom_of(a) for a in eqn.invars],
                        outvars=[atom_of(v) for v in eqn.outvars]) for eqn in new.eqns]
    eqns += [_identity(atom_of(a) if isinstance(a, jex_core.Var) else a, outvar, source_info)
             for a, outvar in tail]
    result = original.replace(eqns=eqns, constvars=list(original.constvars) + extra_constvars)
    if closed:
        return jex_core.ClosedJaxpr(result, consts + extra_consts)
    if extra_constvars:  # (only for closed inputs)
        raise AssertionError('unreachable')
    return result


def constant_fold(jaxpr):
    """Compute operations on constant operands now (the ``fold-constants`` pass).

    Args:
      jaxpr: a ``Jaxpr`` or ``ClosedJaxpr``.

    Returns:
      The same kind of object, with the same ``invars`` and ``outvars``; ``y = x + (2 + 3)``
      computes ``x + 5``. An output that becomes a constant is defined by an equation
      assigning the literal to it.
    """
    return _run_passes(jaxpr, [_PASSES['constant_fold']()], 'constant_fold')


def dead_code_elimination(jaxpr):
    """Remove the equations whose results nothing uses (the ``dce`` pass; equations with
    effects stay). Inputs and outputs are kept, used or not."""
    return _run_passes(jaxpr, [_PASSES['dce']()], 'dead_code_elimination')


def common_subexpression_elimination(jaxpr):
    """Compute each distinct pure operation on the same operands once (the ``cse`` pass):
    ``a = x + y; c = x + y`` leaves one addition. Parameters are compared by value (arrays by
    contents, nested jaxprs by identity). The interface is kept."""
    return _run_passes(jaxpr, [_PASSES['cse']()], 'common_subexpression_elimination')


def copy_propagation(jaxpr):
    """Let the uses of a copy (``copy``, a ``convert_element_type`` to the same type, a
    ``device_put`` to no device) take the copied value (the ``copy-propagation`` pass). An
    output that was a copy keeps an equation that defines it."""
    return _run_passes(jaxpr, [_PASSES['copy_propagation']()], 'copy_propagation')


def algebraic_simplification(jaxpr):
    """Apply ``x + 0 = x``, ``x - 0 = x``, ``x * 1 = x``, ``x / 1 = x`` and, for integers,
    ``x * 0 = 0`` and ``x - x = 0`` (the ``algebraic-simplify`` pass, here without keeping the
    sign of zero results: ``-0.0 + 0.0`` gives ``-0.0``). Float ``0 * x`` and ``0 / x`` are left
    alone, being NaN for some ``x``. The interface is kept."""
    return _run_passes(jaxpr, [_PASSES['algebraic_simplification']()],
                       'algebraic_simplification')


def optimize_jaxpr(jaxpr, max_iterations: int = 3, optimizations: Sequence[str] | None = None,
                   verbose: bool = False):
    """Run several optimizations over a jaxpr, repeatedly, until it stops shrinking.

    Args:
      jaxpr: a ``Jaxpr`` or ``ClosedJaxpr`` (the result is of the same kind).
      max_iterations: the most rounds of the whole sequence (a positive integer).
      optimizations: names, in order, among ``'constant_fold'``,
        ``'algebraic_simplification'``, ``'copy_propagation'``, ``'cse'`` and ``'dce'``;
        ``None`` or ``'all'`` for all of them in that order; one name as a string.
      verbose: print the equation count after each optimization that changed it.

    Returns:
      The optimized jaxpr, with the same ``invars`` and ``outvars``.

    Raises:
      TypeError: ``jaxpr`` is neither a Jaxpr nor a ClosedJaxpr.
      ValueError: an unknown optimization name.
      IRValidationError: ``max_iterations`` is not a positive integer.
    """
    if optimizations is None or optimizations == 'all':
        names = list(_DEFAULT_ORDER)
    elif isinstance(optimizations, str):
        names = [optimizations]
    else:
        names = list(optimizations)
    if not isinstance(max_iterations, int) or isinstance(max_iterations, bool) or \
            max_iterations < 1:
        raise IRValidationError(f'optimize_jaxpr: max_iterations must be a positive integer, '
                                f'got {max_iterations!r}.')
    _split(jaxpr, 'optimize_jaxpr')
    unknown = [name for name in names if name not in _PASSES]
    if unknown:
        raise ValueError(f'optimize_jaxpr: Invalid optimization(s): {", ".join(unknown)}. '
                         f'Available optimizations: {", ".join(sorted(_PASSES))}.')

    def count(j):
        return len((j.jaxpr if isinstance(j, jex_core.ClosedJaxpr) else j).eqns)

    initial = count(jaxpr)
    if verbose:
        print(f'Starting optimization with {initial} equations')
        print(f'Optimization sequence: {" -> ".join(names)}')
        print(f'Max iterations: {max_iterations}')
    for iteration in range(max_iterations):
        before_round = count(jaxpr)
        records = []
        # One round: the whole sequence over one graph.
        jaxpr = _run_passes(jaxpr, [_PASSES[name]() for name in names], 'optimize_jaxpr',
                            records)
        if verbose:
            print(f'Iteration {iteration + 1}: {before_round} -> {count(jaxpr)} equations')
            for name, record in zip(names, records):
                if record.changed:
                    print(f'  {name}: {record.stats or "changed"}')
        if count(jaxpr) == before_round:
            if verbose:
                print(f'Converged after {iteration + 1} iteration(s)')
            break
    else:
        if verbose:
            print(f'Reached max iterations ({max_iterations})')
    if verbose:
        final = count(jaxpr)
        share = 100 * (initial - final) / initial if initial else 0.0
        print(f'Optimization complete: {initial} -> {final} equations ({share:.1f}% fewer)')
    return jaxpr
