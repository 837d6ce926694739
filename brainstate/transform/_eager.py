"""The one way a transform runs outside any trace.

Called eagerly (no brainstate trace active), every transform — the grad family, vmap, map, the
loops and branches, checkpoint — runs as one compiled program: :func:`run_eagerly` traces the
call through the one pipeline (:mod:`._program`), compiles it with ``jax.jit`` and runs it
through the one state I/O path (:mod:`._state_io`, via jit's entries), so its state updates are
kept, or, if it fails, none are.

**The rule for eager calls (Python semantics, one compile per distinct program).** Each eager
call traces the function anew, so it sees the current values of the globals, closure cells and
attributes it reads (``m.k = 10.`` between two calls of ``for_loop(m.body, ...)`` is honoured),
and a transform built inline (``grad(loss, params)(x)`` in a Python loop) is no different from
one built once. The compiled XLA program is then looked up by what the trace produced: the
lowered jaxpr's text, the shapes of its constants (passed as arguments, so their values may
differ), the states it reads and writes with their tree structures, and the argument and result
structures. A call whose trace equals an earlier one reuses that executable: no new XLA
compilation. Tracing costs what tracing costs; compiling happens once per distinct program.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import jax

from .. import _state
from .._compat import outside_any_jax_trace

__all__ = ['run_eagerly', 'call_eagerly', 'eager_cache_info', 'clear_eager_cache']

_MAX_CACHED = 256
_cache: OrderedDict = OrderedDict()
_stats = {'traces': 0, 'compiled_programs': 0, 'hits': 0}


def _fingerprint(program, sig) -> tuple:
    lowered = program.lowered
    closed = lowered.closed_jaxpr
    states = tuple(lowered.read_states) + tuple(lowered.written_states)
    return (str(closed.jaxpr),
            tuple((c.shape, c.dtype, getattr(c, 'weak_type', False))
                  for c in (jax_typeof(x) for x in closed.consts)),
            states, tuple(s._treedef for s in states),
            sig.treedef, sig.static_args, sig.static_kwargs, program.out_tree)


def jax_typeof(x):
    import jax
    return jax.typeof(x)


def run_eagerly(fun: Callable, args: tuple, kwargs: dict, *, name: str | None = None,
                static_argnums=(), passes=None, inside_raw_jax: bool = False) -> Any:
    """Run ``fun(*args, **kwargs)`` as one compiled program, with state I/O, outside any trace.

    ``fun`` is traced on every call (see the module's rule); the executable is shared by every
    call whose trace is the same. ``static_argnums``: positional arguments that are Python
    values (they key the trace). ``passes``: the pipeline (None: the default).
    ``inside_raw_jax``: under a raw JAX transform (``jax.vmap(brainstate.transform.grad(f))``)
    run ``fun`` in that trace instead (for transforms that need no region); otherwise such a
    call is refused with a TracerLeakError by jit's argument check.
    """
    from ._jit import JittedFunction, _Entry
    if not outside_any_jax_trace():
        if inside_raw_jax:
            # Under a raw JAX transform (jax.vmap of a brainstate grad): nothing can be
            # compiled or stored here; run in that trace. States are read as stored; a write is
            # refused when it is stored back (state I/O's tracer check), before anything
            # changes.
            return fun(*args, **kwargs)
        return run_in_foreign_trace(fun, args, kwargs, static_argnums=static_argnums,
                                    passes=passes)
    if name is not None:
        try:
            fun.__name__ = name
        except (AttributeError, TypeError):
            pass
    owner = JittedFunction(fun, static_argnums=static_argnums, passes=passes)
    sig = owner.args.signature(args, kwargs)
    program = owner.trace(sig)
    _stats['traces'] += 1
    key = _fingerprint(program, sig)
    entry = _cache.get(key)
    if entry is None:
        entry = _Entry(owner, program, consts_as_args=True)
        _cache[key] = entry
        _stats['compiled_programs'] += 1
        if len(_cache) > _MAX_CACHED:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
        _stats['hits'] += 1
    # Should JAX retrace (it keys on more than we do), it traces this call's program.
    entry.pending = program
    try:
        return entry(args, kwargs, program.lowered.closed_jaxpr.consts)
    finally:
        entry.pending = None


def run_in_foreign_trace(fun: Callable, args: tuple, kwargs: dict, *, static_argnums=(),
                         passes=None) -> Any:
    """Run ``fun`` inside a raw JAX transform (``jax.vmap``/``jax.grad``/``jax.jit`` of a
    function calling a brainstate loop or branch): trace it through the one pipeline at the
    tracers' avals and evaluate the lowered program in that JAX trace. States are read as
    stored (constants of that trace); a state write is refused by state I/O's tracer check
    before anything is stored."""
    from ._arguments import ArgumentSpec
    from ._program import trace_program
    from ._state_io import write_back
    spec = ArgumentSpec(fun, static_argnums)
    sig = spec.signature(args, kwargs, allow_tracers=True)
    program = trace_program(fun, spec, sig, passes=passes)
    lowered = program.lowered
    closed = lowered.closed_jaxpr
    state_leaves = [leaf for s in lowered.read_states for leaf in jax.tree.leaves(s.value)]
    outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *state_leaves, *sig.leaves)
    n = lowered.num_outputs
    values, offset = [], n
    for state in lowered.written_states:
        count = state.treedef.num_leaves
        values.append(state.treedef.unflatten(outs[offset:offset + count]))
        offset += count
    write_back(list(lowered.written_states), values, f'{spec.fun_name} (a brainstate '
                                                     f'transform)')
    return program.out_tree.unflatten(outs[:n])


def call_eagerly(key, build: Callable[..., Any], name: str, *args):
    """``build(*args)`` run eagerly (see :func:`run_eagerly`); ``key`` is kept for callers that
    name the operation, it no longer keys anything."""
    return run_eagerly(build, args, {}, name=name)


def eager_cache_info() -> dict:
    """Counters of the eager runner: calls traced, programs compiled, calls that reused one."""
    return dict(_stats, cached=len(_cache))


def clear_eager_cache():
    """Forget every program compiled for eager calls."""
    _cache.clear()


def outside_trace() -> bool:
    return not _state.TRACE_STACK
