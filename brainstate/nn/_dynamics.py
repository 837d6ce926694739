"""Dynamics: the base class of dynamical systems (neuron groups, synapses) and the prefetch
API that reads another module's state now or with a delay.

A ``Dynamics`` has a size (``in_size``, also its ``varshape`` and ``out_size``) and may carry
*before-updates* and *after-updates*: modules called before / after its ``update`` on every
call. Delays hang there: ``neuron.prefetch_delay('V', 2.0)`` registers a
:class:`~brainstate.nn.StateWithDelay` recording ``neuron.V`` after each update, and
``neuron.output_delay(1.0)`` a :class:`~brainstate.nn.Delay` of the update's output.

Example::

    class LIF(brainstate.nn.Dynamics):
        def __init__(self, n, tau=10.):
            super().__init__(n)
            self.tau = tau

        def init_state(self, batch_size=None):
            self.V = brainstate.HiddenState(jnp.zeros(self.varshape))

        def update(self, I):
            self.V.value = brainstate.nn.exp_euler_step(lambda v: (-v + I) / self.tau,
                                                        self.V.value)
            return self.V.value

    lif = LIF(100)
    v_delayed = lif.prefetch_delay('V', 1.0)       # callable: V one ms ago
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, TypeVar

import brainunit as u
import jax
import numpy as np

from .._state import State
from ..graph import Node
from ._delay import Delay, StateWithDelay
from ._module import Module
from ._support import dftype

__all__ = ['Dynamics', 'receive_update_output', 'not_receive_update_output',
           'receive_update_input', 'not_receive_update_input', 'Prefetch', 'PrefetchDelay',
           'PrefetchDelayAt', 'OutputDelayAt', 'init_maybe_prefetch']

T = TypeVar('T')


class Dynamics(Module):
    """A dynamical system of size ``in_size`` (an int or a tuple of ints).

    Calling it runs the before-updates (given the call's arguments when marked with
    :func:`receive_update_input`, else none), then ``update(*args)``, then the after-updates
    (given the output unless marked with :func:`not_receive_update_output`).
    """

    __module__ = 'brainstate.nn'
    graph_invisible_attrs = ()

    def __init__(self, in_size, name: str | None = None):
        super().__init__(name=name)
        if isinstance(in_size, (list, tuple)):
            if len(in_size) == 0 or not isinstance(in_size[0], (int, np.integer)):
                raise ValueError(f'"in_size" must be int, or a tuple/list of int. But we got '
                                 f'{type(in_size)}')
            in_size = tuple(in_size)
        elif isinstance(in_size, (int, np.integer)):
            in_size = (in_size,)
        else:
            raise ValueError(f'"in_size" must be int, or a tuple/list of int. But we got '
                             f'{type(in_size)}')
        self.in_size = in_size
        self._before_updates = None
        self._after_updates = None
        self.out_size = self.in_size

    @property
    def varshape(self):
        """The shape of the system's variables (its ``in_size``)."""
        return self.in_size

    # -- reading states of this module ---------------------------------------------------------

    def prefetch(self, item: str) -> 'Prefetch':
        """A callable reading ``self.<item>`` when called (e.g. from another module)."""
        return Prefetch(self, item)

    def prefetch_delay(self, state: str, *time_and_index, init=None, interpolation=None,
                       **kwargs) -> 'PrefetchDelayAt':
        """A callable reading ``self.<state>`` as it was ``time`` ago (one delay buffer per
        state, shared by all readers)."""
        return PrefetchDelayAt(self, state, *time_and_index, delay_init=init,
                               interpolation=interpolation, **kwargs)

    def output_delay(self, *time_and_index, init=None, interpolation=None,
                     **kwargs) -> 'OutputDelayAt':
        """A callable reading this module's output as it was ``time`` ago."""
        return OutputDelayAt(self, *time_and_index, interpolation=interpolation,
                             delay_init=init, **kwargs)

    # -- before / after updates ---------------------------------------------------------------

    @property
    def before_updates(self):
        """``{key: module}`` called before ``update`` (``None`` if none)."""
        return self._before_updates

    @property
    def after_updates(self):
        """``{key: module}`` called after ``update`` (``None`` if none)."""
        return self._after_updates

    def _add(self, which: str, key, fun):
        table = getattr(self, which)
        if table is None:
            table = {}
            setattr(self, which, table)
        if key in table:
            raise KeyError(f'{key} has been registered in {which[1:]} of {self}')
        table[key] = fun
        setattr(self, which, table)  # registers the new module (its states get a path)

    def _get(self, which: str, key):
        table = getattr(self, which)
        if table is None or key not in table:
            raise KeyError(f'{key} is not registered in {which[1:]} of {self}')
        return table[key]

    def add_before_update(self, key: Hashable, fun: Callable):
        """Call ``fun`` before every update (``KeyError`` if ``key`` is taken)."""
        self._add('_before_updates', key, fun)

    def add_after_update(self, key: Hashable, fun: Callable):
        """Call ``fun`` after every update (``KeyError`` if ``key`` is taken)."""
        self._add('_after_updates', key, fun)

    def get_before_update(self, key: Hashable):
        """The before-update registered as ``key``."""
        return self._get('_before_updates', key)

    def get_after_update(self, key: Hashable):
        """The after-update registered as ``key``."""
        return self._get('_after_updates', key)

    def has_before_update(self, key: Hashable) -> bool:
        """Whether ``key`` is a registered before-update."""
        return self._before_updates is not None and key in self._before_updates

    def has_after_update(self, key: Hashable) -> bool:
        """Whether ``key`` is a registered after-update."""
        return self._after_updates is not None and key in self._after_updates

    def __call__(self, *args, **kwargs):
        for model in (self.before_updates or {}).values():
            if hasattr(model, '_receive_update_input'):
                model(*args, **kwargs)
            else:
                model()
        out = self.update(*args, **kwargs)
        for model in (self.after_updates or {}).values():
            if hasattr(model, '_not_receive_update_output'):
                model()
            else:
                model(out)
        return out


