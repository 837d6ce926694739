"""Automatic differentiation with respect to States: grad, value_and_grad, jacobians, vjp, jvp.

Every transform here works the same way (see DESIGN.md, "transforms compose"):

1. trace the function for the call signature through the pipeline (trace -> hoist-states ->
   lower), giving a pure ClosedJaxpr with inputs ``(leaves of the states read, argument
   leaves)`` and outputs ``(result leaves, leaves of the states written)``;
2. wrap it into a pure Python function of ``(values of the grad states, differentiated
   arguments)`` that returns the differentiated output, with the full result and the written
   state values as auxiliary data, and apply the JAX transform (``jax.grad``, ``jax.vjp``...);
3. read the states' current values with ``state.value`` and write the written states back with
   ``state.value = ...``, once, in whatever context encloses the call: eagerly this reads and
   stores concrete arrays (and the pure function runs compiled); inside ``jit`` or another
   brainstate transform it records a read at entry and a write at exit of that trace.

States the function writes (running statistics, counters, random keys) are thus written back
once and never differentiated. Nothing is stored until the whole computation succeeded.

Two kinds of call skip steps 1-2 and run the function itself under the JAX transform, as raw
``jax.grad`` does (``_StatefulTransform._run_direct``, a :class:`~._direct.DirectContext`
swapping in the grad states' values and recording the states read and written): an eager
first call (:meth:`_StatefulTransform.run_directly`), and every call inside an enclosing
brainstate trace (``grad`` inside ``jit``): there the enclosing trace then records only the JAX
transform's primitives, and the written states are written into it in step 3. Where a direct
run refuses or raises, the call takes the path above.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import _state
from .._compat import current_jax_trace
from ..ir._eval import eval_jaxpr_shared
from .._errors import (ArgumentTypeError, ArgumentValueError, GradientError,
                       StateArgumentError, TracerLeakError)
from .._state import LongTermState, State
from ._arguments import ArgumentSpec, CallSignature
from ._direct import DirectContext, NotDirect, can_run_directly, check_result
from ._eager import run_eagerly
from ._program import StatefulProgram, trace_program
from ._state_io import write_back, write_back_leaves
from ._transformed import TransformedFunction

__all__ = [
    'grad', 'value_and_grad', 'vector_grad', 'fwd_grad', 'jacrev', 'jacobian', 'jacfwd',
    'hessian', 'vjp', 'jvp', 'GradientTransform',
]

_Tracer = jax.core.Tracer

#: Calls of the grad family inside an enclosing brainstate trace: ``direct`` ran the function
#: directly under the JAX transform, ``fallbacks`` went through the IR after that refused.
DIRECT_IN_TRACE = {'direct': 0, 'fallbacks': 0}

# Signatures of direct calls kept for last_program / stateful_target, per transform.
_DIRECT_CALLS_KEPT = 16


class GradientTypeError(GradientError, TypeError):
    """A gradient error the published library raises as TypeError (a non-scalar or tuple
    output, a has_aux function not returning a pair, integer inputs of fwd_grad)."""


class _ArgnumsTypeError(ArgumentTypeError, ValueError):
    """argnums of the wrong type (the published library raises ValueError)."""


# -- grad_states: what to differentiate, and the structure the gradients come back in ----------

class _GradStates:
    """The States of ``grad_states`` in order, and how to rebuild its structure around values."""

    def __init__(self, grad_states, transform_name: str):
        self.given = grad_states is not None
        self.obj = grad_states
        self.states: list[State] = []
        self._build = self._flatten(grad_states, 'grad_states', transform_name) \
            if self.given else None
        seen: dict[int, str] = {}
        for state in self.states:
            if id(state) in seen:
                raise GradientError(
                    f'{transform_name}: State {state.label()} appears twice in grad_states. '
                    f'List each state once (its gradient would otherwise be split between the '
                    f'two entries).')
            seen[id(state)] = state.label()

    def _flatten(self, obj, where: str, name: str) -> Callable:
        """Collect the States of ``obj`` and return ``build(iterator_of_values) -> structure``."""
        if isinstance(obj, State):
            self.states.append(obj)
            return lambda values: next(values)
        if isinstance(obj, Mapping):
            keys = list(obj.keys())
            builders = [self._flatten(obj[k], f'{where}[{k!r}]', name) for k in keys]
            mapping_type = type(obj) if isinstance(obj, dict) else dict

            def build_mapping(values):
                out = mapping_type()
                for key, build in zip(keys, builders):
                    dict.__setitem__(out, key, build(values))
                return out
            return build_mapping
        if isinstance(obj, (list, tuple)):
            builders = [self._flatten(item, f'{where}[{i}]', name) for i, item in enumerate(obj)]
            if isinstance(obj, tuple) and hasattr(obj, '_fields'):  # a namedtuple
                return lambda values: type(obj)(*[build(values) for build in builders])
            return lambda values: type(obj)([build(values) for build in builders])
        raise ArgumentTypeError(
            f'{name}: grad_states must be a State, a list/tuple of States or a mapping of States '
            f'(such as `model.states(brainstate.ParamState)`), but {where} is a '
            f'{type(obj).__name__}.')

    def build(self, values):
        """``grad_states``'s structure with each State replaced by the matching value."""
        return self._build(iter(values))

    def split(self, values) -> list:
        """The inverse of :meth:`build`: one value per state, in the order of ``states``."""
        out: list = []
        if self.given:
            _split(self.obj, values, out)
        return out


def _split(obj, values, out: list):
    if isinstance(obj, State):
        out.append(values)
    elif isinstance(obj, Mapping):
        for key in obj:
            _split(obj[key], values[key], out)
    else:
        for item, value in zip(obj, values):
            _split(item, value, out)


def _normalize_argnums(argnums, name: str):
    """``(argnums as given to JAX, tuple of positions)``; rejects negative positions."""
    if argnums is None:
        return None, ()
    try:
        positions = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    except TypeError:
        positions = (argnums,)  # not iterable: rejected just below, naming it
    for n in positions:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
            raise _ArgnumsTypeError(f'{name}: argnums must be an int or a sequence of ints, '
                                    f'got {argnums!r}.')
        if n < 0:
            raise GradientError(
                f'{name}: argnums={argnums!r} has a negative position; give positions counted '
                f'from 0 (the first positional argument).')
    if not positions:
        raise GradientError(f'{name}: argnums is empty; pass None to differentiate only with '
                            f'respect to grad_states.')
    if len(set(positions)) != len(positions):
        raise GradientError(f'{name}: argnums={argnums!r} repeats a position.')
    return (int(argnums) if isinstance(argnums, (int, np.integer)) else
            tuple(int(n) for n in positions)), tuple(int(n) for n in positions)


# -- one traced program per call signature ------------------------------------------------------

