"""Module: the base class of models (a tree of states and sub-modules), and Sequential.

``brainstate.Module`` and ``brainstate.nn.Module`` are one class, defined here: a
:class:`brainstate.graph.Node` with the published layer API (``in_size``/``out_size``, ``update``,
``init_state``/``reset_state``, ``desc``, parameter views).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np

from .._errors import BrainStateError
from .._state import ParamState
from ..graph import Node
from ._support import ParamDesc, ParamDescriber

__all__ = ['Module', 'ElementWiseBlock', 'Sequential']

_MAX_DEPTH = np.iinfo(np.int32).max


def _format_size(size, attr: str) -> tuple:
    """An ``in_size``/``out_size`` as a tuple of ints (an int, a 0-d integer numpy value, or a
    tuple/list)."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        return (int(size),)
    if isinstance(size, (np.generic, np.ndarray)) and np.ndim(size) == 0:
        if np.issubdtype(np.asarray(size).dtype, np.integer):
            return (int(size),)
        raise AssertionError(f'{attr} must be an integer, got {size!r} of dtype '
                             f'{np.asarray(size).dtype}.')
    if not isinstance(size, (tuple, list)):
        raise AssertionError(f'Invalid type of {attr}: {type(size)}; give an int or a tuple of '
                             f'ints.')
    return tuple(size)


def _dotted(path: tuple) -> str:
    return '.'.join(str(p) for p in path)


