"""What the layers need from the rest of brainstate, in one place.

``environ`` (the ``fit`` flag, ``dt``, the default dtype) and ``mixin`` (``ParamDesc``) belong to
the core of brainstate. The layers read them only through these helpers so they keep working with
the defaults below in a build where those modules are not present yet.
"""

from __future__ import annotations

import importlib

import jax.numpy as jnp

__all__ = ['environ', 'get_fit', 'get_dt', 'dftype', 'ditype', 'ParamDesc', 'ParamDescriber']


def environ():
    """``brainstate.environ``, or ``None`` when this build has none."""
    try:
        return importlib.import_module('brainstate.environ')
    except ImportError:
        return None


def get_fit(layer: str = 'this layer') -> bool:
    """The ``fit`` flag of ``brainstate.environ`` (training when true)."""
    env = environ()
    if env is None:
        return True
    try:
        return bool(env.get('fit'))
    except KeyError:
        raise KeyError(
            f"{layer} behaves differently in training and evaluation and reads the 'fit' flag "
            f"of brainstate.environ, which is not set: wrap the call in "
            f"`with brainstate.environ.context(fit=True):` (or fit=False), or call "
            f"`brainstate.environ.set(fit=True)`.") from None


def get_dt():
    """The time step ``dt`` of ``brainstate.environ``."""
    env = environ()
    if env is None:
        raise KeyError("dt is not set: use `brainstate.environ.set(dt=0.1)`.")
    return env.get_dt()


def dftype():
    """The default floating dtype (``brainstate.environ.dftype()``, else float32/64 by JAX)."""
    env = environ()
    if env is not None and hasattr(env, 'dftype'):
        return env.dftype()
    return jnp.zeros(()).dtype


def ditype():
    """The default integer dtype."""
    env = environ()
    if env is not None and hasattr(env, 'ditype'):
        return env.ditype()
    return jnp.zeros((), int).dtype


def _hashable(x) -> bool:
    try:
        hash(x)
        return True
    except TypeError:
        return False


try:
    from ..mixin import ParamDesc, ParamDescriber  # noqa: F401
except ImportError:
    class ParamDescriber:
        """A delayed constructor: ``Linear.desc(out_size=10)`` builds ``Linear`` later, when
        the missing arguments (e.g. ``in_size``, inferred by ``Sequential``) are known."""

        def __init__(self, cls, *args, **kwargs):
            self.cls = cls
            self.args = args
            self.kwargs = kwargs
            self._identifier = (cls, tuple(args), frozenset(
                (k, v if _hashable(v) else str(v)) for k, v in kwargs.items()))

        def __call__(self, *args, **kwargs):
            return self.cls(*self.args, *args, **{**self.kwargs, **kwargs})

        init = __call__

        @property
        def identifier(self):
            return self._identifier

        def __repr__(self):
            parts = [repr(a) for a in self.args] + [f'{k}={v!r}' for k, v in self.kwargs.items()]
            return f'ParamDescriber({self.cls.__name__}({", ".join(parts)}))'

    class ParamDesc:
        """Mixin giving a class ``desc(*args, **kwargs)``: a :class:`ParamDescriber`."""

        non_hashable_params = None

        @classmethod
        def desc(cls, *args, **kwargs) -> ParamDescriber:
            return ParamDescriber(cls, *args, **kwargs)