class _Program:
    """The pure function of one call signature, and where its inputs come from."""

    def __init__(self, program: StatefulProgram, grad_states: list, name: str,
                 traced_reads: set, check_states: bool = True):
        lowered = program.lowered
        read = list(lowered.read_states)
        slot = {state: i for i, state in enumerate(read)}
        for state in grad_states:
            # A state read while tracing but whose value no result uses was removed by the
            # passes: its gradient is zero. One never read at all is a mistake.
            if state not in slot and state not in traced_reads and check_states:
                written = state in set(lowered.written_states)
                raise GradientError(
                    f'{name}: grad state {state.label()} is never read by '
                    f'{program.name}{" (it only writes it)" if written else ""}, so its '
                    f'gradient is undefined. Remove it from grad_states, or check that the '
                    f'function uses `{state.label()}.value`.')
            for aval in state.avals:
                if not jnp.issubdtype(aval.dtype, jnp.inexact):
                    raise GradientError(
                        f'{name}: grad state {state.label()} holds {aval.str_short()}, an '
                        f'integer or boolean value, which has no gradient. Keep counters and '
                        f'masks out of grad_states (e.g. select `brainstate.ParamState` only), '
                        f'or store the value as a float.')
        grad_set = set(grad_states)
        self.program = program
        self.other_states = [state for state in read if state not in grad_set]
        other_slot = {state: i for i, state in enumerate(self.other_states)}
        grad_slot = {state: i for i, state in enumerate(grad_states)}
        # For each read state in order: (is a grad state, index in its group).
        self.read_plan = [(True, grad_slot[s]) if s in grad_set else (False, other_slot[s])
                          for s in read]
        self.read_treedefs = [s.treedef for s in read]
        self.written_states = list(lowered.written_states)
        self.written_treedefs = [s.treedef for s in self.written_states]
        self.jaxpr = lowered.closed_jaxpr.jaxpr
        self.consts = list(lowered.closed_jaxpr.consts)
        self.num_outputs = lowered.num_outputs
        self.out_tree = program.out_tree
        self.state_avals = tuple((s, s.treedef, s.avals) for s in program.states)
        self.epoch = _state.STRUCTURE_EPOCH[0]
        self.state_set_epoch = _state.STATE_SET_EPOCH[0]
        # A program that closed over tracers of an enclosing trace is only valid inside it.
        self.cacheable = not any(isinstance(c, _Tracer) for c in self.consts)
        self.compiled: Callable | None = None

    def still_valid(self) -> bool:
        if self.state_set_epoch != _state.STATE_SET_EPOCH[0]:
            return False  # a Module's State attribute was replaced: it may be one of ours
        for state, treedef, avals in self.state_avals:
            if state._treedef != treedef or state._avals != avals:
                return False
        self.epoch = _state.STRUCTURE_EPOCH[0]
        return True

    def run(self, consts, grad_leaves: list, other_values: list, arg_leaves: list):
        """Evaluate the pure function: returns ``(result, written state leaves)``."""
        state_leaves = []
        for (is_grad, index), treedef in zip(self.read_plan, self.read_treedefs):
            value = grad_leaves[index] if is_grad else other_values[index]
            state_leaves.extend(treedef.flatten_up_to(value))
        # Shared inlined jits: JAX linearizes repeated operations once (brainstate/ir/_eval.py).
        outs = eval_jaxpr_shared(self.jaxpr, consts, *state_leaves, *arg_leaves)
        n = self.num_outputs
        return self.out_tree.unflatten(outs[:n]), list(outs[n:])


