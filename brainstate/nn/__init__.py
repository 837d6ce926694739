"""Neural-network building blocks for machine learning and brain dynamics: the Module base
class, layers, activations, initializers, parameters with transforms and regularisation,
metrics, and the dynamics layer (``Dynamics``, ``Delay``, ``exp_euler_step``).

The API follows the published ``brainstate.nn`` (0.5.4).
"""

from . import init
from ._activations import *  # noqa: F401,F403
from ._activations import __all__ as _activations_all
from ._collective_ops import *  # noqa: F401,F403
from ._collective_ops import __all__ as _collective_all
from ._dropout import *  # noqa: F401,F403
from ._dropout import __all__ as _dropout_all
from ._elementwise import *  # noqa: F401,F403
from ._elementwise import __all__ as _elementwise_all
from ._linear import *  # noqa: F401,F403
from ._linear import __all__ as _linear_all
from ._module import *  # noqa: F401,F403
from ._module import __all__ as _module_all
from ._normalizations import *  # noqa: F401,F403
from ._normalizations import __all__ as _normalizations_all

__all__ = (['init'] + _activations_all + _collective_all + _dropout_all + _elementwise_all
           + _linear_all + _module_all + _normalizations_all)
from ._param import *  # noqa: F401,F403
from ._param import __all__ as _param_all
from ._regularization import *  # noqa: F401,F403
from ._regularization import __all__ as _regularization_all
from ._transform import *  # noqa: F401,F403
from ._transform import __all__ as _transform_all
from ._utils import *  # noqa: F401,F403
from ._utils import __all__ as _utils_all

__all__ += _param_all + _regularization_all + _transform_all + _utils_all
from ._poolings import *  # noqa: F401,F403
from ._poolings import __all__ as _poolings_all

__all__ += _poolings_all
from ._paddings import *  # noqa: F401,F403
from ._paddings import __all__ as _paddings_all

__all__ += _paddings_all
from ._conv import *  # noqa: F401,F403
from ._conv import __all__ as _conv_all

__all__ += _conv_all
from ._embedding import *  # noqa: F401,F403
from ._embedding import __all__ as _embedding_all
from ._rnns import *  # noqa: F401,F403
from ._rnns import __all__ as _rnns_all

__all__ += _embedding_all + _rnns_all
from ._common import *  # noqa: F401,F403
from ._common import __all__ as _common_all

__all__ += _common_all
from ._metrics import *  # noqa: F401,F403
from ._metrics import __all__ as _metrics_all

__all__ += _metrics_all
from ._exp_euler import *  # noqa: F401,F403
from ._hidata import *  # noqa: F401,F403

__all__ += ['exp_euler_step', 'HiData']
from ._delay import *  # noqa: F401,F403
from ._delay import __all__ as _delay_all
from ._dynamics import *  # noqa: F401,F403
from ._dynamics import __all__ as _dynamics_all

__all__ += _delay_all + _dynamics_all


# Names the published package kept for old programs: each warns and gives its replacement.
_DEPRECATED = {'DynamicsGroup': ('Module', 'brainstate.nn.Module'),
               'ModuleMapper': ('Map', 'brainstate.nn.Map')}
# Neuron and synapse models moved to brainpy (``brainpy.state``) in the published package.
_MOVED_TO_BRAINPY = (
    'SpikeTime', 'PoissonSpike', 'PoissonEncoder', 'PoissonInput', 'poisson_input', 'Neuron', 'IF',
    'LIF', 'LIFRef', 'ALIF', 'LeakyRateReadout', 'LeakySpikeReadout', 'STP', 'STD', 'Synapse',
    'Expon', 'DualExpon', 'Alpha', 'AMPA', 'GABAa', 'COBA', 'CUBA', 'MgBlock', 'SynOut',
    'AlignPostProj', 'DeltaProj', 'CurrentProj', 'align_pre_projection', 'Projection',
    'SymmetryGapJunction', 'AsymmetryGapJunction')


def __getattr__(name: str):
    import warnings
    if name in _DEPRECATED:
        target, full = _DEPRECATED[name]
        warnings.warn(f"'brainstate.nn.{name}' is deprecated and will be removed in a future "
                      f"version. Please use '{full}' instead.", DeprecationWarning, stacklevel=2)
        return globals()[target]
    if name in _MOVED_TO_BRAINPY:
        warnings.warn(f"'brainstate.nn.{name}' is deprecated and will be removed in a future "
                      f"version. Please use 'brainpy.state.{name}' instead.", DeprecationWarning,
                      stacklevel=2)
        import brainpy
        return getattr(brainpy.state, name)
    raise AttributeError(f"module 'brainstate.nn' has no attribute '{name}'")
