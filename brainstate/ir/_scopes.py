"""Nodes by the ``jax.named_scope`` they were traced in.

JAX records the scope of every equation in its source information (``name_stack``); the graph
keeps it on each node (``Node.source_info``), calls inlined from ``jax.jit`` helpers included.
brainstate traces a loop's progress bar (``pbar=``: the iteration counter and the host
callbacks) in the scope ``brainstate_progress_bar``, so pictures can fold that bookkeeping into
one box.
"""

from __future__ import annotations

__all__ = ['in_scope', 'scope_nodes', 'progress_bar_nodes', 'PROGRESS_BAR_SCOPE']

# The same name as brainstate/transform/_progress_bar.py's (not imported: the IR does not
# depend on the transforms).
PROGRESS_BAR_SCOPE = 'brainstate_progress_bar'


def in_scope(node, scope: str) -> bool:
    """Whether ``node`` was traced inside ``jax.named_scope(scope)`` (at any depth)."""
    info = node.source_info
    stack = getattr(info, 'name_stack', None) if info is not None else None
    if not stack:
        return False
    return scope in str(stack).replace('(', '/').replace(')', '/').split('/')


def scope_nodes(graph, scope: str) -> list:
    """The nodes of ``graph`` and of its region bodies traced inside ``jax.named_scope(scope)``,
    in program order."""
    return [node for node in graph.walk() if in_scope(node, scope)]


def progress_bar_nodes(graph) -> list:
    """The nodes of ``graph`` (region bodies included) that keep a loop's progress bar: the
    iteration counter and the host callbacks that draw the bar (``for_loop(..., pbar=...)``).

    Example::

        graph = brainstate.ir.trace(simulate, currents)
        len(brainstate.ir.progress_bar_nodes(graph))   # 0 without pbar=
    """
    return scope_nodes(graph, PROGRESS_BAR_SCOPE)