class Prefetch(Node):
    """Reads ``module.<item>`` (a State's value, or the attribute itself) when called."""

    __module__ = 'brainstate.nn'

    def __init__(self, module: Dynamics, item: str):
        super().__init__()
        self.module = module
        self.item = item

    @property
    def delay(self) -> 'PrefetchDelay':
        """The delayed form: ``prefetch.delay.at(time)``."""
        return PrefetchDelay(self.module, self.item)

    def __call__(self, *args, **kwargs):
        return self.get_item_value()

    def get_item_value(self):
        """The item's current value."""
        item = _get_prefetch_item(self)
        return item.value if isinstance(item, State) else item

    def get_item(self):
        """The item itself (e.g. the State)."""
        return _get_prefetch_item(self)


class PrefetchDelay(Node):
    """``module.<item>`` with a delay chosen by :meth:`at`."""

    __module__ = 'brainstate.nn'

    def __init__(self, module: Dynamics, item: str):
        self.module = module
        self.item = item

    def at(self, *delay_time) -> 'PrefetchDelayAt':
        """Read the item ``delay_time`` ago."""
        return PrefetchDelayAt(self.module, self.item, delay_time)


class PrefetchDelayAt(Node):
    """Reads ``module.<item>`` as it was ``time`` ago (``time`` then integer indices); with no
    time, its current value."""

    __module__ = 'brainstate.nn'

    def __init__(self, module: Dynamics, item: str, *time_and_index, delay_init=None,
                 interpolation=None, update_every=None, **kwargs):
        super().__init__()
        if not isinstance(module, Dynamics):
            raise AssertionError('The module should be an instance of Dynamics.')
        self.module = module
        self.item = item
        if len(time_and_index) == 1 and isinstance(time_and_index[0], (tuple, list)):
            time_and_index = time_and_index[0]
        self.delay_time = tuple(time_and_index)
        if self.delay_time:
            key = _get_prefetch_delay_key(item, update_every)
            if not module.has_after_update(key):
                delay = StateWithDelay(module, item, init=delay_init, interpolation=interpolation,
                                       update_every=update_every, **kwargs)
                module.add_after_update(key, not_receive_update_output(delay))
            self.state_delay = module.get_after_update(key)
            self.delay_info = self.state_delay.register_delay(*self.delay_time)

    def __call__(self, *args, **kwargs):
        if not self.delay_time:
            return _get_prefetch_item(self).value
        return self.state_delay.retrieve_at_step(*self.delay_info)


