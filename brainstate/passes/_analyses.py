"""Analyses: facts about states recorded in ``node.meta`` (and so in ``graph.format()``).

* ``read-only-states``: every ``state_read`` of a state the graph never writes gets
  ``meta['read_only'] = True`` (its value is passed in and never written back).
* ``donation``: in a canonical graph, the entry read of every state written at exit gets
  ``meta['donate'] = True``: its old buffer can be handed to XLA for the new value.
"""

from __future__ import annotations

from ._pass import PassStatistics, register

__all__ = ['analyze_read_only_states', 'analyze_donation']


@register('read-only-states')
def analyze_read_only_states(graph, stats=None):
    """Mark the reads of states that the graph never writes (meta read_only)."""
    stats = PassStatistics() if stats is None else stats
    # A canonical graph holds its state operations at its edges, none in region bodies.
    recursive = not graph.meta.get('canonical')
    written = {n.state for n in graph.find_nodes('state_write', recursive=recursive)}
    read_only = 0
    for node in graph.find_nodes('state_read', recursive=recursive):
        node.meta['read_only'] = node.state not in written
        read_only += node.meta['read_only']
    if read_only:
        stats['read-only states'] += read_only
    return graph



@register('donation')
def analyze_donation(graph, stats=None):
    """Mark entry reads whose buffer can be donated: the state is overwritten at exit."""
    stats = PassStatistics() if stats is None else stats
    if not graph.meta.get('canonical'):
        return graph
    written = {n.state for n in graph.find_nodes('state_write', recursive=False)}
    donated = 0
    for node in graph.find_nodes('state_read', recursive=False):
        node.meta['donate'] = node.state in written
        donated += node.meta['donate']
    if donated:
        stats['donatable states'] += donated
    return graph
