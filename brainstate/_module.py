"""Module: the base class of models, a tree of states and sub-modules."""

from .graph import Node

__all__ = ['Module']


class Module(Node):
    """Base class of models: assign States and sub-Modules as attributes.

    Example::

        class Net(brainstate.Module):
            def __init__(self):
                super().__init__()
                self.w = brainstate.ParamState(jnp.ones((3, 2)))

        Net().states(brainstate.ParamState)   # {('w',): ParamState(f32[3,2])}
    """

    def __init__(self, name: str | None = None):
        if name is not None:
            object.__setattr__(self, 'name', name)

    def __repr__(self):
        children = [f'{k}={type(v).__name__}' for k, v in vars(self).items()
                    if not k.startswith('_')]
        return f'{type(self).__name__}({", ".join(children)})'