class OutputDelayAt(Node):
    """Reads ``module``'s output as it was ``time`` ago (a :class:`Delay` fed by every
    update's output)."""

    __module__ = 'brainstate.nn'

    def __init__(self, module: Dynamics, *delay_time, delay_init=None, interpolation=None,
                 update_every=None, **kwargs):
        super().__init__()
        if not isinstance(module, Dynamics):
            raise AssertionError('The module should be an instance of Dynamics.')
        self.module = module
        key = _get_output_delay_key(update_every)
        if not module.has_after_update(key):
            delay = Delay(jax.ShapeDtypeStruct(module.out_size, dtype=dftype()),
                          take_aware_unit=True, init=delay_init, interpolation=interpolation,
                          update_every=update_every, **kwargs)
            module.add_after_update(key, receive_update_output(delay))
        self.out_delay = module.get_after_update(key)
        self.delay_info = self.out_delay.register_delay(*delay_time)

    def __call__(self, *args, **kwargs):
        return self.out_delay.retrieve_at_step(*self.delay_info)


def _get_prefetch_delay_key(item, update_every) -> str:
    return f'{item}-prefetch-delay-{update_every}'


def _get_output_delay_key(update_every) -> str:
    return f'output-delay-{update_every}'


def _get_prefetch_item(target) -> Any:
    item = getattr(target.module, target.item, None)
    if item is None:
        raise AttributeError(f'The target {target.module} should have an `{target.item}` '
                             f'attribute.')
    return item


def _get_prefetch_item_delay(target) -> Delay:
    if not isinstance(target.module, Dynamics):
        raise AssertionError(f'The target module should be an instance of Dynamics. But got '
                             f'{target.module}.')
    # As published (and pinned by its tests): the key helper needs ``update_every`` too, so this
    # call is a TypeError; ``PrefetchDelayAt`` is the working way to a state's delay.
    delay = target.module.get_after_update(_get_prefetch_delay_key(target.item))
    if not isinstance(delay, StateWithDelay):
        raise TypeError(f'The prefetch target should be a {StateWithDelay.__name__} when '
                        f'accessing its delay. But got {delay}.')
    return delay


def init_maybe_prefetch(target: Any, *args, **kwargs) -> None:
    """Check that a prefetch target resolves (its item exists; its delay is registered)."""
    if isinstance(target, Prefetch):
        _get_prefetch_item(target)
    elif isinstance(target, PrefetchDelay):
        _get_prefetch_item_delay(target)


def receive_update_output(cls: T) -> T:
    """Mark an after-update as called with the update's output (the default)."""
    if hasattr(cls, '_not_receive_update_output'):
        delattr(cls, '_not_receive_update_output')
    return cls


def not_receive_update_output(cls: T) -> T:
    """Mark an after-update as called with no argument."""
    cls._not_receive_update_output = True
    return cls


def receive_update_input(cls: T) -> T:
    """Mark a before-update as called with the call's arguments."""
    cls._receive_update_input = True
    return cls


def not_receive_update_input(cls: T) -> T:
    """Mark a before-update as called with no argument (the default)."""
    if hasattr(cls, '_receive_update_input'):
        delattr(cls, '_receive_update_input')
    return cls
