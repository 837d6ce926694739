"""Element-wise layers: each applies one activation function, so ``Sequential`` passes the
size through (:class:`~brainstate.nn.ElementWiseBlock`)."""

from __future__ import annotations

import brainunit as u
import jax.numpy as jnp

from .._state import ParamState
from . import _activations as F
from ._module import ElementWiseBlock

__all__ = [
    'Threshold', 'ReLU', 'RReLU', 'Hardtanh', 'ReLU6', 'Sigmoid', 'Hardsigmoid', 'Tanh', 'SiLU',
    'Mish', 'Hardswish', 'ELU', 'CELU', 'SELU', 'GLU', 'GELU', 'Hardshrink', 'LeakyReLU',
    'LogSigmoid', 'Softplus', 'Softshrink', 'PReLU', 'Softsign', 'Tanhshrink', 'Softmin',
    'Softmax', 'Softmax2d', 'LogSoftmax', 'Identity', 'SpikeBitwise',
]


class _Elementwise(ElementWiseBlock):
    """Applies ``function(x, **options)``; ``options`` are the constructor's arguments."""

    __module__ = 'brainstate.nn'
    _fields: tuple = ()

    def function(self, x):
        raise NotImplementedError

    def __call__(self, x):
        return self.function(x)

    def update(self, x):
        return self.function(x)

    def __repr__(self):
        fields = ', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)
        return f'{type(self).__name__}({fields})'


def _simple(name: str, fun, doc: str):
    return type(name, (_Elementwise,), {
        '__doc__': doc, '__module__': 'brainstate.nn',
        'function': lambda self, x: fun(x)})


ReLU = _simple('ReLU', F.relu, '``max(x, 0)`` element-wise.')
Sigmoid = _simple('Sigmoid', F.sigmoid, '``1 / (1 + exp(-x))`` element-wise.')
Hardsigmoid = _simple('Hardsigmoid', F.hard_sigmoid, '``relu6(x + 3) / 6`` element-wise.')
Tanh = _simple('Tanh', F.tanh, '``tanh(x)`` element-wise.')
SiLU = _simple('SiLU', F.silu, '``x * sigmoid(x)`` element-wise.')
Mish = _simple('Mish', F.mish, '``x * tanh(softplus(x))`` element-wise.')
Hardswish = _simple('Hardswish', F.hard_swish, '``x * hard_sigmoid(x)`` element-wise.')
SELU = _simple('SELU', F.selu, 'Scaled ELU element-wise.')
LogSigmoid = _simple('LogSigmoid', F.log_sigmoid, '``log(sigmoid(x))`` element-wise.')
Softplus = _simple('Softplus', F.softplus, '``log(1 + exp(x))`` element-wise.')
Softsign = _simple('Softsign', F.soft_sign, '``x / (1 + |x|)`` element-wise.')
Tanhshrink = _simple('Tanhshrink', F.tanh_shrink, '``x - tanh(x)`` element-wise.')


class Identity(_Elementwise):
    """Returns its input unchanged."""

    def function(self, x):
        return x


class Threshold(_Elementwise):
    """``x`` where ``x > threshold``, else ``value`` (both in ``x``'s unit when it has one)."""

    _fields = ('threshold', 'value')

    def __init__(self, threshold: float, value: float):
        super().__init__()
        self.threshold, self.value = threshold, value

    def function(self, x):
        q = u.Quantity(x)
        m = q.mantissa
        threshold = jnp.asarray(u.Quantity(self.threshold).to(q.unit).mantissa, m.dtype)
        value = jnp.asarray(u.Quantity(self.value).to(q.unit).mantissa, m.dtype)
        return u.maybe_decimal(jnp.where(m > threshold, m, value) * q.unit)


class RReLU(_Elementwise):
    """Randomised leaky ReLU (see :func:`brainstate.nn.rrelu`)."""

    _fields = ('lower', 'upper')

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3):
        super().__init__()
        self.lower, self.upper = lower, upper

    def function(self, x):
        return F.rrelu(x, self.lower, self.upper)


class Hardtanh(_Elementwise):
    """``x`` clipped to ``[min_val, max_val]``."""

    _fields = ('min_val', 'max_val')

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0):
        super().__init__()
        if max_val <= min_val:
            raise ValueError(f'max_val ({max_val}) must be greater than min_val ({min_val})')
        self.min_val, self.max_val = min_val, max_val

    def function(self, x):
        return F.hard_tanh(x, self.min_val, self.max_val)