class Module(Node, ParamDesc):
    """Base class of models and layers: assign States and sub-Modules as attributes.

    Subclasses define ``update(...)`` (what a call computes); ``module(x)`` and ``x >> module``
    call it. Layers record the size of one input sample in ``in_size`` and of one output in
    ``out_size`` (tuples; an int is normalised to ``(n,)``), which lets :class:`Sequential`
    build layers described with ``Layer.desc(...)`` from the previous layer's output size.

    Args:
      name: an optional display name (read-only afterwards).

    Example::

        class Scale(brainstate.nn.Module):
            def __init__(self, n):
                super().__init__()
                self.in_size = self.out_size = n
                self.w = brainstate.ParamState(jnp.ones(n))

            def update(self, x):
                return x * self.w.value

        Scale(3)(jnp.ones(3))            # Array([1., 1., 1.])
        Scale(3).states(brainstate.ParamState)   # {('w',): ParamState(...)}
    """

    __module__ = 'brainstate.nn'

    # Attribute names left out of the repr.
    graph_invisible_attrs = ()

    def __init__(self, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise AssertionError(f'The name must be a string, but we got {type(name)}: {name}')
        self._name = name
        self._in_size = None
        self._out_size = None

    # -- identity and sizes ------------------------------------------------------------------

    @property
    def name(self):
        """The module's name (``None`` unless given)."""
        return self.__dict__.get('_name')

    @name.setter
    def name(self, name):
        raise AttributeError('The name of the model is read-only.')

    @property
    def in_size(self):
        """The shape of one input sample (a tuple), or ``None`` when unknown."""
        return self.__dict__.get('_in_size')

    @in_size.setter
    def in_size(self, in_size):
        self._in_size = _format_size(in_size, 'in_size')

    @property
    def out_size(self):
        """The shape of one output sample (a tuple), or ``None`` when unknown."""
        return self.__dict__.get('_out_size')

    @out_size.setter
    def out_size(self, out_size):
        self._out_size = _format_size(out_size, 'out_size')

    # -- calling ---------------------------------------------------------------------------------

    def update(self, *args, **kwargs):
        """What a call computes. Subclasses define it."""
        raise NotImplementedError(
            f'The module {type(self).__name__} must implement "update" function (what a call '
            f'computes): define `update(self, ...)` in the subclass.')

    def __call__(self, *args, **kwargs):
        return self.update(*args, **kwargs)

    def __rrshift__(self, other):
        """``x >> module`` is ``module(x)``."""
        return self.__call__(other)

    # -- states and sub-modules ------------------------------------------------------------

    def states(self, *filters, allowed_hierarchy=(0, _MAX_DEPTH)):
        """The states of this tree keyed by path (see :func:`brainstate.graph.states`).

        ``allowed_hierarchy=(low, high)`` keeps the states whose owning module lies ``low`` to
        ``high`` levels below this one (``(1, 1)``: the direct attributes only).
        """
        from ..graph import states as graph_states
        from ..graph._node import _register_tree
        _register_tree(self)  # states appended later get their path label
        selected = graph_states(self, *filters)
        return _bound_levels(self, selected, allowed_hierarchy, state=True)

    def state_trees(self, *filters):
        """The states as a nested mapping (``{'layer': {'w': state}}``), optionally filtered."""
        from .. import graph
        if hasattr(graph, 'flatten'):
            _, tree = graph.flatten(self)
            return tree.filter(*filters) if filters else tree
        flat = self.states(*filters) if filters else self.states()
        if isinstance(flat, tuple):
            return tuple(_nest(f) for f in flat)
        return _nest(flat)

    def nodes(self, *filters, allowed_hierarchy=(0, _MAX_DEPTH)):
        """The modules of this tree keyed by path, itself at ``()``; ``allowed_hierarchy``
        bounds the depth (``(1, 1)``: the direct children)."""
        from ..graph import nodes as graph_nodes
        selected = graph_nodes(self, *filters)
        return _bound_levels(self, selected, allowed_hierarchy, state=False)

    def children(self) -> Iterator['Module']:
        """The direct sub-modules."""
        for _, module in self.named_children():
            yield module

    def named_children(self):
        """``(name, module)`` for each direct sub-module."""
        for path, child in self.nodes(Module, allowed_hierarchy=(1, 1)).items():
            yield _dotted(path), child

    def modules(self, include_self: bool = True) -> Iterator['Module']:
        """Every module of the tree (this one first when ``include_self``)."""
        for _, module in self.named_modules(include_self=include_self):
            yield module

    def named_modules(self, prefix: str = '', include_self: bool = True):
        """``(dotted path, module)`` for every module of the tree."""
        low = 0 if include_self else 1
        for path, module in self.nodes(allowed_hierarchy=(low, _MAX_DEPTH)).items():
            name = _dotted(path)
            if prefix:
                name = f'{prefix}.{name}' if name else prefix
            yield name, module

    def param_modules(self, allowed_hierarchy=(0, _MAX_DEPTH)):
        """The :class:`~brainstate.nn.Param` modules of the tree."""
        for _, module in self.named_param_modules(allowed_hierarchy=allowed_hierarchy):
            yield module

    def named_param_modules(self, allowed_hierarchy=(0, _MAX_DEPTH)):
        """``(dotted path, Param)`` for the Param modules of the tree."""
        from ._param import Param
        for path, param in self.nodes(Param, allowed_hierarchy=allowed_hierarchy).items():
            yield _dotted(path), param

    def reg_loss(self):
        """The sum of the regularisation losses of every Param of the tree (0.0 if none)."""
        params = tuple(self.param_modules())
        if not params:
            return 0.0
        return sum(p.reg_loss() for p in params)

    @contextmanager
    def param_precompute(self, allowed_hierarchy=(0, _MAX_DEPTH)):
        """Within the block, every Param's transformed value is computed once and cached."""
        params = list(self.param_modules(allowed_hierarchy=allowed_hierarchy))
        for p in params:
            p.cache()
        try:
            yield
        finally:
            for p in params:
                p.clear_cache()

    def parameters(self, recurse: bool = True) -> Iterator[ParamState]:
        """The ParamStates of the tree (only this module's own with ``recurse=False``)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_parameters(self, prefix: str = '', recurse: bool = True):
        """``(dotted path, ParamState)`` for the parameters of the tree."""
        params = (self.states(ParamState) if recurse
                  else self.states(ParamState, allowed_hierarchy=(1, 1)))
        for path, param in params.items():
            name = _dotted(path)
            yield (f'{prefix}.{name}' if prefix else name), param

    # -- run-dependent states ----------------------------------------------------------------

    def init_state(self, *args, **kwargs):
        """Create the states that depend on the run (a batch size, say). A no-op by default;
        :func:`brainstate.nn.init_all_states` calls it over a whole tree."""

    def reset_state(self, *args, **kwargs):
        """Put the run-dependent states back to their initial values. A no-op by default."""

    def init_all_states(self, *args, state_tag: str | None = None, **kwargs):
        """Call ``init_state`` over the whole tree (see :func:`brainstate.nn.init_all_states`)
        and return what catching the new states gives (the module where that is not
        available)."""
        from ._collective_ops import init_all_states
        from .. import _state
        catch = getattr(_state, 'catch_new_states', None)
        if catch is None:
            init_all_states(self, *args, **kwargs)
            return self
        with catch(state_tag=state_tag) as catcher:
            init_all_states(self, *args, **kwargs)
        return catcher

    # -- printing ------------------------------------------------------------------------------

    def __pretty_repr_item__(self, name, value):
        """How an attribute shows in the repr: ``None`` hides it, else ``(name, value)``."""
        if name in type(self).graph_invisible_attrs or value is None:
            return None
        if name.startswith('_bs_'):
            return None
        if name.startswith('_'):
            name = name[1:]
        return name, value

    def __repr__(self):
        items = []
        for name, value in vars(self).items():
            item = self.__pretty_repr_item__(name, value)
            if item is not None:
                items.append(f'{item[0]}={_short(item[1])}')
        return f'{type(self).__name__}({", ".join(items)})'


def _short(value) -> str:
    # An array-like instance shows its shape and dtype; a class (e.g. ``np.float32`` held as a
    # layer's dtype has ``shape``/``dtype`` descriptors, not values) shows as itself.
    if (hasattr(value, 'shape') and hasattr(value, 'dtype') and not isinstance(value, type)
            and not isinstance(value, Module)):
        return f'{type(value).__name__}(shape={tuple(value.shape)}, dtype={value.dtype})'
    text = repr(value)
    return text if len(text) < 200 else text[:197] + '...'


def _level(root, path: tuple, state: bool) -> int:
    """How many graph nodes below ``root`` the object at ``path`` lies (a state counts the
    level of the module holding it; list and dict entries add no level)."""
    level, obj = 0, root
    for key in (path[:-1] if state else path):
        obj = obj[key] if isinstance(obj, (list, tuple, dict)) else getattr(obj, key)
        if isinstance(obj, Node):
            level += 1
    return level


def _bound_levels(root, selected, allowed_hierarchy, state: bool):
    low, high = allowed_hierarchy
    if low <= 0 and high >= _MAX_DEPTH:
        return selected
    keep = lambda path, obj: low <= _level(root, path, state) <= high
    if isinstance(selected, tuple):
        return tuple(s.filter(keep) for s in selected)
    return selected.filter(keep)


def _nest(flat) -> dict:
    tree: dict = {}
    for path, state in flat.items():
        at = tree
        for key in path[:-1]:
            at = at.setdefault(key, {})
        at[path[-1]] = state
    return tree


class ElementWiseBlock(Module):
    """A layer whose output has its input's shape (``Sequential`` passes the size through)."""

    __module__ = 'brainstate.nn'


class Sequential(Module):
    """Apply layers in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    The first layer is a Module; the others are Modules, plain functions (``brainstate.nn.relu``)
    or descriptions ``Layer.desc(...)``, which are built with ``in_size`` set to the previous
    layer's ``out_size``. Index it by int (a layer), slice or tuple of ints (a new Sequential).

    Example::

        mlp = brainstate.nn.Sequential(
            brainstate.nn.Linear(64, 128), brainstate.nn.relu,
            brainstate.nn.Linear.desc(out_size=10))      # in_size (128,) inferred
        mlp.out_size                                    # (10,)
    """

    __module__ = 'brainstate.nn'

    def __init__(self, first: Module, *layers):
        super().__init__()
        if isinstance(first, (list, tuple)) and not layers:
            first, *layers = first
        if not isinstance(first, Module):
            raise AssertionError(f'The first module should be an instance of Module, got '
                                 f'{type(first).__name__}.')
        self.layers = [first]
        size = first.out_size
        for layer in layers:
            layer, size = self._format_module(layer, size)
            self.layers.append(layer)
            self.layers = self.layers
        if first.in_size is not None:
            self.in_size = first.in_size
        if size is not None:
            self.out_size = tuple(size)

    def update(self, x):
        """Run the layers one after the other."""
        for layer in self.layers:
            try:
                x = layer(x)
            except Exception as e:
                raise BrainStateError(
                    f'The module \n{layer}\nfailed to update with input {x}\n') from e
        return x

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._from_layers(self.layers[key])
        if isinstance(key, (int, np.integer)):
            return self.layers[key]
        if isinstance(key, (tuple, list)):
            return self._from_layers([self.layers[k] for k in key])
        raise KeyError(f'Unknown type of key: {type(key)}; index a Sequential by int, slice or '
                       f'tuple of ints.')

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    @classmethod
    def _from_layers(cls, layers):
        layers = list(layers)
        if not layers:
            empty = cls.__new__(cls)
            Module.__init__(empty)
            empty.layers = []
            return empty
        return cls(*layers)

    def append(self, layer: Callable):
        """Add a layer (Module, function or description) at the end."""
        if not self.layers:
            raise ValueError('The first layer should be a module, not a function.')
        module, size = self._format_module(layer, self.out_size)
        self.layers.append(module)
        self.layers = self.layers
        self._out_size = None if size is None else tuple(size)

    def extend(self, layers: Sequence):
        """Add several layers at the end."""
        if not self.layers:
            raise ValueError('Cannot extend an empty Sequential. Use __init__ to add the first '
                             'module.')
        size = self.out_size
        for layer in layers:
            layer, size = self._format_module(layer, size)
            self.layers.append(layer)
        self.layers = self.layers
        if size is not None:
            self.out_size = size

    def insert(self, index: int, layer):
        """Insert a layer before position ``index`` and re-infer the sizes after it."""
        if not self.layers:
            if index != 0:
                raise ValueError('Cannot insert into empty Sequential at non-zero index. Use '
                                 '__init__ or index=0.')
            if not isinstance(layer, Module):
                raise ValueError('The first module in Sequential must be a Module instance, not '
                                 'a callable.')
            self.layers = [layer]
            if layer.in_size is not None:
                self.in_size = layer.in_size
            if layer.out_size is not None:
                self.out_size = layer.out_size
            return
        n = len(self.layers)
        if index < 0:
            index = max(0, n + index + 1)
        if index > n:
            raise IndexError(f'Index {index} is out of range for Sequential with {n} layers.')
        size = self.in_size if index == 0 else self.layers[index - 1].out_size
        module, size = self._format_module(layer, size)
        self.layers.insert(index, module)
        for i in range(index + 1, len(self.layers)):
            self.layers[i], size = self._format_module(self.layers[i], size)
        self.layers = self.layers
        if index == 0 and module.in_size is not None:
            self.in_size = module.in_size
        if size is not None:
            self.out_size = size

    def _format_module(self, module, in_size):
        try:
            if isinstance(module, ParamDescriber):
                if in_size is None:
                    raise ValueError(
                        f'The input size should be specified. Please set the in_size attribute '
                        f'of the previous module: \n{self.layers[-1] if self.layers else None}')
                module = module(in_size=in_size)
                if not isinstance(module, Module):
                    raise AssertionError('The module should be an instance of Module.')
                out_size = module.out_size
            elif isinstance(module, ElementWiseBlock):
                out_size = in_size
            elif isinstance(module, Module):
                out_size = module.out_size
            elif callable(module):
                out_size = in_size
            else:
                raise TypeError(f'Unsupported type {type(module)}. ')
        except Exception as e:
            raise BrainStateError(f'Failed to format the module: \n{module}\nwith input size: '
                                  f'{in_size}\n') from e
        return module, out_size