class _StatefulTransform(TransformedFunction):
    """The machinery shared by the transforms: argument handling, caching, reading and writing
    states. Subclasses say what to do with the pure function (``_apply``)."""

    kind = 'transform'

    def __init__(self, fun: Callable, grad_states=None, argnums=None, has_aux: bool = False,
                 return_value: bool = False, passes=None):
        if not callable(fun):
            raise ArgumentTypeError(f'{self.kind}: expected a function, got {type(fun).__name__}.')
        self.fun = fun
        self.fun_name = getattr(fun, '__name__', type(fun).__name__)
        self.grad = _GradStates(grad_states, self.kind)
        if argnums is None and not self.grad.given:
            argnums = 0  # like jax.grad: the first argument
        self.argnums, self.arg_positions = _normalize_argnums(argnums, self.kind)
        self.has_aux = bool(has_aux)
        self.return_value = bool(return_value)
        self.passes = passes
        self._spec = ArgumentSpec(fun)
        self._cache: dict[Any, list[_Program]] = {}
        self._last_program = None
        functools.update_wrapper(self, fun, updated=())

    # -- programs -------------------------------------------------------------------------

    @property
    def last_program(self):
        """The :class:`StatefulProgram` of the function as last traced (its graph, lowered
        jaxpr, timings; ``pass_manager.records`` say which passes ran). None before the first
        trace: an eager first call runs the function directly, without one (see
        :meth:`run_directly`). A call inside an enclosing trace also runs it directly; its
        program is traced when asked for here."""
        self._trace_direct_calls()
        return self._last_program

    def _program(self, sig: CallSignature, args=None, kwargs=None) -> _Program:
        entries = self._cache.get(sig.key)
        if entries:
            entry = entries[-1]
            if ((entry.epoch == _state.STRUCTURE_EPOCH[0] or entry.still_valid()) and
                    entry.program.environ_reads.hold()):
                return entry
            for entry in entries[:-1]:
                if entry.still_valid() and entry.program.environ_reads.hold():
                    return entry
        program = trace_program(self.fun, self._spec, sig, passes=self.passes)
        self._last_program = program
        entry = _Program(program, self.grad.states, self.kind, frozenset(program.traced_reads),
                         getattr(self, 'check_states', True))
        if entry.cacheable:
            self._cache.setdefault(sig.key, []).append(entry)
        if args is not None:
            # (After caching it: a direct call remembered for this signature, which
            # stateful_target traces first, finds it instead of tracing the function again.)
            self.stateful_target.record(args, kwargs, program)
        return entry

    def _remember_direct_call(self, args: tuple, kwargs: dict):
        """Keep the avals of a call run directly inside a trace, so :attr:`last_program` and
        :attr:`stateful_target` can trace its program when asked (:meth:`_trace_direct_calls`).
        One entry per signature, the latest last."""
        leaves, tree = jax.tree.flatten((args, kwargs))
        abstract = tuple(
            jax.ShapeDtypeStruct(jnp.shape(leaf), jnp.result_type(leaf),
                                 weak_type=getattr(jax.typeof(leaf), 'weak_type', False))
            if isinstance(leaf, (_Tracer, jax.Array, np.ndarray)) else leaf for leaf in leaves)
        calls = self.__dict__.setdefault('_direct_calls', {})
        key = (tree, abstract)
        try:
            calls.pop(key, None)
        except TypeError:  # an unhashable static leaf: nothing to trace it from later
            return
        calls[key] = None
        while len(calls) > _DIRECT_CALLS_KEPT:
            calls.pop(next(iter(calls)))

    def _trace_direct_calls(self):
        """Trace the programs of the calls run directly inside a trace since the last ask
        (their states' current values give the avals). A call whose program cannot be traced
        now (it read a state only its enclosing trace had) is skipped."""
        calls = self.__dict__.pop('_direct_calls', None)
        for tree, abstract in calls or ():
            args, kwargs = jax.tree.unflatten(tree, abstract)
            try:
                self._program(self._spec.signature(args, kwargs, allow_tracers=True), args,
                              kwargs)
            except Exception:
                pass

    def _check_args(self, args: tuple):
        for n in self.arg_positions:
            if n >= len(args):
                raise GradientError(
                    f'{self.kind} of {self.fun_name}: argnums={self.argnums!r} asks for '
                    f'positional argument {n}, but the call has {len(args)} positional '
                    f'argument(s). Differentiated arguments must be passed by position.')

    @property
    def stateful_target(self):
        """A :class:`~brainstate.transform.StatefulFunction` view of the programs traced for
        the function (the published attribute): every signature differentiated so far is in
        its cache (``get_arg_cache_key``, ``get_states_by_cache``...)."""
        self._trace_direct_calls()
        stateful = self.__dict__.get('_stateful_target')
        if stateful is None:
            from ._stateful_function import StatefulFunction
            stateful = self._stateful_target = StatefulFunction(
                self.fun, name='gradient', return_only_write=True, passes=self.passes)
        return stateful

    def clear_cache(self):
        """Forget every traced program."""
        self.__dict__.pop('_direct_calls', None)
        self._cache.clear()
        if self.__dict__.get('_stateful_target') is not None:
            self._stateful_target.clear_cache()

    def adopt_programs(self, earlier):
        """Take the programs an equal transform traced (the eager runner's rule: the same
        function key traces to the same program), so the function is not traced again."""
        if type(earlier) is type(self):
            for key, entries in earlier._cache.items():
                self._cache.setdefault(key, list(entries))

    # -- the pure function, as the JAX transforms see it -----------------------------------

    def _pure(self, program: _Program, consts, other_values, args, kwargs):
        """``f(grad_values, diff_args) -> (output, (full result, written leaves))``."""
        positions = self.arg_positions
        single = isinstance(self.argnums, int)

        def f(grad_values, diff_args):
            call_args = list(args)
            for i, n in enumerate(positions):
                call_args[n] = diff_args if single else diff_args[i]
            arg_leaves = jax.tree.leaves((tuple(call_args), kwargs))
            grad_leaves = self.grad.split(grad_values)
            result, written = program.run(consts, grad_leaves, other_values, arg_leaves)
            if self.has_aux:
                if not (isinstance(result, (tuple, list)) and len(result) == 2):
                    raise GradientTypeError(
                        f'{self.kind} of {self.fun_name} with has_aux=True: the function must '
                        f'return a pair (output, aux), but it returned '
                        f'{type(result).__name__}.')
                out = result[0]
            else:
                out = result
            return out, (result, written)
        return f

    def _wrt(self):
        """JAX argnums of ``f(grad_values, diff_args)`` to differentiate."""
        if self.grad.given and self.arg_positions:
            return (0, 1)
        return 0 if self.grad.given else 1

    def _apply(self, f, grad_values, diff_args, extra):
        """Differentiate ``f``; return ``(derivatives, output, (result, written), extra_out)``."""
        raise NotImplementedError

    def _compute(self, consts, grad_values, diff_args, other_values, args, kwargs, extra,
                 program: _Program):
        f = self._pure(program, consts, other_values, args, kwargs)
        derivs, out, (result, written), extra_out = self._apply(f, grad_values, diff_args, extra)
        return derivs, out, result, written, extra_out

    # -- a call ---------------------------------------------------------------------------

    def _extra_states(self) -> list[State]:
        """States the transform itself reads and writes (e.g. fwd_grad's random key)."""
        return []

    def _prepare(self, args: tuple, kwargs: dict):
        """Trace (or find) the program and read the states: the inputs of the pure function."""
        self._check_args(args)
        sig = self._spec.signature(args, kwargs, allow_tracers=True)
        program = self._program(sig, args, kwargs)
        # Read every state the function reads in the enclosing context: a traced read inside
        # jit or another transform, the stored value eagerly.
        grad_values = self.grad.build([s.value for s in self.grad.states]) \
            if self.grad.given else ()
        other_values = [s.value for s in program.other_states]
        if self.arg_positions:
            diff_args = args[self.argnums] if isinstance(self.argnums, int) else \
                tuple(args[n] for n in self.arg_positions)
        else:
            diff_args = ()
        return program, grad_values, diff_args, other_values

    def _call(self, args: tuple, kwargs: dict, call_extra=None):
        """``(derivatives, output, result)`` of a call; the states written are written back.

        Inside an enclosing brainstate trace, the function runs directly under the JAX
        transform (:meth:`_run_direct`): the enclosing trace then records the JAX
        transform's primitives and nothing else (no trace of the function into the IR, no
        passes, no lowering, no re-evaluation of the lowered program, as raw ``jax.grad``
        inside ``jax.jit``). Where that refuses (:class:`~._direct.NotDirect`: a form it does
        not handle) or raises, nothing was written: the call goes through the IR below, which
        also gives errors their messages. A signature traced before (an eager call's
        program) is evaluated from its program, without running the function again."""
        stack = _state.TRACE_STACK.stack
        if stack and can_run_directly(self.passes) and not (
                self._cache and self._cache.get(
                    self._spec.signature(args, kwargs, allow_tracers=True).key)):
            try:
                found, (states, values) = self._run_direct(args, kwargs, call_extra,
                                                           parent=stack[-1])
            except Exception:
                DIRECT_IN_TRACE['fallbacks'] += 1
            else:
                DIRECT_IN_TRACE['direct'] += 1
                write_back(states, values, f'{self.kind} of {self.fun_name}')
                self._remember_direct_call(args, kwargs)
                return found
        program, grad_values, diff_args, other_values = self._prepare(args, kwargs)
        extra_states = self._extra_states()
        extra = ([s.value for s in extra_states], call_extra)
        derivs, out, result, written, extra_out = self._compute(
            program.consts, grad_values, diff_args, other_values, args, kwargs, extra, program)
        write_back_leaves(program.written_states + extra_states,
                    program.written_treedefs + [s.treedef for s in extra_states],
                    list(written) + [leaf for value in extra_out
                                     for leaf in jax.tree.leaves(value)],
                    f'{self.kind} of {self.fun_name}')
        return derivs, out, result

    def __call__(self, *args, **kwargs):
        if not _state.TRACE_STACK:
            # Eagerly: one compiled program through the one eager runner and state I/O path.
            return run_eagerly(self._traced_call, args, kwargs, name=self.fun_name,
                               inside_raw_jax=True, key=self, passes=self.passes,
                               direct_first=not getattr(self, 'debug_nan', False))
        return self._traced_call(*args, **kwargs)

    def run_directly(self, args: tuple, kwargs: dict):
        """A key's first eager call, run as raw JAX's eager transform runs it (the eager
        runner's rule, :mod:`._eager`): the function itself under the JAX transform, the grad
        states' values swapped in by a :class:`~._direct.DirectContext`; nothing is traced into
        the IR. States written (and created) come out of the JAX transform with the result and
        are written back once, after success. Raises :class:`~._direct.NotDirect` (or the
        error) without changing any State when the call must go through the IR.

        One direct run per transform object: a transform built once and called again traces
        (and keeps) its program, as before, even when its function key changes between calls
        (a closure that the function itself mutates)."""
        if self._cache or self.__dict__.get('_ran_directly') or getattr(self, 'debug_nan',
                                                                          False):
            raise NotDirect()  # (debug_nan: the NaN check runs in the compiled program)
        self._ran_directly = True
        found, (states, values) = self._run_direct(args, kwargs)
        write_back(states, values, f'{self.kind} of {self.fun_name}')
        return self._format(*found)

    def _run_direct(self, args: tuple, kwargs: dict, call_extra=None, parent=None):
        """The user's function run under the JAX transform with the grad states' values (and
        differentiated arguments) swapped in by a :class:`~._direct.DirectContext`.

        Returns ``((derivatives, output, result), (states, values))``: what :meth:`_call`
        returns, and the states the function wrote (or created) with their new values, which
        left the JAX transform with the result; the caller writes them back once
        (:func:`._state_io.write_back`: eagerly stored, inside a trace that trace's writes).
        ``parent``: the enclosing brainstate context (None: eagerly); its reads are bound in
        the JAX trace current now. Raises :class:`~._direct.NotDirect` (or the error)
        without changing any State when the call must go through the IR."""
        self._check_args(args)
        states = self.grad.states
        grad_values = self.grad.build([s.value for s in states]) if self.grad.given else ()
        if self.arg_positions:
            diff_args = args[self.argnums] if isinstance(self.argnums, int) else \
                tuple(args[n] for n in self.arg_positions)
        else:
            diff_args = ()
        extra_states = self._extra_states()
        extra = ([s.value for s in extra_states], call_extra)
        positions, single = self.arg_positions, isinstance(self.argnums, int)
        outer_trace = current_jax_trace() if parent is not None else None
        runs = []

        def f(grad_values, diff_args):
            call_args = list(args)
            for i, n in enumerate(positions):
                call_args[n] = diff_args if single else diff_args[i]
            ctx = DirectContext(dict(zip(states, self.grad.split(grad_values))),
                                parent=parent, outer_trace=outer_trace)
            try:
                with ctx:
                    result = self.fun(*call_args, **kwargs)
                check_result(result, self.fun_name)
                written_states, written = ctx.outputs()
            finally:
                # Its values are tracers of the JAX transform's trace, which ends when f
                # returns (JAX checks then, under jax.checking_leaks, that none outlives it).
                ctx.scrub_new_states()
                ctx.release()
            runs.append((ctx.read_states, written_states))
            if self.has_aux:
                if not (isinstance(result, (tuple, list)) and len(result) == 2):
                    raise NotDirect()  # (the traced call explains)
                return result[0], (result, written)
            return result, (result, written)

        derivs, out, (result, written), extra_out = self._apply(f, grad_values, diff_args, extra)
        read_states, written_states = runs[-1]
        if getattr(self, 'check_states', True) and any(s not in read_states for s in states):
            raise NotDirect()  # a grad state never read: the traced call names it
        return (derivs, out, result), (written_states + extra_states,
                                       list(written) + list(extra_out))

    def _traced_call(self, *args, **kwargs):
        derivs, out, result = self._call(args, kwargs)
        if getattr(self, 'debug_nan', False):
            from ._error_if import jit_error_if
            jit_error_if(_check_nan_jit_compatible(derivs),
                         f'{self.kind} of {self.fun_name}: NaN/Inf in the derivatives '
                         f'(debug_nan=True).')
        return self._format(derivs, out, result)

    def _select(self, state_derivs, arg_derivs):
        """The derivatives in the documented form: ``(state part, argument part)`` when both
        were asked for, else the one asked for."""
        if self.grad.given and self.arg_positions:
            return state_derivs, arg_derivs
        return state_derivs if self.grad.given else arg_derivs

    def _format(self, derivs, out, result):
        aux = result[1] if self.has_aux else None
        if self.return_value:
            return (derivs, out, aux) if self.has_aux else (derivs, out)
        return (derivs, aux) if self.has_aux else derivs


