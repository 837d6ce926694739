"""The deprecated module names of the published library (``brainstate.compile``,
``brainstate.augment``): each forwards a fixed set of names to ``brainstate.transform`` and
warns (DeprecationWarning) on every access."""

from __future__ import annotations

import types
import warnings

__all__ = ['DeprecatedAlias']


class DeprecatedAlias(types.ModuleType):
    """A module whose attributes ``names`` come from ``target`` (a module), with a warning
    that says what to import instead."""

    def __init__(self, name: str, target_name: str, names):
        super().__init__(name, f'Deprecated: use {target_name} instead.')
        self._target_name = target_name
        self._names = tuple(names)
        self.__all__ = list(self._names)

    def __getattr__(self, attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        if attr not in self._names:
            raise AttributeError(
                f'module {self.__name__!r} has no attribute {attr!r} ({self.__name__} is '
                f'deprecated: use {self._target_name}).')
        warnings.warn(f'{self.__name__}.{attr} is deprecated; use {self._target_name}.{attr} '
                      f'instead.', DeprecationWarning, stacklevel=2)
        import importlib
        return getattr(importlib.import_module(self._target_name), attr)

    def __dir__(self):
        return list(self._names)

    def __repr__(self):
        return f'<deprecated module {self.__name__!r} (use {self._target_name})>'


compile = DeprecatedAlias(
    'brainstate.compile', 'brainstate.transform',
    ['checkpoint', 'remat', 'cond', 'switch', 'ifelse', 'jit_error_if', 'jit', 'scan',
     'checkpointed_scan', 'for_loop', 'checkpointed_for_loop', 'while_loop',
     'bounded_while_loop', 'StatefulFunction', 'make_jaxpr', 'ProgressBar'])

augment = DeprecatedAlias(
    'brainstate.augment', 'brainstate.transform',
    ['GradientTransform', 'grad', 'vector_grad', 'hessian', 'jacobian', 'jacrev', 'jacfwd',
     'vmap'])
