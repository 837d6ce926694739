"""State I/O: the one place where transforms read States, choose what to donate, write results
back, and leave every State as it was when anything fails.

Two situations, one set of rules:

* **A compiled call outside any trace** (``jit``, and every eager transform, which runs through
  ``jit``: see :mod:`._eager`). The states' buffers are read into lists, the compiled program is
  dispatched, and the written buffers are stored back, all under :data:`STATE_LOCK`, so threads
  calling compiled steps that share states see a serial order and never race on a donated
  buffer. Nothing is stored until the program has returned, so an exception at trace time or at
  dispatch leaves every State untouched.
* **Inside a trace** (a ``grad`` or ``vmap`` nested in ``jit`` or in a loop body): reading is
  ``state.value`` (a traced read) and writing back is ``state.value = ...`` (a traced write), so
  the enclosing transform threads them; :func:`write_back` does that, once, after the whole
  computation traced successfully.

Donation. A written state's old buffer is donated to XLA (updated in place) only when nobody else
can hold it, by one rule: **a state whose value was read or set outside any trace since the last
compiled write is not donated as it is** (``State._exposed``; the compiled write-back clears
it): :func:`copy_exposed` first copies such buffers (one small jitted copy) and the copies are
donated, so the held arrays stay alive and unchanged. That covers everything a user can hold — the array itself, a sub-tree of a nested
value, a ``device_put`` or ``addressable_data`` view of it, an argument that is also a state's
value — without guessing from reference counts. Programs that can fail *after* dispatch (host
callbacks, ``jax_debug_nans`` / ``jax_debug_infs``) never donate, so a failure at run time leaves
the old buffers alive and every State as it was.
"""

from __future__ import annotations

import jax

from .._compat import debug_checks_enabled
from .._errors import ArgumentValueError, StateArgumentError, TracerLeakError
from .. import _state

__all__ = ['STATE_LOCK', 'program_may_donate', 'call_may_donate', 'copy_exposed', 'write_back',
           'check_no_tracers', 'check_donated_arguments', 'foreign_trace_message',
           'store_new_state', 'check_concrete_states']

#: Held while a compiled call reads its states, dispatches and stores the results.
STATE_LOCK = _state.STATE_LOCK

_Tracer = jax.core.Tracer


def _calls_host(jaxpr) -> bool:
    """Whether a jaxpr (or one nested in it) calls back into Python: ``pure_callback`` has no
    effect, yet it can raise after dispatch like any callback."""
    for eqn in jaxpr.eqns:
        if 'callback' in eqn.primitive.name:
            return True
        for param in eqn.params.values():
            for sub in (param if isinstance(param, (tuple, list)) else (param,)):
                inner = getattr(sub, 'jaxpr', sub)
                if hasattr(inner, 'eqns') and _calls_host(inner):
                    return True
    return False


def program_may_donate(closed_jaxpr) -> bool:
    """Whether a program's state buffers may be donated: it cannot fail after dispatch (no
    effects, no host callbacks, pure ones included). ``jax_debug_nans`` is checked per call
    (:func:`call_may_donate`).
    """
    return not closed_jaxpr.effects and not _calls_host(closed_jaxpr.jaxpr)


def call_may_donate() -> bool:
    """Per call: JAX's NaN/Inf checks re-run a failing program, which needs its inputs alive."""
    return not debug_checks_enabled()


def foreign_trace_message(where: str, states=()) -> str:
    names = ', '.join(s.label() for s in states)
    writes = f' writes State {names} but' if names else ''
    return (f'{where}{writes} runs inside a raw JAX transform (jax.jit, jax.vmap, ...): its '
            f'state updates would be lost and the states would hold tracers. Use '
            f'brainstate.transform.jit (or another brainstate transform) for the outer '
            f'function too.')


def check_no_tracers(leaves, where: str, states=()):
    """Outside any brainstate trace, a written leaf that is a tracer means an enclosing raw JAX
    transform: refuse before anything is stored."""
    if _state.TRACE_STACK:
        return
    for leaf in leaves:
        if isinstance(leaf, _Tracer):
            raise TracerLeakError(foreign_trace_message(where, states))


