"""The one compiler pipeline every transform uses: trace -> PassManager -> lower.

:func:`trace_program` traces a function for one call signature into the state IR, runs the pass
pipeline through one :class:`~brainstate.passes.PassManager` (the user's or the default
pipeline, then whatever lowering needs: hoist-states; then the transform's own analyses, such as
vmap's ``batching-analysis``) and lowers the result to a ClosedJaxpr. Each transform then does
its own thing with the pure jaxpr: ``jit`` compiles it, ``grad`` differentiates it, ``vmap``
batches it, and :mod:`._state_io` reads and writes the states around it.

jit, the grad family, vmap, make_jaxpr, eval_shape, the eager loops and branches (through
:mod:`._eager`) and the ``brainstate-ir`` command line all come through here, so ``passes=``
means the same thing everywhere.
"""

from __future__ import annotations

import inspect
import time
import types
from typing import Callable, Sequence

import jax

from .. import passes as passes_lib
from .._errors import StateArgumentError
from .._state import State, lane_view
from .._state_pack import packed_slots
from ..ir import LoweredGraph, lower_to_jaxpr, trace_flat
from ..ir._gc import paused_gc
from ..passes._manager import fixed_signature
from ._arguments import ArgumentSpec, CallSignature, leaf_aval
from ._environ_key import EnvironReads, read_pipeline, recording_reads

__all__ = ['trace_program', 'StatefulProgram', 'check_outputs', 'argument_names']


class StatefulProgram:
    """A traced and lowered function for one call signature.

    Attributes:
      name: the function's name.
      traced_graph: the graph as traced, before any pass (only kept with ``keep_traced=True``;
        otherwise the same object as ``graph``).
      graph: the canonical graph after the passes.
      lowered: the :class:`~brainstate.ir.LoweredGraph` (jaxpr and state order), or None when
        the program was traced without lowering.
      states: every state involved: the states read, then those only written.
      traced_reads: every state the trace read, in order of first read, before the passes
        removed unused reads (grad uses it to tell "never read" from "read, but its value is
        unused"; make_jaxpr lists such states too).
      arg_avals: the avals of the argument leaves.
      out_tree: the pytree structure of the results.
      new_states: states created while tracing.
      pass_manager: the PassManager that ran (its ``records`` say which passes ran and what
        they changed).
      timings: seconds spent in 'trace' (JAX tracing the function), 'convert' (its jaxpr
        into the state IR), 'passes', 'lower' (and 'compile', set by jit).
      environ_reads: the ``brainstate.environ`` settings the trace read, with their values
        (an :class:`~._environ_key.EnvironReads`): the program is valid while they hold.
    """

    def __init__(self, name, graph, lowered, arg_avals, out_tree, new_states, timings,
                 traced_graph=None, traced_reads=(), pass_manager=None,
                 environ_reads: EnvironReads | None = None):
        self.name = name
        self.environ_reads = EnvironReads() if environ_reads is None else environ_reads
        self.traced_graph = graph if traced_graph is None else traced_graph
        self.graph = graph
        self.lowered: LoweredGraph | None = lowered
        read = list(lowered.read_states) if lowered else []
        read_set = set(read)
        only_written = [s for s in (lowered.written_states if lowered else [])
                        if s not in read_set]
        self.states: tuple[State, ...] = tuple(read + only_written)
        self.traced_reads = traced_reads
        self.arg_avals = arg_avals
        self.out_tree = out_tree
        self.new_states = new_states
        self.pass_manager = pass_manager
        self.timings = timings
        self._call_jaxpr = None

    def call_jaxpr(self):
        """The lowered jaxpr with its constants as leading inputs, made once (one object, so
        JAX's caches keyed by the jaxpr answer for every use)."""
        if self._call_jaxpr is None:
            from ..ir._eval import closed_without_consts
            self._call_jaxpr = closed_without_consts(self.lowered.closed_jaxpr)
        return self._call_jaxpr


def _is_module(leaf) -> bool:
    from ..graph import Node
    return isinstance(leaf, Node)