class ReLU6(Hardtanh):
    """``min(max(x, 0), 6)``."""

    _fields = ()

    def __init__(self):
        super().__init__(0.0, 6.0)


class _Alpha(_Elementwise):
    _fields = ('alpha',)

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha


class ELU(_Alpha):
    """``x`` above 0, else ``alpha * (exp(x) - 1)``."""

    def function(self, x):
        return F.elu(x, self.alpha)


class CELU(_Alpha):
    """Continuously differentiable ELU."""

    def function(self, x):
        return F.celu(x, self.alpha)


class GLU(_Elementwise):
    """Gated linear unit over axis ``dim``."""

    _fields = ('dim',)

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def function(self, x):
        return F.glu(x, self.dim)


class GELU(_Elementwise):
    """Gaussian error linear unit (exact unless ``approximate``)."""

    _fields = ('approximate',)

    def __init__(self, approximate: bool = False):
        super().__init__()
        self.approximate = approximate

    def function(self, x):
        return F.gelu(x, approximate=self.approximate)


class _Lambd(_Elementwise):
    _fields = ('lambd',)

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = lambd


class Hardshrink(_Lambd):
    """``x`` where ``|x| > lambd``, else 0."""

    def function(self, x):
        return F.hard_shrink(x, self.lambd)


class Softshrink(_Lambd):
    """Shrink ``x`` towards 0 by ``lambd`` (0 inside ``[-lambd, lambd]``)."""

    def function(self, x):
        return F.soft_shrink(x, self.lambd)


class LeakyReLU(_Elementwise):
    """``x`` for ``x >= 0``, else ``negative_slope * x``."""

    _fields = ('negative_slope',)

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def function(self, x):
        return F.leaky_relu(x, self.negative_slope)


class PReLU(_Elementwise):
    """Leaky ReLU with a learned slope (``num_parameters`` slopes, a ParamState ``weight``)."""

    _fields = ('num_parameters',)

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = ParamState(jnp.ones(num_parameters, dtype=dtype) * init)

    def function(self, x):
        return F.prelu(x, self.weight.value)


class _Dim(_Elementwise):
    _fields = ('dim',)

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    @property
    def _axis(self):
        return -1 if self.dim is None else self.dim


class Softmin(_Dim):
    """``softmax(-x)`` along ``dim`` (default the last)."""

    def function(self, x):
        return F.softmin(x, self._axis)


class Softmax(_Dim):
    """Softmax along ``dim`` (default the last)."""

    def function(self, x):
        return F.softmax(x, self._axis)


class LogSoftmax(_Dim):
    """Log-softmax along ``dim`` (default the last)."""

    def function(self, x):
        return F.log_softmax(x, self._axis)


class Softmax2d(_Elementwise):
    """Softmax over the channel axis of a ``(C, H, W)`` or ``(N, C, H, W)`` input (axis -3)."""

    def function(self, x):
        if x.ndim not in (3, 4):
            raise AssertionError('Softmax2d requires a 3D or 4D tensor as input')
        return F.softmax(x, -3)


class SpikeBitwise(_Elementwise):
    """Combine two spike trains bit-wise (``op`` in ``'and'``, ``'or'``, ``'iand'``, ``'xor'``,
    ``'add'``, ``'mul'``...), as ``braintools.spike_bitwise``."""

    _fields = ('op',)

    def __init__(self, op: str = 'add', name: str | None = None):
        super().__init__(name=name)
        self.op = op

    def __call__(self, x, y):
        return _spike_bitwise(x, y, self.op)

    update = __call__


def _spike_bitwise(x, y, op: str):
    ops = {
        'and': lambda: x * y,
        'or': lambda: x + y - x * y,
        'iand': lambda: (1 - x) * y,
        'xor': lambda: x + y - 2 * x * y,
        'add': lambda: x + y,
        'mul': lambda: x * y,
        'sub': lambda: x - y,
    }
    if op not in ops:
        raise NotImplementedError(f'Unsupported bitwise operation: {op!r}; use one of '
                                  f'{sorted(ops)}.')
    return ops[op]()
