"""Sequential: layers applied one after the other."""

from __future__ import annotations

from typing import Callable

from .._module import Module

__all__ = ['Sequential']


class Sequential(Module):
    """Apply ``layers`` in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Layers are Modules or plain functions (such as ``brainstate.nn.relu``). Index it like a
    list (``seq[0]``, ``seq[1:]``, ``len(seq)``) and grow it with :meth:`append`.

    Example::

        mlp = brainstate.nn.Sequential(
            brainstate.nn.Linear(64, 128), brainstate.nn.relu,
            brainstate.nn.Linear(128, 10))
        params = mlp.states(brainstate.ParamState)   # keys ('layers', 0, 'weight'), ...
    """

    def __init__(self, *layers: Callable, name: str | None = None):
        super().__init__(name=name)
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f'Sequential: layer {i} is a {type(layer).__name__}, which is '
                                f'not callable; give Modules or functions.')
        self.layers = list(layers)

    def update(self, x, *args, **kwargs):
        """Run the first layer on ``(x, *args, **kwargs)`` and the rest on the previous
        layer's output."""
        for i, layer in enumerate(self.layers):
            x = layer(x, *args, **kwargs) if i == 0 else layer(x)
        return x

    def append(self, layer: Callable):
        """Add a layer at the end."""
        if not callable(layer):
            raise TypeError(f'Sequential.append: {type(layer).__name__} is not callable.')
        self.layers.append(layer)
        self.layers = self.layers  # register the new layer (gives its states a path)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = ',\n'.join(f'  {getattr(layer, "__name__", None) or repr(layer)}'
                           for layer in self.layers)
        return f'Sequential(\n{inner}\n)'