def write_back_leaves(states, treedefs, leaves, where: str):
    """:func:`write_back` of flat ``leaves``: regrouped into one value per state by
    ``treedefs`` (one per state, in order)."""
    values, offset = [], 0
    for treedef in treedefs:
        count = treedef.num_leaves
        values.append(treedef.unflatten(leaves[offset:offset + count]))
        offset += count
    write_back(states, values, where)


def write_back(states, values, where: str, reshaped=()):
    """Write ``values`` (one per state) with ``state.value = ...`` in the enclosing context:
    traced writes inside a trace; eagerly, stored values. Called once, after the whole
    computation succeeded, so a failure before it changes no State. States in ``reshaped`` may
    take other shapes (vmap's ``out_states``)."""
    if not states:
        return
    check_no_tracers(jax.tree.leaves(values), where, states)
    for state, value in zip(states, values):
        if not state.has_value():
            # Created by the computation just traced (a grad's function, ...): a new state of
            # the enclosing trace too, or, eagerly, given its first value.
            store_new_state(state, value)
        elif state in reshaped and _state.TRACE_STACK:
            _state.TRACE_STACK[-1].write(state, value, reshape=True)
        else:
            state.value = value


def store_new_state(state, value):
    """Give a state created inside a finished trace its value: eagerly, the value; inside an
    enclosing trace the state is new to that trace too (a local variable there, whose final
    value that trace records), so it takes the value, its avals and no state operation."""
    stack = _state.TRACE_STACK
    if not stack:
        state.restore_value(value)
        return
    ctx = stack[-1]
    if id(state) not in ctx._new_ids:
        ctx.register_new_state(state)
    leaves, treedef = jax.tree.flatten(value)
    state._treedef = treedef
    state._value = value
    state._avals = tuple(_state._leaf_aval(leaf) for leaf in leaves)


def check_concrete_states(states, fun_name: str):
    """Raise a StateArgumentError naming the first of ``states`` whose value is abstract (the
    ShapeDtypeStructs ``eval_shape`` leaves in a module it creates): such a state can be
    traced, not run."""
    for state in states:
        # (A state born under a raw JAX transform stores no value: its tracer is not abstract.)
        if any(isinstance(leaf, jax.ShapeDtypeStruct)
               for leaf in jax.tree.leaves(state.__dict__.get('_value'))):
            raise StateArgumentError(
                f'{fun_name} reads State {state.label()}, whose value is abstract (shapes '
                f'only, as `eval_shape` builds modules). Give it a real value first: build the '
                f'module outside `eval_shape`, or set `state.value`.')


def check_donated_arguments(donated_leaves, states, fun_name: str):
    """A donated argument that is also a state's current value would be deleted under the state:
    explain instead of letting XLA fail."""
    held = {}
    for state in states:
        # (A state born under a raw JAX transform stores no value: its tracer is no argument.)
        for leaf in jax.tree.leaves(state.__dict__.get('_value')):
            held[id(leaf)] = state
    for where, leaf in donated_leaves:
        state = held.get(id(leaf))
        if state is not None:
            raise ArgumentValueError(
                f'{fun_name}: {where} is listed in donate_argnums, but it is the current value '
                f'of State {state.label()}, which the function also uses; donating it would '
                f'delete the state\'s value. Pass a copy (`jnp.copy(x)`) or do not donate '
                f'this argument.')


@jax.jit
def _copies(leaves):
    return [jax.numpy.copy(leaf) for leaf in leaves]


def copy_exposed(states, leaves: list, single_leaf: bool) -> list:
    """``leaves`` (the buffers of ``states``, in order) with those of exposed states replaced by
    private copies, all made in one dispatch, so they can be donated."""
    positions, offset = [], 0
    for state in states:
        count = 1 if single_leaf else state._treedef.num_leaves
        if state._exposed:
            positions.extend(range(offset, offset + count))
        offset += count
    copies = _copies([leaves[i] for i in positions])
    leaves = list(leaves)
    for i, copy in zip(positions, copies):
        leaves[i] = copy
    return leaves
