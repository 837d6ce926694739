"""The one way a transform runs outside any trace.

Called eagerly (no brainstate trace active), every transform — the grad family, vmap, map, the
loops and branches, checkpoint — runs as one compiled program: :func:`run_eagerly` traces the
call through the one pipeline (:mod:`._program`), compiles it with ``jax.jit`` and runs it
through the one state I/O path (:mod:`._state_io`, via jit's entries), so its state updates are
kept, or, if it fails, none are.

**The rule for eager calls: one compile per function and signature, and Python semantics.**
A call is described by its *function key* (:mod:`._fun_key`: the function's code, closure
contents, the globals and attributes it can reach, the transform's options), its argument
signature and the states' layout. A call whose key equals an earlier call's runs that call's
compiled program at once: no trace, no XLA compile — so a transform built inline
(``grad(loss, params)(x)`` in a Python loop) costs what one built once costs. A call with a new
key is traced anew, so it sees the current values of the globals, closure cells and attributes
it reads (``m.k = 10.`` between two calls of ``for_loop(m.body, ...)`` is honoured); its
compiled program is then looked up by what the trace produced (the lowered jaxpr's text, the
shapes of its constants — passed as arguments, so their values may differ —, the states it
reads and writes with their tree structures, the argument and result structures), so two keys
that trace to the same program share one XLA executable.

**First calls run directly.** A transform that can run without the IR (the grad family and
vmap: ``direct_first``, and a ``run_directly`` method) runs a key's first call as raw JAX's
eager transform does: the user's function itself under ``jax.grad`` / ``jax.vjp`` /
``jax.vmap``, op by op, its states swapped in and its writes recorded by a
:class:`~._direct.DirectContext` and written back after success (:mod:`._direct`). Nothing is
traced into a program until the key comes again: the second call traces and compiles, later
ones run untraced. What a direct run does not handle (a vmap that writes a state, a user's pass
pipeline, state hooks...) it refuses before storing anything, and the call runs traced, op by
op (the user's Python then runs again); so does a call that raised, so its error is the traced
call's.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import jax

from .. import _state
from .._compat import hide_brainstate_frames, outside_any_jax_trace
from ._direct import can_run_directly
from ._fun_key import function_key
from ._state_io import STATE_LOCK

__all__ = ['run_eagerly', 'call_eagerly', 'eager_cache_info', 'clear_eager_cache']

_MAX_CACHED = 256
_cache: OrderedDict = OrderedDict()   # traced program's fingerprint -> _Entry
# (function key, signature) -> ((_Entry, consts, program), ...), latest first: one per
# brainstate.environ settings / pass pipeline it was traced under (two threads under two
# pipelines each reuse theirs), at most _PER_KEY.
_by_key: OrderedDict = OrderedDict()
_PER_KEY = 3
_ran_directly: OrderedDict = OrderedDict()  # (function key, signature) -> the transform run
_stats = {'traces': 0, 'compiled_programs': 0, 'hits': 0, 'untraced_hits': 0,
          'op_by_op': 0, 'direct': 0, 'direct_fallbacks': 0}


class _Key:
    """A function key with its signature, hashed once (the eager runner looks it up several
    times per call; a nested tuple is hashed anew by every lookup)."""

    __slots__ = ('value', 'hash')

    def __init__(self, value):
        self.value = value
        self.hash = hash(value)

    def __hash__(self):
        return self.hash

    def __eq__(self, other):
        return type(other) is _Key and self.hash == other.hash and self.value == other.value


def _fingerprint(program, sig) -> tuple:
    lowered = program.lowered
    closed = lowered.closed_jaxpr
    states = tuple(lowered.read_states) + tuple(lowered.written_states)
    return (str(closed.jaxpr),
            tuple((c.shape, c.dtype, getattr(c, 'weak_type', False))
                  for c in (jax_typeof(x) for x in closed.consts)),
            states, tuple((s._treedef, s._shardings) for s in states),  # (jit's layout)
            sig.treedef, sig.static_args, sig.static_kwargs, program.out_tree)


def jax_typeof(x):
    import jax
    return jax.typeof(x)


def run_eagerly(fun: Callable, args: tuple, kwargs: dict, *, name: str | None = None,
                static_argnums=(), static_argnames=(), passes=None,
                inside_raw_jax: bool = False,
                key: Any = None, direct_first: bool = False) -> Any:
    """Run ``fun(*args, **kwargs)`` as one compiled program, with state I/O, outside any trace.

    ``key``: what the call computes, as the transform sees it — the user's function(s) and the
    transform's options (e.g. ``('grad', loss, argnums, has_aux)``); it is described by
    :func:`~._fun_key.function_key` so that a later call with an equal description runs the
    compiled program without tracing (see the module's rule). None: trace every call.
    ``static_argnums`` / ``static_argnames``: positional / keyword arguments that are Python
    values (they key the trace).
    ``passes``: the pipeline (None: the default). ``inside_raw_jax``: under a raw JAX transform
    (``jax.vmap(brainstate.transform.grad(f))``) run ``fun`` in that trace instead (for
    transforms that need no region); otherwise such a call is refused with a TracerLeakError by
    jit's argument check.
    ``direct_first``: ``fun`` can run outside any trace (it applies a JAX transform to a
    lowered program and writes its states back after: the grad family, vmap). The first call
    of a key then runs ``key.run_directly(args, kwargs)`` (the user's function under the JAX
    transform, no IR; see the module docstring), or ``fun`` where that refuses: JAX evaluates
    the transform op by op, as its own eager ``jax.grad`` does, without tracing the call into
    a program; the second call of that key traces and compiles it (no op-by-op run), and later
    ones run the compiled program untraced.
    """
    from ._jit import JittedFunction, _Entry, _StateSetChanged
    if not outside_any_jax_trace():
        if inside_raw_jax:
            # Under a raw JAX transform (jax.vmap of a brainstate grad): nothing can be
            # compiled or stored here; run in that trace. States are read as stored; a write is
            # refused when it is stored back (state I/O's tracer check), before anything
            # changes.
            return fun(*args, **kwargs)
        # Loops and branches under a raw JAX transform: evaluate the lowered program there.
        return run_in_foreign_trace(fun, args, kwargs, static_argnums=static_argnums,
                                    static_argnames=static_argnames,
                                    passes=passes)
    try:
        return _run_eagerly(fun, args, kwargs, (static_argnums, static_argnames), passes, key,
                            name, direct_first)
    except Exception as error:
        # As JAX does for its own: the traceback shows the user's frames, not ours.
        hide_brainstate_frames(error)
        raise


def _run_eagerly(fun, args, kwargs, statics, passes, key, name, direct_first=False):
    from ._jit import JittedFunction, _Entry, _StateSetChanged
    static_argnums, static_argnames = statics
    owner = JittedFunction(fun, static_argnums=static_argnums,
                           static_argnames=static_argnames, passes=passes, name=name)
    sig = owner.args.signature(args, kwargs)
    described = None if key is None else function_key(
        (key, static_argnums, passes) if not static_argnames else
        (key, static_argnums, static_argnames, passes))
    fast = None if described is None else _Key((described, sig.key))
    if fast is not None:
        found = None
        for candidate in _by_key.get(fast, ()):
            # Not one where some state changed shape or was replaced since, or a
            # brainstate.environ setting or the pipeline it was traced under changed here:
            # the program may no longer fit. None: trace below.
            if candidate[0].epoch == _state.STRUCTURE_EPOCH[0] and \
                    candidate[2].environ_reads.hold():
                found = candidate
                break
        if found is not None:
            entry, consts, program = found
            # (Its first compiled run: JAX traces the program this key traced to.)
            entry.pending = program
            try:
                result = entry(args, kwargs, consts)
            except _StateSetChanged:  # a state's structure changed: trace below
                del _by_key[fast]
            else:
                _by_key.move_to_end(fast)
                _stats['untraced_hits'] += 1
                return result
            finally:
                entry.pending = None
    ran_directly = fast is not None and fast in _ran_directly
    run = getattr(key, 'run_directly', None) if fast is not None and not ran_directly else None
    if run is not None and can_run_directly(passes):
        # A first call: compiling cannot pay off yet; run it as raw JAX would (the module
        # docstring's rule). Its states are written once, after it succeeded.
        with STATE_LOCK:
            try:
                result = run(args, kwargs)
            except Exception:
                # NotDirect, or an error: nothing was stored. The run below handles what a
                # direct run does not, and gives the errors their messages (the user's
                # Python runs again).
                _stats['direct_fallbacks'] += 1
            else:
                _remember(_ran_directly, fast, key)
                _stats['direct'] += 1
                return result
    if direct_first and fast is not None and not ran_directly:
        # (The grad family:) the transform itself evaluates the traced program op by op.
        _remember(_ran_directly, fast, key)
        _stats['direct'] += 1
        with STATE_LOCK:
            return fun(*args, **kwargs)
    if ran_directly:
        # The key's first call ran without compiling: this one compiles. (Where that run
        # traced the user's function into the transform it was, an equal one, this trace
        # reuses it, so the function is not traced twice.)
        earlier = _ran_directly.pop(fast)
        adopt = getattr(key, 'adopt_programs', None)
        if adopt is not None and earlier is not key:
            adopt(earlier)
    program = owner.trace(sig)
    _stats['traces'] += 1
    fingerprint = _fingerprint(program, sig)
    entry = _cache.get(fingerprint)
    # Compiled on its second sighting: of the program, or of a key that ran directly before.
    seen_before = entry is not None or ran_directly
    if entry is None:
        entry = _Entry(owner, program, consts_as_args=True)
        _remember(_cache, fingerprint, entry)
        _stats['compiled_programs'] += 1
    else:
        _cache.move_to_end(fingerprint)
        _stats['hits'] += 1
        entry.trust_states()  # just traced: these are the states the function touches now
    consts = program.lowered.closed_jaxpr.consts
    # A program seen for the first time runs op by op: compiling it with XLA pays off only
    # when it runs again (then it is compiled, once).
    if not seen_before:
        _stats['op_by_op'] += 1
    entry.pending = program
    try:
        result = entry(args, kwargs, consts, compiled=seen_before)
    finally:
        entry.pending = None
    if fast is not None and not program.new_states:
        # (A program that creates States must run its Python each time: not reused untraced.)
        # (Those kept: still fit for the states, traced under other settings or pipelines.)
        earlier = tuple(c for c in _by_key.get(fast, ()) if c[2] is not program and
                        c[0].epoch == _state.STRUCTURE_EPOCH[0] and
                        not c[2].environ_reads.hold())
        _remember(_by_key, fast, ((entry, consts, program),) + earlier[:_PER_KEY - 1])
    return result


def _remember(cache: OrderedDict, key, value):
    cache[key] = value
    if len(cache) > _MAX_CACHED:
        cache.popitem(last=False)


def run_in_foreign_trace(fun: Callable, args: tuple, kwargs: dict, *, static_argnums=(),
                         static_argnames=(), passes=None) -> Any:
    """Run ``fun`` inside a raw JAX transform (``jax.vmap``/``jax.grad``/``jax.jit`` of a
    function calling a brainstate loop or branch): trace it through the one pipeline at the
    tracers' avals and evaluate the lowered program in that JAX trace. States are read as
    stored (constants of that trace); a state write is refused by state I/O's tracer check
    before anything is stored."""
    from ._arguments import ArgumentSpec
    from ._program import trace_program
    from ._state_io import write_back_leaves
    spec = ArgumentSpec(fun, static_argnums, static_argnames)
    sig = spec.signature(args, kwargs, allow_tracers=True)
    program = trace_program(fun, spec, sig, passes=passes)
    lowered = program.lowered
    closed = lowered.closed_jaxpr
    state_leaves = [leaf for s in lowered.read_states for leaf in jax.tree.leaves(s.value)]
    outs = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *state_leaves, *sig.leaves)
    n = lowered.num_outputs
    written = list(lowered.written_states)
    write_back_leaves(written, [s.treedef for s in written], outs[n:],
                      f'{spec.fun_name} (a brainstate transform)')
    return program.out_tree.unflatten(outs[:n])


def call_eagerly(key, build: Callable[..., Any], name: str, *args):
    """``build(*args)`` run eagerly (see :func:`run_eagerly`); ``key`` describes what ``build``
    computes (the operation, the user's functions and options), ``build`` being made anew for
    each call."""
    return run_eagerly(build, args, {}, name=name, key=key)


def eager_cache_info() -> dict:
    """Counters of the eager runner: ``traces`` (calls traced), ``compiled_programs``,
    ``hits`` (traced calls that reused a compiled program), ``untraced_hits`` (calls that ran a
    compiled program without tracing: equal function key, signature, state layout and
    ``brainstate.environ`` settings read), ``op_by_op`` (traced programs run op by op, once),
    ``direct`` (first calls of a key), ``direct_fallbacks`` (first calls that could not run
    directly and ran traced instead, see :mod:`._direct`), ``cached``."""
    return dict(_stats, cached=len(_cache))


def clear_eager_cache():
    """Forget every program compiled for eager calls."""
    _cache.clear()
    _by_key.clear()


def outside_trace() -> bool:
    return not _state.TRACE_STACK