def _check_nan_jit_compatible(tree):
    """A boolean scalar (traceable): whether any float or complex leaf of ``tree`` holds a NaN
    or an Inf. Integer, boolean and non-array leaves are skipped."""
    flags = [jnp.any(~jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)
             if hasattr(leaf, 'dtype') and jnp.issubdtype(leaf.dtype, jnp.inexact)]
    if not flags:
        return jnp.asarray(False)
    return jnp.any(jnp.stack(flags))


def _check_scalar(out, kind: str, fun_name: str, has_aux: bool):
    if isinstance(out, (tuple, list, dict)) and not has_aux:
        raise GradientTypeError(
            f'{kind} of {fun_name}: the function returned a {type(out).__name__}, but {kind} '
            f'differentiates a scalar. If it returns (loss, aux), pass has_aux=True; for '
            f'several outputs use vector_grad or jacrev.')
    shape = jnp.shape(out)
    if shape != ():
        raise GradientError(
            f'{kind} of {fun_name}: the differentiated output has shape {shape}, but {kind} '
            f'needs a scalar (e.g. a mean loss). Reduce it (`.sum()`, `.mean()`), or use '
            f'vector_grad (vector-Jacobian product with ones) or jacrev for the full Jacobian.')
    if not jnp.issubdtype(jnp.result_type(out), jnp.inexact):
        raise GradientError(
            f'{kind} of {fun_name}: the differentiated output has dtype '
            f'{jnp.result_type(out)}; it must be a float (integer outputs have no gradient).')


def _unit_autograd():
    try:
        import brainunit
    except ImportError:  # pragma: no cover - brainunit is an optional dependency
        raise ArgumentValueError('unit_aware=True needs brainunit (pip install brainunit).')
    return brainunit.autograd


