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

    def __call__(self, *args, **kwargs):
        """Calling a module runs its ``update`` method (define ``update`` in subclasses)."""
        update = getattr(self, 'update', None)
        if update is None:
            raise NotImplementedError(
                f'{type(self).__name__} is called but defines no `update` method; define '
                f'`update(self, ...)` (what a call computes) or `__call__`.')
        return update(*args, **kwargs)

    def init_state(self, *args, **kwargs):
        """Create the states that depend on the run (e.g. a batch size). A no-op by default;
        :func:`brainstate.nn.init_all_states` calls it over a whole module tree."""

    def reset_state(self, *args, **kwargs):
        """Put the run-dependent states back to their initial values. A no-op by default;
        :func:`brainstate.nn.reset_all_states` calls it over a whole module tree."""

    def __repr__(self):
        children = [f'{k}={type(v).__name__}' for k, v in vars(self).items()
                    if not k.startswith('_')]
        return f'{type(self).__name__}({", ".join(children)})'
