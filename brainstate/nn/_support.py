"""What the layers read from ``brainstate.environ``, in one place: the ``fit`` flag (training
or evaluation), ``dt`` and the default dtypes."""

from __future__ import annotations

from .. import environ
from ..mixin import ParamDesc, ParamDescriber

__all__ = ['get_fit', 'get_dt', 'dftype', 'ditype', 'ParamDesc', 'ParamDescriber']


def get_fit(layer: str = 'this layer') -> bool:
    """``brainstate.environ``'s ``fit`` flag (true while training); a KeyError naming ``layer``
    and the fix when it is not set."""
    try:
        return environ.get(environ.FIT)
    except KeyError:
        raise KeyError(
            f"{layer} behaves differently in training and evaluation and reads the 'fit' flag "
            f"of brainstate.environ, which is not set: wrap the call in "
            f"`with brainstate.environ.context(fit=True):` (or fit=False), or call "
            f"`brainstate.environ.set(fit=True)`.") from None


def get_dt():
    """The integration step ``dt`` of ``brainstate.environ``."""
    return environ.get_dt()


def dftype():
    """The default floating dtype (``brainstate.environ.dftype()``)."""
    return environ.dftype()


def ditype():
    """The default integer dtype."""
    return environ.ditype()