class GradientTransform(_StatefulTransform):
    """A stateful function differentiated by a JAX-style transform: what :func:`grad`,
    :func:`vector_grad`, :func:`jacrev`, :func:`jacfwd`, :func:`hessian` and
    :func:`fwd_grad` return. Call it like the original function.

    Built directly (the published form), ``transform`` is any function with ``jax.grad``'s
    interface (``transform(f, argnums=..., has_aux=True, **transform_params)``), applied to the
    pure form of ``target`` with respect to the values of ``grad_states`` and the arguments
    ``argnums``; the return forms are those of :func:`grad`.

    Args:
      target: the function.
      transform: ``jax.grad``, ``jax.jacrev``, ... (None: :func:`grad`'s own).
      grad_states, argnums, return_value, has_aux: as for :func:`grad`.
      transform_params: extra keyword arguments of ``transform``.
      check_states: a grad state the function never reads is an error (False: its
        derivative is zero).
      debug_nan: raise when a derivative holds NaN or Inf.

    Example::

        gt = brainstate.transform.GradientTransform(loss, jax.grad, grad_states=params)
        grads = gt(x)
    """

    kind = 'grad'

    def __init__(self, target: Callable = None, transform: Callable | None = None,
                 grad_states=None, argnums=None, return_value: bool = False,
                 has_aux: bool = False, transform_params: dict | None = None,
                 check_states: bool = True, debug_nan: bool = False, *, fun=None,
                 holomorphic: bool = False, allow_int: bool = False, unit_aware: bool = False,
                 passes=None):
        target = fun if target is None else target
        super().__init__(target, grad_states, argnums, has_aux, return_value, passes)
        self.transform = transform
        self.transform_params = dict(transform_params or {})
        self.holomorphic = holomorphic
        self.allow_int = allow_int
        self.unit_aware = bool(unit_aware)
        self.check_states = bool(check_states)
        self.debug_nan = bool(debug_nan)

    def __repr__(self):
        states = [s.label() for s in self.grad.states] if self.grad.given else None
        return (f'GradientTransform(target={self.fun_name}, kind={self.kind!r}, '
                f'grad_states={states}, argnums={self.argnums!r}, '
                f'return_value={self.return_value}, has_aux={self.has_aux}, '
                f'check_states={self.check_states}, debug_nan={self.debug_nan})')

    def _apply(self, f, grad_values, diff_args, extra):
        if self.transform is not None:
            def with_value(gv, da):
                out, aux = f(gv, da)
                return out, (out, aux)
            derivs, (out, aux) = self.transform(with_value, argnums=self._wrt(), has_aux=True,
                                                **self.transform_params)(grad_values, diff_args)
            return derivs, out, aux, extra[0]

        def scalar_f(gv, da):
            out, aux = f(gv, da)
            if not self.holomorphic and not self.unit_aware:
                _check_scalar(out, self.kind, self.fun_name, self.has_aux)
            return out, (out, aux)

        if self.unit_aware:
            derivs, (out, aux) = _unit_autograd().grad(
                scalar_f, argnums=self._wrt(), has_aux=True, holomorphic=self.holomorphic,
                allow_int=self.allow_int)(grad_values, diff_args)
        else:
            derivs, (out, aux) = jax.grad(scalar_f, argnums=self._wrt(), has_aux=True,
                                          holomorphic=self.holomorphic,
                                          allow_int=self.allow_int)(grad_values, diff_args)
        return derivs, out, aux, extra[0]


class _ValueAndGrad(GradientTransform):
    kind = 'value_and_grad'

    def _format(self, derivs, out, result):
        if self.has_aux:
            return (out, result[1]), derivs
        return out, derivs


class _VectorGrad(GradientTransform):
    kind = 'vector_grad'

    def _apply(self, f, grad_values, diff_args, extra):
        if self.unit_aware:
            def with_value(gv, da):
                out, aux = f(gv, da)
                return out, (out, aux)
            derivs, (out, aux) = _unit_autograd().vector_grad(
                with_value, argnums=self._wrt(), has_aux=True)(grad_values, diff_args)
            return derivs, out, aux, extra[0]
        out, pullback, aux = jax.vjp(f, grad_values, diff_args, has_aux=True)
        state_ct, arg_ct = pullback(jax.tree.map(jnp.ones_like, out))
        return self._select(state_ct, arg_ct), out, aux, extra[0]


class _Jacobian(GradientTransform):
    kind = 'jacrev'

    def __init__(self, fun, grad_states=None, argnums=None, has_aux=False, return_value=False,
                 holomorphic=False, allow_int=False, mode='rev', passes=None,
                 unit_aware=False, check_states=True, debug_nan=False):
        self.kind = {'rev': 'jacrev', 'fwd': 'jacfwd', 'hessian': 'hessian'}[mode]
        super().__init__(fun, grad_states=grad_states, argnums=argnums, has_aux=has_aux,
                         return_value=return_value, passes=passes, unit_aware=unit_aware,
                         check_states=check_states, debug_nan=debug_nan)
        self.options = dict(holomorphic=holomorphic)
        if mode == 'rev':
            self.options['allow_int'] = allow_int
        if unit_aware:
            autograd = _unit_autograd()
            self.jax_transform = {'rev': autograd.jacrev, 'fwd': autograd.jacfwd,
                                  'hessian': autograd.hessian}[mode]
        else:
            self.jax_transform = {'rev': jax.jacrev, 'fwd': jax.jacfwd,
                                  'hessian': jax.hessian}[mode]

    def _apply(self, f, grad_values, diff_args, extra):
        def with_value(gv, da):
            out, aux = f(gv, da)
            return out, (out, aux)

        derivs, (out, aux) = self.jax_transform(with_value, argnums=self._wrt(), has_aux=True,
                                                **self.options)(grad_values, diff_args)
        return derivs, out, aux, extra[0]


