"""Calling one method on every module of a tree: ``init_all_states``, ``reset_all_states``,
``call_all_fns`` and their batched (``vmap_``) forms, and ``assign_state_values``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Callable, Sequence

import jax

from ..util import filter as filters
from ._module import Module

__all__ = [
    'call_order', 'call_all_fns', 'vmap_call_all_fns', 'init_all_states',
    'vmap_init_all_states', 'reset_all_states', 'vmap_reset_all_states', 'assign_state_values',
]

MAX_ORDER = 10


def call_order(level: int = 0, check_order_boundary: bool = True) -> Callable:
    """Decorate a method so :func:`call_all_fns` calls it after the undecorated ones, in
    increasing ``level`` (0 to 9).

    Example::

        class Net(brainstate.nn.Module):
            @brainstate.nn.call_order(1)
            def reset_state(self, batch_size=None):
                ...   # runs after the sub-modules without an order
    """
    if check_order_boundary and (level < 0 or level >= MAX_ORDER):
        raise ValueError(f'"level" must be an integer in [0, {MAX_ORDER}), but got {level}.')

    def wrap(fun):
        fun.call_order = level
        return fun

    return wrap


def _modules_children_first(target: Module) -> list:
    """``(path, module)`` for the modules of the tree, each after the modules it holds."""
    from ..graph import nodes
    items = list(nodes(target).items())
    order, stack = [], []
    for path, node in items:
        while stack and stack[-1][0] != path[:len(stack[-1][0])]:
            order.append(stack.pop())
        stack.append((path, node))
    while stack:
        order.append(stack.pop())
    return [(p, n) for p, n in order if isinstance(n, Module)]


def call_all_fns(target, fn_name: str, args: Sequence[Any] | Any = (),
                 kwargs: Mapping[str, Any] | None = None, node_to_exclude=None,
                 fn_if_not_exist: str = 'raise'):
    """Call ``fn_name(*args, **kwargs)`` on every module of ``target``'s tree and return it.

    Modules are visited sub-modules first; methods decorated with :func:`call_order` run after
    all the others, by level. ``node_to_exclude`` is a filter of modules to skip;
    ``fn_if_not_exist`` says what a module lacking the method does: ``'raise'``, ``'warn'``,
    ``'pass'`` or ``'none'``.
    """
    if not isinstance(fn_name, str):
        raise TypeError(f'fn_name must be a string, but got {type(fn_name).__name__}.')
    if fn_if_not_exist not in ('raise', 'pass', 'none', 'warn'):
        raise ValueError(f"fn_if_not_exist must be one of ['raise', 'pass', 'none', 'warn'], "
                         f"but got '{fn_if_not_exist}'.")
    args = args if isinstance(args, tuple) else (args,)
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, Mapping):
        raise TypeError(f'kwargs must be a mapping, but got {type(kwargs).__name__}.')
    exclude = filters.to_predicate(node_to_exclude) if node_to_exclude is not None else None
    ordered = []
    for path, node in _modules_children_first(target):
        if exclude is not None and exclude(path, node):
            continue
        fun = getattr(node, fn_name, None)
        if fun is None:
            message = (f"Module {type(node).__name__} with the path {path} does not have method "
                       f"'{fn_name}'")
            if fn_if_not_exist == 'raise':
                raise AttributeError(message)
            if fn_if_not_exist == 'warn':
                warnings.warn(message + '. Skipping.', UserWarning)
            continue
        if not callable(fun):
            raise TypeError(f"'{fn_name}' must be callable, but got {type(fun).__name__}.")
        if hasattr(fun, 'call_order'):
            ordered.append(node)
        else:
            fun(*args, **kwargs)
    for node in sorted(ordered, key=lambda n: getattr(n, fn_name).call_order):
        getattr(node, fn_name)(*args, **kwargs)
    return target


def _vmap_new_states(fun, axis_size, **options):
    from .. import transform
    vmap_new_states = getattr(transform, 'vmap_new_states', None)
    if vmap_new_states is None:
        raise NotImplementedError(
            'The vmap_ forms of the collective helpers need brainstate.transform.vmap_new_states, '
            'which this build lacks; call init_all_states with a batch size instead.')
    options = {k: v for k, v in options.items() if v is not None}
    return vmap_new_states(fun, axis_size=axis_size, **options)


def vmap_call_all_fns(target, fn_name: str, args=(), kwargs=None, axis_size: int = None,
                      node_to_exclude=None, state_tag: str | None = None,
                      fn_if_not_exist: str = 'raise'):
    """:func:`call_all_fns` with the states it creates given a leading batch axis of
    ``axis_size`` (each lane drawn with its own random key)."""
    if axis_size is None or axis_size <= 0:
        raise ValueError(f'axis_size must be a positive integer, got {axis_size}')
    args = args if isinstance(args, tuple) else (args,)
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, Mapping):
        raise TypeError(f'kwargs must be a mapping, but got {type(kwargs).__name__}.')

    def call():
        call_all_fns(target, fn_name, args, kwargs, node_to_exclude, fn_if_not_exist)

    _vmap_new_states(call, axis_size, state_tag=state_tag)()
    return target


def init_all_states(target, *init_args, node_to_exclude=None, **init_kwargs):
    """Call ``init_state(*init_args, **init_kwargs)`` on every module of the tree (sub-modules
    first) and return ``target``.

    Example::

        net = brainstate.nn.init_all_states(Net(), batch_size=16)
    """
    call_all_fns(target, 'init_state', init_args, init_kwargs, node_to_exclude)
    return target


def vmap_init_all_states(target, *init_args, axis_size: int = None, node_to_exclude=None,
                         state_to_exclude=None, state_tag: str | None = None, in_states=None,
                         out_states=None, **init_kwargs):
    """:func:`init_all_states` with the new states batched over ``axis_size`` lanes."""
    if axis_size is None or axis_size <= 0:
        raise ValueError(f'axis_size must be a positive integer, got {axis_size}')

    def init():
        init_all_states(target, *init_args, node_to_exclude=node_to_exclude, **init_kwargs)

    _vmap_new_states(init, axis_size, state_tag=state_tag, state_to_exclude=state_to_exclude,
                     in_states=in_states, out_states=out_states)()
    return target


def reset_all_states(target, *reset_args, node_to_exclude=None, **reset_kwargs):
    """Call ``reset_state(...)`` on every module of the tree (sub-modules first); return it."""
    call_all_fns(target, 'reset_state', reset_args, reset_kwargs, node_to_exclude)
    return target


def vmap_reset_all_states(target, *reset_args, axis_size: int = None, node_to_exclude=None,
                          state_tag: str | None = None, **reset_kwargs):
    """:func:`reset_all_states` over ``axis_size`` batched lanes."""
    vmap_call_all_fns(target, 'reset_state', reset_args, reset_kwargs, axis_size=axis_size,
                      node_to_exclude=node_to_exclude, state_tag=state_tag)
    return target


def assign_state_values(target: Module, *state_by_abs_path: Mapping):
    """Set the values of ``target``'s states from mappings keyed by path (tuples or dotted
    strings). Returns ``(unexpected_keys, missing_keys)``."""
    incoming = {}
    for mapping in state_by_abs_path:
        incoming.update(mapping)
    states = target.states()

    def norm(key):
        return '.'.join(str(p) for p in key) if isinstance(key, tuple) else str(key)

    by_norm = {norm(k): k for k in states}
    in_norm = {norm(k): k for k in incoming}
    for n in set(by_norm) & set(in_norm):
        states[by_norm[n]].value = jax.tree.map(jax.numpy.asarray, incoming[in_norm[n]])
    unexpected = sorted((in_norm[n] for n in set(in_norm) - set(by_norm)), key=norm)
    missing = sorted((by_norm[n] for n in set(by_norm) - set(in_norm)), key=norm)
    return unexpected, missing