def check_outputs(out, fun_name: str, where: str = ''):
    """The one check that a traced function returned values, not States or Modules.

    Raises :class:`~brainstate.StateArgumentError` naming the function and the output's path.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(
            out, is_leaf=lambda x: isinstance(x, State))[0]:
        at = jax.tree_util.keystr(path) or '(the whole result)'
        if isinstance(leaf, State):
            raise StateArgumentError(
                f'{where or fun_name} returned State {leaf.label()} at {at}. States are not '
                f'values: return `state.value` instead (the transform keeps the state updated '
                f'for you).')
        if _is_module(leaf):
            raise StateArgumentError(
                f'{where or fun_name} returned a {type(leaf).__name__} (a Module) at {at}. '
                f'Modules are not values a compiled function can return: the module and its '
                f'states already live outside the function, so return nothing (or '
                f'`module.states()` values) instead and use the module object you built; to '
                f'create a module inside a transform, create it before the call.')


def _states_read(graph, out: dict) -> dict:
    """Every state a graph (and the regions in it) reads, in order of first read (the keys of
    ``out``)."""
    for node in graph.nodes:
        if node.kind == 'state_read':
            out.setdefault(node.state, None)
        for sub in node.subgraphs:
            _states_read(sub, out)
    return out


def _touches_packed_state(graph) -> bool:
    """Whether a graph (or a region in it) reads or writes a state stored in a pack."""
    for node in graph.nodes:
        if node.is_state_op and packed_slots(node.state) is not None:
            return True
        if any(_touches_packed_state(sub) for sub in node.subgraphs):
            return True
    return False


def argument_names(fun: Callable, sig: CallSignature) -> list[str]:
    """The name of each argument leaf of a call, as the user wrote it (``'x'``,
    ``"params['w']"``, ``'args[2]'``), for JAX's messages about traced values."""
    count = sig.treedef.num_leaves
    dyn_args, dyn_kwargs = jax.tree.unflatten(sig.treedef, list(range(count)))
    positional, varargs = _positional_parameters(fun)
    static = {i for i, _ in sig.static_args}
    positions = [i for i in range(len(dyn_args) + len(static)) if i not in static]
    names = [''] * count
    named = [(positional[i] if i < len(positional) else f'{varargs}[{i - len(positional)}]',
              arg) for i, arg in zip(positions, dyn_args)]
    named += list(dyn_kwargs.items())
    for base, arg in named:
        if type(arg) is int:  # the argument is one leaf (the common case): its own name
            names[arg] = base
            continue
        for path, index in jax.tree_util.tree_flatten_with_path(arg)[0]:
            names[index] = base + jax.tree_util.keystr(path)
    return names


def _positional_parameters(fun: Callable) -> tuple[list[str], str]:
    """The names of ``fun``'s positional parameters and of its ``*args`` (``'args'`` if none),
    as ``inspect.signature`` gives them. A plain function or a method of one is read from its
    code object (``inspect.signature`` costs 30-50us of every trace); anything else (a partial,
    a wrapper with ``__wrapped__`` or ``__signature__``, a callable object) asks inspect."""
    code, skip = None, 0
    if type(fun) is types.MethodType and type(fun.__func__) is types.FunctionType:
        fun, skip = fun.__func__, 1
    if type(fun) is types.FunctionType and '__wrapped__' not in fun.__dict__ and \
            '__signature__' not in fun.__dict__:
        code = fun.__code__
    if code is not None:
        count = code.co_argcount
        names = list(code.co_varnames[skip:count])
        varargs = code.co_varnames[count + code.co_kwonlyargcount] \
            if code.co_flags & inspect.CO_VARARGS else 'args'
        return names, varargs
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                       p.POSITIONAL_OR_KEYWORD)]
    varargs = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), 'args')
    return positional, varargs