class _ForwardGrad(GradientTransform):
    kind = 'fwd_grad'

    def __init__(self, fun, grad_states=None, argnums=None, has_aux=False, return_value=False,
                 num_samples=1, key=None, passes=None, drct_der_clip=None, check_states=True,
                 debug_nan=False):
        super().__init__(fun, grad_states=grad_states, argnums=argnums, has_aux=has_aux,
                         return_value=return_value, passes=passes, check_states=check_states,
                         debug_nan=debug_nan)
        if int(num_samples) < 1:
            raise ArgumentValueError(
                f'fwd_grad: num_samples must be at least 1, got {num_samples}.')
        self.num_samples = int(num_samples)
        self.drct_der_clip = None if drct_der_clip is None else float(drct_der_clip)
        if key is None:
            self._key_state = None  # brainstate.random.DEFAULT, looked up at call time
        else:
            if isinstance(key, np.ndarray) and key.size == 1 and \
                    np.issubdtype(key.dtype, np.integer):
                key = int(key.reshape(()))
            if isinstance(key, (int, np.integer)):
                key = jax.random.key(int(key))
            elif not jnp.issubdtype(jnp.result_type(key), jax.dtypes.prng_key):
                key = jax.random.wrap_key_data(key)
            self._key_state = LongTermState(key, name=f'fwd_grad({self.fun_name}).key')

    def _extra_states(self):
        if self._key_state is not None:
            return [self._key_state]
        try:
            from ..random import DEFAULT
        except ImportError:  # pragma: no cover - brainstate.random not available
            self._key_state = LongTermState(jax.random.key(0),
                                            name=f'fwd_grad({self.fun_name}).key')
            return [self._key_state]
        return [DEFAULT]

    def _apply(self, f, grad_values, diff_args, extra):
        (key,), _ = extra
        new_key, sample_key = jax.random.split(key)
        wrt = self._wrt()
        primal = (grad_values, diff_args) if wrt == (0, 1) else \
            (grad_values if wrt == 0 else diff_args)

        def g(p):
            gv, da = p if wrt == (0, 1) else ((p, diff_args) if wrt == 0 else (grad_values, p))
            out, aux = f(gv, da)
            _check_scalar(out, self.kind, self.fun_name, self.has_aux)
            return out, aux

        leaves, treedef = jax.tree.flatten(primal)
        for leaf in leaves:
            if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
                raise GradientTypeError(
                    f'fwd_grad of {self.fun_name}: a differentiated input has dtype '
                    f'{jnp.result_type(leaf)}; forward gradients need inexact (float or '
                    f'complex) inputs. Cast it (e.g. `.astype(jnp.float32)`).')

        def tangent(k):
            keys = jax.random.split(k, max(len(leaves), 1))
            return treedef.unflatten([jax.random.normal(kk, jnp.shape(x), jnp.result_type(x))
                                      for kk, x in zip(keys, leaves)])

        def estimate(k):
            v = tangent(k)
            out, dout, aux = jax.jvp(g, (primal,), (v,), has_aux=True)
            if self.drct_der_clip is not None:
                dout = jnp.clip(dout, -self.drct_der_clip, self.drct_der_clip)
            return jax.tree.map(lambda t: dout * t, v), out, aux

        if self.num_samples == 1:
            derivs, out, aux = estimate(sample_key)
        else:
            keys = jax.random.split(sample_key, self.num_samples)
            derivs = jax.tree.map(lambda d: d.mean(0),
                                  jax.vmap(lambda k: estimate(k)[0])(keys))
            out, aux = g(primal)
        return derivs, out, aux, [new_key]


# -- vjp and jvp: call-style, like jax.vjp / jax.jvp ------------------------------------------

class _Linearize(_StatefulTransform):
    """Shared by vjp and jvp: differentiate with respect to every primal and the grad states."""

    def _format(self, derivs, out, result):
        raise AssertionError('unused')


class _VJP(_Linearize):
    kind = 'vjp'

    def _apply(self, f, grad_values, diff_args, extra):
        out, pullback, aux = jax.vjp(f, grad_values, diff_args, has_aux=True)
        return pullback, out, aux, extra[0]

    def run(self, primals):
        args = tuple(primals)
        # Eagerly this runs op by op, like jax.vjp: the pullback it returns is a Python
        # function, which no compiled program can hand back. Inside a trace, the function
        # runs directly under jax.vjp where it can (see _StatefulTransform._call).
        stack = _state.TRACE_STACK.stack
        pullback = None
        if stack and can_run_directly(self.passes):
            try:
                found, (states, values) = self._run_direct(args, {}, parent=stack[-1])
            except Exception:
                DIRECT_IN_TRACE['fallbacks'] += 1
            else:
                DIRECT_IN_TRACE['direct'] += 1
                write_back(states, values, f'{self.kind} of {self.fun_name}')
                self._remember_direct_call(args, {})
                pullback, out, result = found
        if pullback is None:
            program, grad_values, diff_args, other_values = self._prepare(args, {})
            pure = self._pure(program, program.consts, other_values, args, {})
            out, pullback, (result, written) = jax.vjp(pure, grad_values, diff_args,
                                                       has_aux=True)
            write_back_leaves(program.written_states, program.written_treedefs, list(written),
                              f'{self.kind} of {self.fun_name}')
        given, diff = self.grad.given, bool(self.arg_positions)

        def vjp_fn(cotangent):
            state_ct, arg_ct = pullback(cotangent)
            if given:
                return (state_ct, arg_ct) if diff else state_ct
            return arg_ct

        if self.has_aux:
            return out, vjp_fn, result[1]
        return out, vjp_fn


class _JVP(_Linearize):
    kind = 'jvp'

    def _apply(self, f, grad_values, diff_args, extra):
        _, (state_tangents, arg_tangents) = extra
        out, dout, aux = jax.jvp(f, (grad_values, diff_args), (state_tangents, arg_tangents),
                                 has_aux=True)
        return dout, out, aux, extra[0]


_ALL = object()


def _cached_linearizer(cls, fun, grad_states, num_primals: int, has_aux: bool, passes=None,
                       argnums=_ALL):
    """vjp/jvp take the function on every call: keep one transform per function, grad states
    and arity (a small LRU), so repeated calls reuse the traced and compiled program.
    ``argnums``: the differentiated positions (default: every primal)."""
    states_key = None if grad_states is None else tuple(
        id(s) for s in _GradStates(grad_states, cls.kind).states)
    key = (cls, fun, states_key, _structure_key(grad_states), num_primals, has_aux,
           passes if isinstance(passes, (str, type(None))) else tuple(map(str, passes)),
           argnums if argnums is not _ALL else '*')
    try:
        transform = _LINEARIZERS.pop(key, None)
    except TypeError:  # an unhashable callable: no caching
        key, transform = None, None
    if transform is None:
        if argnums is _ALL:
            argnums = tuple(range(num_primals)) if num_primals else None
        transform = cls(fun, grad_states, argnums, has_aux, passes=passes)
        if argnums is None:
            transform.argnums, transform.arg_positions = None, ()
    if key is not None:
        _LINEARIZERS[key] = transform
        while len(_LINEARIZERS) > _LINEARIZER_CACHE_SIZE:
            _LINEARIZERS.pop(next(iter(_LINEARIZERS)))
    return transform


def _structure_key(grad_states):
    if grad_states is None or isinstance(grad_states, State):
        return type(grad_states)
    if isinstance(grad_states, Mapping):
        return (type(grad_states), tuple((k, _structure_key(v)) for k, v in grad_states.items()))
    if isinstance(grad_states, (list, tuple)):
        return (type(grad_states), tuple(_structure_key(v) for v in grad_states))
    return type(grad_states)


