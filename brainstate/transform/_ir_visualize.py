"""Pictures of a jaxpr as a pydot graph (the published ``draw``, ``draw_dot_graph``,
``view_pydot``), drawn by brainstate's IR exporter (:meth:`brainstate.ir.Graph.to_dot`).

They need the optional ``pydot`` package; without it each raises ``NotImplementedError``
saying how to get one (the IR's own ``graph.to_dot()`` / ``to_svg()`` / ``to_html()`` need no
pydot). Importing this module never fails.

Example::

    g = brainstate.transform.draw(f)(jnp.arange(3.0))   # a pydot.Dot
    g.write_svg('f.svg')
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import jax
import jax.extend.core as jex_core

__all__ = ['draw', 'view_pydot', 'draw_dot_graph']


def _pydot():
    if importlib.util.find_spec('pydot') is None:
        raise NotImplementedError(
            'pydot is not installed: `pip install pydot` to get pydot pictures. Without it, '
            'brainstate.ir.graph_from_jaxpr(jaxpr).to_dot() gives the DOT text and .to_svg() '
            'or .to_html() a picture.')
    import pydot
    return pydot


def draw_dot_graph(fn, collapse_primitives: bool = True, show_avals: bool = True):
    """A ``pydot.Dot`` picture of ``fn``: a ClosedJaxpr (or a ``brainstate.ir.Graph``).

    ``collapse_primitives`` and ``show_avals`` are accepted for compatibility: the picture is
    brainstate's IR drawing, with ``jax.jit`` calls inlined and every value's type shown.
    """
    pydot = _pydot()
    from ..ir import Graph, graph_from_jaxpr
    if isinstance(fn, jex_core.Jaxpr):
        fn = jex_core.ClosedJaxpr(fn, [])
    if isinstance(fn, jex_core.ClosedJaxpr):
        fn = graph_from_jaxpr(fn, name='jaxpr')
    if not isinstance(fn, Graph):
        raise TypeError(f'draw_dot_graph: expected a ClosedJaxpr, a Jaxpr or a '
                        f'brainstate.ir.Graph, got {type(fn).__name__}.')
    graphs = pydot.graph_from_dot_data(fn.to_dot())
    return graphs[0]


def draw(f: Callable, collapse_primitives: bool = True, show_avals: bool = True) -> Callable:
    """Wrap ``f``: calling the wrapper with example arguments returns a ``pydot.Dot`` picture
    of ``jax.make_jaxpr(f)(*args, **kwargs)`` (see :func:`draw_dot_graph`)."""
    _pydot()

    def drawn(*args, **kwargs):
        return draw_dot_graph(jax.make_jaxpr(f)(*args, **kwargs), collapse_primitives,
                              show_avals)

    return drawn


def view_pydot(dot_graph) -> None:
    """Show a pydot picture in a Jupyter notebook (needs IPython and Graphviz)."""
    _pydot()
    from IPython.display import Image, display
    display(Image(dot_graph.create_png()))
