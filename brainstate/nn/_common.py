"""Wrappers that run a module under a setting or a mapping: ``EnvironContext`` (fixed
``brainstate.environ`` settings), ``Vmap`` (a batched call) and ``Map`` (an ensemble of modules
whose states carry a leading axis)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Sequence

from .. import environ
from .._state import State
from ..util import filter as filters
from ._module import Module

__all__ = ['EnvironContext', 'Vmap', 'Map']


def _transform(name: str):
    """``brainstate.transform.<name>``, looked up when first needed."""
    from .. import transform
    fun = getattr(transform, name, None)
    if fun is None:
        raise NotImplementedError(f'brainstate.transform.{name} is not available in this build.')
    return fun


class EnvironContext(Module):
    """Call ``layer`` inside ``brainstate.environ.context(**context)``.

    Example::

        evaluate = brainstate.nn.EnvironContext(model, fit=False)
        evaluate(x)           # Dropout and BatchNorm in evaluation mode
    """

    __module__ = 'brainstate.nn'

    def __init__(self, layer: Module, **context):
        super().__init__()
        if not isinstance(layer, Module):
            raise AssertionError('The layer must be an instance of Module.')
        self.layer = layer
        self.context = context

    def update(self, *args, context: dict | None = None, **kwargs):
        with environ.context(**self.context, **(context or {})):
            return self.layer(*args, **kwargs)

    def add_context(self, **context):
        """Add or replace settings."""
        self.context.update(context)


def _filter_states(module: Module, filters_):
    """The states of ``module`` a filter selects; for ``{filter: axis}``, ``{axis: states}``."""
    if filters_ is None:
        return None
    if isinstance(filters_, dict):
        by_axis = defaultdict(list)
        for f, axis in filters_.items():
            if not isinstance(axis, int):
                raise AssertionError('The value of in_states must be the map axis, which should '
                                     'be an integer.')
            by_axis[axis].append(f)
        selected = module.states(*by_axis.values())
        if len(by_axis) == 1:
            selected = (selected,)
        return dict(zip(by_axis.keys(), selected))
    return module.states(filters_)


class Vmap(Module):
    """Call ``module`` batched over ``in_axes`` (``brainstate.transform.vmap``), with the states
    ``vmap_states`` selects mapped too."""

    __module__ = 'brainstate.nn'

    def __init__(self, module: Module, in_axes: Any = 0, out_axes: Any = 0, vmap_states=None,
                 vmap_out_states=None, axis_name=None, axis_size: int | None = None):
        super().__init__()
        if not isinstance(module, Module):
            raise AssertionError('The module must be an instance of Module.')
        self.in_axes, self.out_axes = in_axes, out_axes
        self.axis_name, self.axis_size = axis_name, axis_size
        self.module = module
        options = {'in_axes': in_axes, 'out_axes': out_axes, 'axis_name': axis_name,
                   'axis_size': axis_size}
        in_states = _filter_states(module, vmap_states)
        out_states = _filter_states(module, vmap_out_states)
        if in_states is not None:
            options['in_states'] = in_states
        if out_states is not None:
            options['out_states'] = out_states
        self.vmapped_fn = _transform('vmap')(lambda *a, **k: module(*a, **k), **options)

    def update(self, *args, **kwargs):
        return self.vmapped_fn(*args, **kwargs)


def _check_behavior(behavior):
    if behavior not in ('vmap', 'pmap'):
        raise ValueError('Invalid behavior specified. Must be "vmap" or "pmap".')


class ToPredicate:
    """A filter matching exactly the given states."""

    def __init__(self, states):
        self.state_ids = {id(s) for s in states}

    def __call__(self, path, state: State):
        return id(state) in self.state_ids


class _MapCaller:
    """A method of the mapped module, called over the ensemble."""

    def __init__(self, fn: Callable, behavior: str, in_axes: Any = 0, out_axes: Any = 0,
                 axis_name=None, state_axes=None):
        if behavior not in ('vmap', 'pmap'):
            raise ValueError('Invalid behavior specified. Must be "vmap" or "pmap".')
        self.in_axes, self.out_axes, self.axis_name = in_axes, out_axes, axis_name
        self.state_axes, self.behavior = state_axes, behavior
        self.map_fn = _transform(behavior + '2')(fn, in_axes=in_axes, out_axes=out_axes,
                                                 axis_name=axis_name, state_in_axes=state_axes,
                                                 state_out_axes=state_axes)

    def __call__(self, *args, **kwargs):
        return self.map_fn(*args, **kwargs)


class Map(Module):
    """An ensemble of ``init_map_size`` copies of ``module``: ``init_all_states`` creates
    their states with a leading axis of that size (``vmap2_new_states``); a call maps the
    module over it.

    Example::

        ensemble = brainstate.nn.Map(Neuron(100), init_map_size=8)
        ensemble.init_all_states()
        ensemble(x)                     # 8 lanes
    """

    __module__ = 'brainstate.nn'

    def __init__(self, module: Module, init_map_size: int, init_state_axes=None,
                 state_tag: str | None = None, in_axes=0, out_axes=0, axis_name=None,
                 spmd_axis_name=None, call_state_axes=None, behavior: str = 'vmap'):
        super().__init__()
        if not isinstance(init_map_size, int):
            raise AssertionError('init_map_size must be an integer.')
        if behavior not in ('vmap', 'pmap'):
            raise AssertionError('behavior must be either "vmap" or "pmap".')
        self.init_map_size = init_map_size
        self.module = module
        self.state_tag = state_tag
        self.in_axes, self.out_axes = in_axes, out_axes
        self.axis_name, self.spmd_axis_name = axis_name, spmd_axis_name
        self.call_state_axes = call_state_axes
        self.init_state_axes = init_state_axes
        self.dict_vmap_states = None
        self.behavior = behavior
        self._init = False
        self._call_state_axes = None

    def __pretty_repr_item__(self, name, value):
        if name in ('_init', 'dict_vmap_states', '_call_state_axes'):
            return None
        return name, value

    def _integrate_state_axes(self, call_state_axes):
        axes = dict(call_state_axes or {})
        for k, v in tuple(axes.items()):
            if k in self.dict_vmap_states:
                axes[k] = filters.Any(v, ToPredicate(self.dict_vmap_states[k]))
        for k, v in self.dict_vmap_states.items():
            axes.setdefault(k, ToPredicate(v))
        return axes

    def init_all_states(self, **kwargs):
        """Create the ensemble's states (``init_state(**kwargs)`` once per lane)."""
        _check_behavior(self.behavior)
        new_states = _transform(self.behavior + '2_new_states')
        self.dict_vmap_states = new_states(self.module, kwargs, state_tag=self.state_tag,
                                           axis_size=self.init_map_size,
                                           state_out_axes=self.init_state_axes)
        self._call_state_axes = self._integrate_state_axes(self.call_state_axes)
        self._init = True

    def _check_init(self):
        if not self._init:
            raise ValueError('Map.update called before init_all_states. Please call '
                             'init_all_states first.')

    def update(self, *args, **kwargs):
        self._check_init()
        _check_behavior(self.behavior)
        options = dict(in_axes=self.in_axes, out_axes=self.out_axes, axis_name=self.axis_name,
                       state_in_axes=self._call_state_axes, state_out_axes=self._call_state_axes)
        if self.behavior == 'vmap':
            options['spmd_axis_name'] = self.spmd_axis_name
        return _transform(self.behavior + '2')(self.module, **options)(*args, **kwargs)

    def map(self, fn, in_axes: Any = 0, out_axes: Any = 0, axis_name=None, state_axes=None):
        """Map another method (or function) of the module over the ensemble."""
        if isinstance(fn, str):
            try:
                fn = getattr(self.module, fn)
            except AttributeError:
                raise AttributeError(f'Module has no method named {fn}.') from None
        if not callable(fn):
            raise AssertionError('fn must be a callable or the name of a method.')
        self._check_init()
        return _MapCaller(fn, self.behavior, in_axes, out_axes, axis_name,
                          self._integrate_state_axes(state_axes))