_LINEARIZERS: dict = {}
_LINEARIZER_CACHE_SIZE = 64


# -- the public functions -------------------------------------------------------------------

_RETURN_FORMS = """
    What a call returns:

    * gradients: with ``grad_states`` only, the gradients in ``grad_states``'s structure (a
      single State gives its value's pytree; a list/tuple a list/tuple; a mapping such as
      ``model.states(brainstate.ParamState)`` a mapping with the same keys). With ``argnums``
      only (or no ``grad_states``: ``argnums`` defaults to 0), the gradients of the arguments as
      ``jax.grad`` gives them. With both, ``(state_grads, arg_grads)``.
    * ``has_aux=True``: ``(grads, aux)``; ``return_value=True``: ``(grads, value)``; both:
      ``(grads, value, aux)``.
"""


def _decorator_or_transform(cls, fun, **options):
    if fun is None:
        return lambda f: cls(f, **options)
    return cls(fun, **options)


def grad(fun: Callable | None = None, grad_states=None, argnums: int | Sequence[int] | None = None,
         holomorphic: bool = False, allow_int: bool = False, has_aux: bool = False,
         return_value: bool = False, unit_aware: bool = False, check_states: bool = True, *,
         debug_nan: bool = False, passes=None) -> GradientTransform:
    """Gradient of a scalar function with respect to States (and/or its arguments).

    Args:
      fun: the function; it may read and write States. It must return a scalar (or, with
        ``has_aux``, a pair ``(scalar, aux)``).
      grad_states: the States to differentiate with respect to: a State, a list/tuple of States,
        or a mapping such as ``model.states(brainstate.ParamState)``. Each must be read by
        ``fun`` and hold floats.
      argnums: positional arguments to differentiate with respect to (int or tuple of ints).
      has_aux: ``fun`` returns ``(output, aux)``; only ``output`` is differentiated.
      return_value: also return the output.
      holomorphic, allow_int: as for ``jax.grad``.
      unit_aware: differentiate brainunit quantities with their units (``brainunit.autograd``).
      check_states: a grad state the function never reads is an error (False: zero gradient).
      debug_nan: raise when a derivative holds NaN or Inf.
      passes: the optimization pipeline the function is compiled with (``None``: the default;
        ``[]``: only what lowering needs), as for ``jit``. Every transform of this module takes
        it.
    %s
    States that ``fun`` writes (running statistics, counters, random keys) are written back
    once, in the enclosing context, and are not differentiated. ``grad`` works eagerly (the
    differentiated function runs compiled), inside ``jit``, around ``jit`` functions and nested.

    Example::

        params = model.states(brainstate.ParamState)

        @brainstate.transform.jit
        def train_step(x, y):
            grads = brainstate.transform.grad(loss_fn, params)(x, y)
            for key in params:
                params[key].value = jax.tree.map(lambda p, g: p - 0.1 * g,
                                                 params[key].value, grads[key])
            return loss_fn(x, y)

    Errors (:class:`brainstate.GradientError`) name the state at fault: a grad state the
    function never reads, an integer-valued grad state; also a non-scalar output (use
    :func:`vector_grad` or :func:`jacrev`) and a negative or out-of-range ``argnums``.
    """
    return _decorator_or_transform(GradientTransform, fun, grad_states=grad_states,
                                   argnums=argnums, has_aux=has_aux, return_value=return_value,
                                   holomorphic=holomorphic, allow_int=allow_int,
                                   unit_aware=unit_aware, check_states=check_states,
                                   debug_nan=debug_nan, passes=passes)


grad.__doc__ = grad.__doc__ % _RETURN_FORMS


def value_and_grad(fun: Callable | None = None, grad_states=None,
                   argnums: int | Sequence[int] | None = None, has_aux: bool = False,
                   holomorphic: bool = False, allow_int: bool = False, *,
                   check_states: bool = True, passes=None):
    """Like :func:`grad`, returning the value too, in ``jax.value_and_grad``'s form.

    A call returns ``(value, grads)``, or ``((value, aux), grads)`` with ``has_aux=True``;
    ``grads`` has the structure described in :func:`grad`.

    Example::

        loss, grads = brainstate.transform.value_and_grad(loss_fn, params)(x, y)
    """
    return _decorator_or_transform(_ValueAndGrad, fun, grad_states=grad_states,
                                   argnums=argnums, has_aux=has_aux, return_value=False,
                                   holomorphic=holomorphic, allow_int=allow_int,
                                   check_states=check_states, passes=passes)


def vector_grad(fun: Callable | None = None, grad_states=None,
                argnums: int | Sequence[int] | None = None, return_value: bool = False,
                has_aux: bool = False, unit_aware: bool = False, check_states: bool = True, *,
                debug_nan: bool = False, passes=None):
    """Gradient of a function with a non-scalar output: the vector-Jacobian product with ones
    (the gradient of the sum of the outputs, computed without summing).
    %s
    Example::

        dv = brainstate.transform.vector_grad(lambda: neuron.v.value ** 2, neuron.v)()
    """
    return _decorator_or_transform(_VectorGrad, fun, grad_states=grad_states, argnums=argnums,
                                   has_aux=has_aux, return_value=return_value,
                                   unit_aware=unit_aware, check_states=check_states,
                                   debug_nan=debug_nan, passes=passes)


vector_grad.__doc__ = vector_grad.__doc__ % _RETURN_FORMS


def fwd_grad(fun: Callable | None = None, grad_states=None,
             argnums: int | Sequence[int] | None = None, return_value: bool = False,
             has_aux: bool = False, tangent_size: int | None = None,
             drct_der_clip: float | None = None, key=None, *, num_samples: int | None = None,
             check_states: bool = True, passes=None):
    """Forward-mode gradient estimate (the "forward gradient"): for a random direction
    ``v ~ N(0, I)`` over every differentiated leaf, ``(grad . v) v``, computed with one JVP and
    no backward pass. It is an unbiased estimate of the gradient; ``num_samples`` directions
    are averaged.

    Args:
      fun, grad_states, argnums, has_aux, return_value: as for :func:`grad`.
      tangent_size (or num_samples): number of random directions averaged (default 1).
      drct_der_clip: clip each directional derivative to ``[-clip, clip]``.
      key: an int seed or a JAX PRNG key for the directions; the transform then keeps its own
        key State. By default the directions come from ``brainstate.random.DEFAULT``, whose
        key is advanced (written back) on every call, like any random draw.
    %s
    """
    samples = num_samples if num_samples is not None else (tangent_size or 1)
    return _decorator_or_transform(_ForwardGrad, fun, grad_states=grad_states, argnums=argnums,
                                   has_aux=has_aux, return_value=return_value,
                                   num_samples=samples, key=key, drct_der_clip=drct_der_clip,
                                   check_states=check_states, passes=passes)