def trace_program(fun: Callable, spec: ArgumentSpec, sig: CallSignature, *, passes=None,
                  lower: bool = True, in_avals: Sequence | None = None, lanes=None,
                  analyses: Sequence = (), keep_traced: bool = False,
                  before_passes: Callable | None = None) -> StatefulProgram:
    """Trace ``fun`` for the call signature ``sig``, run the passes and lower it.

    Args:
      fun, spec, sig: the function, how its arguments are split, and this call's split.
      passes: the pipeline (None: the global default; ``[]``: only what lowering needs).
      lower: False to stop after tracing (the graph as traced, no pass run).
      in_avals: the avals to trace the argument leaves at (default: the leaves' own; vmap
        passes the per-lane ones).
      lanes: per-state avals to compile state reads and writes at (vmap's per-lane view of its
        batched states): a callable ``lanes(state) -> avals or None``, in force (as
        ``State.avals``) while this program is traced, optimized and lowered; an input of the
        compilation, not a change of any State.
      analyses: passes the transform itself needs after the pipeline (e.g.
        ``'batching-analysis'``), run by the same PassManager.
      keep_traced: keep a copy of the graph as traced (``program.traced_graph``).
      before_passes: ``callback(graph, new_states)`` run between tracing and the passes (vmap
        records its batching declarations in ``graph.meta`` there).
    """
    # Tracing, converting, optimizing and lowering allocate many objects in reference cycles
    # and free none: Python's cycle collector would walk them again and again (see
    # brainstate/ir/_gc.py).
    with paused_gc():
        return _trace_program(fun, spec, sig, passes=passes, lower=lower, in_avals=in_avals,
                              lanes=lanes, analyses=analyses, keep_traced=keep_traced,
                              before_passes=before_passes)


def _trace_program(fun, spec, sig, *, passes, lower, in_avals, lanes, analyses, keep_traced,
                   before_passes) -> StatefulProgram:
    out_tree_box = []
    name = spec.fun_name

    def flat_fun(*leaves):
        args, kwargs = spec.rebuild(sig, leaves)
        out = fun(*args, **kwargs)
        check_outputs(out, name)
        out_leaves, out_tree = jax.tree.flatten(out)
        out_tree_box.append(out_tree)
        return out_leaves

    if lanes is not None:
        with lane_view(lanes):
            return trace_program(fun, spec, sig, passes=passes, lower=lower, in_avals=in_avals,
                                 analyses=analyses, keep_traced=keep_traced,
                                 before_passes=before_passes)
    arg_avals = list(in_avals) if in_avals is not None else [leaf_aval(x) for x in sig.leaves]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    try:
        arg_names = argument_names(spec.fun, sig)
    except Exception:  # a signature we cannot map: JAX's generic names
        arg_names = None
    with recording_reads() as environ_reads:
        # Reads forwarded at trace time, except where the graph as traced is asked for.
        graph, ctx = trace_flat(flat_fun, arg_avals, name=name, user_fun=spec.fun,
                                arg_names=arg_names, forward_reads=lower and not keep_traced)
    graph.in_tree, graph.out_tree = sig.treedef, out_tree_box[-1]
    timings['convert'] = ctx.convert_seconds
    timings['trace'] = time.perf_counter() - start - ctx.convert_seconds
    if not lower:
        return StatefulProgram(name, graph, None, arg_avals, graph.out_tree, ctx.new_states,
                               timings, environ_reads=environ_reads)
    traced = graph.copy() if keep_traced else graph
    traced_reads = tuple(_states_read(graph, {}))
    if before_passes is not None:
        before_passes(graph, ctx.new_states)
    if 'pack-states' in analyses and not _touches_packed_state(graph):
        # (Packs exist, but this function touches none of their states: nothing to rewrite.)
        analyses = tuple(a for a in analyses if a != 'pack-states')
    # The compiled function takes the traced function's arguments and gives its results: no
    # pass may change the top-level graph's signature (the PassManager names one that does).
    graph.meta['fixed_signature'] = fixed_signature(graph)
    if not isinstance(passes, passes_lib.PassManager):
        # (The default pipeline, or the given one with the global pass options.)
        read_pipeline(environ_reads)
    start = time.perf_counter()
    manager = passes_lib.optimize(graph, passes, analyses=analyses)
    timings['passes'] = time.perf_counter() - start
    start = time.perf_counter()
    lowered = lower_to_jaxpr(graph)
    timings['lower'] = time.perf_counter() - start
    return StatefulProgram(name, graph, lowered, arg_avals, graph.out_tree, ctx.new_states,
                           timings, traced_graph=traced, traced_reads=traced_reads,
                           pass_manager=manager, environ_reads=environ_reads)

