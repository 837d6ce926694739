"""Deprecated module aliases (``brainstate.augment``, ``brainstate.compile``,
``brainstate.functional``): attribute access forwards to the new module with a
``DeprecationWarning`` (once per attribute)."""

from __future__ import annotations

import importlib
import warnings

__all__ = ['DeprecatedModule', 'create_deprecated_module_proxy']


class DeprecatedModule:
    """A stand-in for a renamed module.

    Args:
      deprecated_name: the old dotted name (``'brainstate.compile'``).
      replacement_module: the new module (or its dotted name, imported on first use).
      replacement_name: the new dotted name, used in messages.
      version, removal_version: when it was deprecated / will be removed (messages only).
      scoped_apis: the names the old module offered: a list, or a dict ``{name: source}`` where
        ``source`` is a module or a dotted module name to take the name from (falling back to
        the replacement module). Other names raise ``AttributeError``. Without it, every
        attribute of the replacement module is forwarded.
    """

    def __init__(self, deprecated_name, replacement_module, replacement_name, version='0.1.11',
                 removal_version=None, scoped_apis=None):
        self._deprecated_name = deprecated_name
        self._replacement_module = replacement_module
        self._replacement_name = replacement_name
        self._version = version
        self._removal_version = removal_version
        self._warned_attrs = {}
        self._scoped_apis = scoped_apis or {}
        self.__name__ = deprecated_name
        self.__doc__ = (f'DEPRECATED: {deprecated_name} is deprecated. Use {replacement_name} '
                        f'instead.')
        if isinstance(scoped_apis, dict):
            self._api_mapping = dict(scoped_apis)
            self.__all__ = list(scoped_apis)
        elif isinstance(scoped_apis, (list, tuple)):
            self._api_mapping = {name: replacement_module for name in scoped_apis}
            self.__all__ = list(scoped_apis)
        else:
            self._api_mapping = {}
            if hasattr(replacement_module, '__all__'):
                self.__all__ = replacement_module.__all__

    @property
    def replacement_module(self):
        """The new module (imported on first use when given by name)."""
        if isinstance(self._replacement_module, str):
            self._replacement_module = importlib.import_module(self._replacement_module)
        return self._replacement_module

    def _warn_deprecation(self, attr_name=None):
        key = attr_name or '__module__'
        if key in self._warned_attrs:
            return
        self._warned_attrs[key] = True
        if attr_name:
            message = (f"Accessing '{attr_name}' from '{self._deprecated_name}' is deprecated "
                       f"and will be removed in a future version. Use "
                       f"'{self._replacement_name}.{attr_name}' instead.")
        else:
            message = (f"The '{self._deprecated_name}' module is deprecated and will be removed "
                       f"in a future version. Use '{self._replacement_name}' instead.")
        if self._removal_version:
            message += f' It will be removed in version {self._removal_version}.'
        warnings.warn(message, DeprecationWarning, stacklevel=3)

    def _missing(self, name, detail=''):
        return AttributeError(f"Module '{self._deprecated_name}' has no attribute '{name}'."
                              f"{detail} Check '{self._replacement_name}' for available "
                              f"attributes.")

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        self._warn_deprecation(name)
        if not self._api_mapping:
            try:
                return getattr(self.replacement_module, name)
            except AttributeError:
                raise self._missing(name) from None
        if name not in self._api_mapping:
            raise self._missing(name, f" Available attributes: {', '.join(self.__all__ or [])}.")
        source = self._api_mapping[name]
        try:
            if isinstance(source, str):
                source = importlib.import_module(source)
            return getattr(source, name)
        except (ImportError, AttributeError) as e:
            try:
                return getattr(self.replacement_module, name)
            except AttributeError:
                raise self._missing(name, f' Failed to import from {source!r}: {e}.') from None

    def __dir__(self):
        self._warn_deprecation()
        if self._api_mapping:
            return ['__name__', '__doc__', '__all__'] + list(self._api_mapping)
        return dir(self.replacement_module)

    def __repr__(self):
        return f"<DeprecatedModule '{self._deprecated_name}' -> '{self._replacement_name}'>"


def create_deprecated_module_proxy(deprecated_name, replacement_module, replacement_name,
                                   **kwargs) -> DeprecatedModule:
    """A :class:`DeprecatedModule`."""
    return DeprecatedModule(deprecated_name=deprecated_name,
                            replacement_module=replacement_module,
                            replacement_name=replacement_name, **kwargs)