fwd_grad.__doc__ = fwd_grad.__doc__ % _RETURN_FORMS


def jacrev(fun: Callable, grad_states=None, argnums: int | Sequence[int] | None = None,
           has_aux: bool = False, return_value: bool = False, holomorphic: bool = False,
           allow_int: bool = False, unit_aware: bool = False, check_states: bool = True, *,
           debug_nan: bool = False, passes=None):
    """Jacobian by reverse mode (as ``jax.jacrev``) with respect to States and/or arguments.
    %s
    The Jacobian of an output leaf of shape ``S`` with respect to an input leaf of shape ``T``
    has shape ``S + T``; with both states and arguments, the ``(state part, argument part)``
    pair sits at each output leaf, as with ``jax.jacrev(..., argnums=(0, 1))``.
    """
    return _Jacobian(fun, grad_states, argnums, has_aux, return_value, holomorphic, allow_int,
                     mode='rev', passes=passes, unit_aware=unit_aware,
                     check_states=check_states, debug_nan=debug_nan)


jacrev.__doc__ = jacrev.__doc__ % _RETURN_FORMS
jacobian = jacrev


def jacfwd(fun: Callable, grad_states=None, argnums: int | Sequence[int] | None = None,
           has_aux: bool = False, return_value: bool = False, holomorphic: bool = False,
           unit_aware: bool = False, check_states: bool = True, *, debug_nan: bool = False,
           passes=None):
    """Jacobian by forward mode (as ``jax.jacfwd``); same forms as :func:`jacrev`.
    %s
    """
    return _Jacobian(fun, grad_states, argnums, has_aux, return_value, holomorphic,
                     mode='fwd', passes=passes, unit_aware=unit_aware,
                     check_states=check_states, debug_nan=debug_nan)


jacfwd.__doc__ = jacfwd.__doc__ % _RETURN_FORMS


def hessian(fun: Callable, grad_states=None, argnums: int | Sequence[int] | None = None,
            return_value: bool = False, holomorphic: bool = False, has_aux: bool = False,
            unit_aware: bool = False, check_states: bool = True, *, debug_nan: bool = False,
            passes=None):
    """Hessian of a scalar function (as ``jax.hessian``: ``jacfwd`` of ``jacrev``).
    %s
    With both states and arguments the result is ``((H_ss, H_sa), (H_as, H_aa))``, the nesting
    ``jax.hessian(..., argnums=(0, 1))`` gives.
    """
    return _Jacobian(fun, grad_states, argnums, has_aux, return_value, holomorphic,
                     mode='hessian', passes=passes, unit_aware=unit_aware,
                     check_states=check_states, debug_nan=debug_nan)


hessian.__doc__ = hessian.__doc__ % _RETURN_FORMS


def vjp(fun: Callable, *primals, grad_states=None, argnums: int | Sequence[int] | None = 0,
        has_aux: bool = False, passes=None):
    """Vector-Jacobian product of a stateful function, like ``jax.vjp``.

    Returns ``(out, vjp_fn)`` (``(out, vjp_fn, aux)`` with ``has_aux``). What
    ``vjp_fn(cotangent)`` returns:

    * no ``grad_states``: the cotangent of the primal ``argnums`` (an int: that argument's,
      unwrapped; a sequence: a tuple);
    * ``grad_states`` and ``argnums``: ``(state_cotangents, argument_cotangents)``, the first
      in ``grad_states``'s structure;
    * ``grad_states`` with ``argnums=None`` or no primals: the state cotangents only.

    ``argnums`` may count from the end (``-1``); a position out of range, a position given
    twice, or nothing to differentiate (no primals and no grad_states) is a ValueError
    (:class:`~brainstate.GradientError`). States ``fun`` writes are written back when ``vjp``
    is called.

    Example::

        y, pullback = brainstate.transform.vjp(f, x, grad_states=net.w)
        dw, dx = pullback(jnp.ones_like(y))
    """
    n = len(primals)
    if argnums is None or n == 0:
        positions = None
    else:
        single = isinstance(argnums, (int, np.integer))
        wanted = (argnums,) if single else tuple(argnums)
        for i in wanted:
            if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
                raise ArgumentTypeError(f'vjp: argnums must be an int or a sequence of ints, '
                                        f'got {argnums!r}.')
            if not -n <= i < n:
                raise GradientError(
                    f'vjp of {getattr(fun, "__name__", fun)}: argnums {i} is out of range for a '
                    f'call with {n} positional argument(s).')
        normalized = tuple(int(i) % n for i in wanted)
        if len(set(normalized)) != len(normalized):
            raise GradientError(f'vjp: argnums={argnums!r} names a positional argument twice; '
                                f'differentiate each argument once.')
        positions = normalized[0] if single else normalized
    if positions is None and grad_states is None:
        raise GradientError(
            'vjp has nothing to differentiate: give positional arguments to differentiate '
            '(selected by argnums) and/or grad_states.')
    transform = _cached_linearizer(_VJP, fun, grad_states, n, has_aux, passes,
                                   argnums=positions)
    return transform.run(primals)


def jvp(fun: Callable, primals: Sequence, tangents: Sequence, grad_states=None,
        state_tangents=None, has_aux: bool = False, passes=None):
    """Jacobian-vector product of a stateful function, like ``jax.jvp``.

    Args:
      fun: the function.
      primals, tangents: tuples of the arguments and of their tangents.
      grad_states: States whose values also get tangents.
      state_tangents: the tangents of ``grad_states``, in its structure (required with it).
      has_aux: ``fun`` returns ``(output, aux)``.

    Returns ``(out, out_tangent)``, or ``(out, out_tangent, aux)``. States ``fun`` writes are
    written back.
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ArgumentValueError(f'jvp: got {len(primals)} primals but {len(tangents)} tangents.')
    if grad_states is not None and state_tangents is None:
        raise ArgumentValueError(
            'jvp: grad_states was given without state_tangents; pass the tangent '
            'of each grad state (in the structure of grad_states).')
    transform = _cached_linearizer(_JVP, fun, grad_states, len(primals), has_aux, passes)
    state_t = state_tangents if grad_states is not None else ()

    def call(primals, arg_t, state_t):
        return transform._call(primals, {}, (state_t, arg_t))

    if _state.TRACE_STACK:
        derivs, out, result = call(primals, tangents, state_t)
    else:
        derivs, out, result = run_eagerly(call, (primals, tangents, state_t), {}, name='jvp',
                                          inside_raw_jax=True, key=('jvp', transform))
    if has_aux:
        return out, derivs, result[1]
    return out, derivs
