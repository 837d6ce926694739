"""The pipeline the transforms run, and the global setting that chooses it.

Whatever lowering needs to be legal (hoist-states) runs regardless of the pipeline chosen, so
``jit(f, passes=[])`` computes the same results as the default, only unoptimized.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading

from .. import _state

from ._manager import DEFAULTS as _MANAGER_DEFAULTS, PassManager, parse_pipeline
from ._pass import get_pass

__all__ = ['DEFAULT_PIPELINE', 'set_default_pipeline', 'get_default_pipeline',
           'default_pipeline', 'set_pass_options', 'optimize', 'pipeline_key', 'pipeline_holds']

DEFAULT_PIPELINE = 'hoist-states,dead-writes,fold-constants,cse,dce,read-only-states,donation'
DEFAULT_PASS_NAMES = tuple(DEFAULT_PIPELINE.split(','))

_settings = {'pipeline': DEFAULT_PIPELINE, 'verify': False, 'print_ir': None, 'stream': None,
             'capture_reproducer': False}

# The pipeline a ``with default_pipeline(...)`` block chooses, in force in that block's thread
# (and asyncio task) only: a context variable, so that blocks entered and left by several threads
# in any order never restore one another's choice into the global setting. ``_UNSET`` outside
# any block: ``_settings['pipeline']`` (set by set_default_pipeline) applies.
_UNSET = object()
_scoped_pipeline = contextvars.ContextVar('brainstate_default_pipeline', default=_UNSET)

#: How many ``default_pipeline`` blocks are open, in all threads together. While any is, threads
#: may see different pipelines: jit's cached calls, which do not look at the thread, are not
#: armed (``transform/_jit.py``: ``_Entry.arm``), and every call checks its thread's pipeline.
OPEN_BLOCKS = [0]
_OPEN_LOCK = threading.Lock()


def _global_choice() -> tuple:
    """What the global settings choose for a trace's passes: ``(pipeline, options)``, the
    default pipeline (a list as a tuple of its entries at the time) and the pass options a
    PassManager is made with."""
    pipeline = _settings['pipeline']
    if isinstance(pipeline, list):
        pipeline = tuple(pipeline)
    return pipeline, (_settings['verify'], _settings['print_ir'], _settings['stream'],
                      _settings['capture_reproducer'])


def _same_choice(a, b) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # an entry that cannot be compared: treat as changed
        return False


# The global choice in force (replaced only by a different one, so an unchanged choice keeps
# its object and ``pipeline_holds`` answers by identity).
_GLOBAL = [_global_choice()]


def _changed() -> None:
    """The global pipeline or pass options were set: if that changed the choice, compiled
    programs traced under another one retrace at their next call (each cache compares
    :func:`pipeline_key`; jit's cached calls take the general path once). Setting them to what
    they are changes nothing; setting them back to an earlier choice makes the programs
    traced under it valid again."""
    choice = _global_choice()
    if not _same_choice(choice, _GLOBAL[0]):
        _GLOBAL[0] = choice
        _state.recheck_cached_calls()


def pipeline_key():
    """What decides the passes a trace runs here, beyond its own ``passes=``: the global
    pipeline and pass options, with None; inside a :func:`default_pipeline` block of this
    thread, the global pass options and the block's pipeline. A compiled program is reused
    only while this is what it was when it was traced."""
    scoped = _scoped_pipeline.get()
    if scoped is _UNSET:
        return _GLOBAL[0], None
    return _GLOBAL[0][1], scoped


def pipeline_holds(key) -> bool:
    """Whether :func:`pipeline_key` is still ``key`` here (cheaper than comparing a new one)."""
    scoped = _scoped_pipeline.get()
    if scoped is _UNSET:
        return key[1] is None and _same_choice(key[0], _GLOBAL[0])
    return (key[1] is scoped or key[1] is not None and _same_choice(key[1], scoped)) and \
        _same_choice(key[0], _GLOBAL[0][1])


def _current_pipeline():
    """The default pipeline in force here: the innermost ``default_pipeline`` block's of this
    thread, else the global one."""
    scoped = _scoped_pipeline.get()
    return _settings['pipeline'] if scoped is _UNSET else scoped


def set_default_pipeline(pipeline) -> None:
    """Choose the pipeline every transform uses when not given ``passes=``: a string, a list
    of names / passes, or ``[]`` for only what lowering needs. A global setting, for every
    thread; inside a :func:`default_pipeline` block that block's pipeline still applies until
    the block ends."""
    PassManager(pipeline)  # fail now on an unknown name
    _settings['pipeline'] = pipeline
    _changed()


def get_default_pipeline():
    """The pipeline transforms use when not given ``passes=`` (here: in this thread, inside
    any :func:`default_pipeline` block)."""
    return _current_pipeline()


@contextlib.contextmanager
def default_pipeline(pipeline):
    """Use ``pipeline`` as the default inside a ``with`` block, in the thread (or asyncio task)
    running it: other threads keep theirs, blocks nest, and leaving a block (also by an
    exception) restores what was in force when it was entered."""
    PassManager(pipeline)  # fail now on an unknown name
    with _OPEN_LOCK:
        OPEN_BLOCKS[0] += 1
    token = _scoped_pipeline.set(pipeline)
    # (Counted before the bump: a cached call armed before it was counted runs no more.)
    _state.recheck_cached_calls()  # (programs compare pipeline_key, which changed here)
    try:
        yield
    finally:
        try:
            _scoped_pipeline.reset(token)
        finally:  # (closed also where the reset fails: left from another context)
            with _OPEN_LOCK:
                OPEN_BLOCKS[0] -= 1
            _state.recheck_cached_calls()


def set_pass_options(*, verify: bool | None = None, print_ir: str | None = 'unchanged',
                     stream=None, capture_reproducer: bool | None = None,
                     reproducer_dir: str | None = None) -> None:
    """Instrument the transforms' pipelines: verify the IR after each pass, print it
    (``print_ir='after'``, ``'changed'``, ...), keep the IR before each pass for a failure's
    reproducer, and choose the folder reproducers are written to (when a pass fails; default:
    ``$BRAINSTATE_REPRODUCER_DIR`` or the temporary folder; it applies to every PassManager not
    given its own ``reproducer_dir``). Verification and capture are off by default for speed."""
    if print_ir not in ('unchanged', None, 'before', 'after', 'both', 'changed'):
        # (checked here, not at every transform's next trace)
        raise ValueError(f"print_ir must be None, 'before', 'after', 'both' or 'changed', "
                         f"got {print_ir!r}.")
    if reproducer_dir is not None:
        _MANAGER_DEFAULTS['reproducer_dir'] = str(reproducer_dir)
    if verify is not None:
        _settings['verify'] = verify
    if capture_reproducer is not None:
        _settings['capture_reproducer'] = capture_reproducer
    if print_ir != 'unchanged':
        _settings['print_ir'] = print_ir
    if stream is not None:
        _settings['stream'] = stream
    _changed()


def optimize(graph, passes=None, analyses=()):
    """Run ``passes`` (None: the default pipeline) on ``graph``, then whatever lowering needs
    (hoist-states, when the pipeline did not run it), then ``analyses`` (passes a transform
    needs, such as vmap's ``batching-analysis``): all in one :class:`PassManager`.

    Returns the PassManager that ran, so its records can be inspected.
    """
    if passes is None:
        passes = _current_pipeline()
    if isinstance(passes, PassManager):
        manager = passes
        if analyses or 'hoist-states' not in [p.name for p in manager.passes]:
            manager = _with_requirements(manager, manager.passes, analyses)
    else:
        chosen = parse_pipeline(passes)
        manager = _with_requirements(None, chosen, analyses)
    try:
        manager.run(graph)
    finally:
        if manager is not passes and isinstance(passes, PassManager):
            # The user's manager (``jit(f, passes=manager)``) reports what ran for it, the
            # passes added for lowering included: ``manager.report()`` after the call.
            passes.records = manager.records
    return manager


def _with_requirements(template, chosen, analyses):
    """A PassManager running ``chosen``, hoist-states unless ``chosen`` has it, and
    ``analyses``, with the global instrumentation settings (or ``template``'s)."""
    chosen = list(chosen)
    if not any(p.name == 'hoist-states' for p in chosen):
        chosen.append(get_pass('hoist-states'))
    chosen += parse_pipeline(list(analyses))
    if template is not None:
        return PassManager(chosen, verify=template.verify, print_ir=template.print_ir,
                           stream=template.stream, reproducer_dir=template.reproducer_dir,
                           capture_reproducer=template.capture_reproducer,
                           observer=template.observer)
    return PassManager(chosen, verify=_settings['verify'], print_ir=_settings['print_ir'],
                       stream=_settings['stream'],
                       capture_reproducer=_settings['capture_reproducer'])
