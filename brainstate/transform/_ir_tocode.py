"""Python source code from a jaxpr (the published ``fn_to_python_code`` and
``jaxpr_to_python_code``).

Each equation becomes one assignment calling the JAX function that computes it
(``c = jax.lax.add(a, b)``, ``d = jax.numpy.sum(c, axis=(0,))``); calls of ``jax.jit``
functions, ``scan``, ``cond``, ``while`` and custom-derivative calls become nested ``def``\\ s
called through ``jax.jit``, ``jax.lax.scan``, ``jax.lax.switch`` and ``jax.lax.while_loop``. The
code runs with ``jax`` imported (``import jax``, ``import jax.numpy``): executing it gives a
function computing what the jaxpr computes. A primitive without a handler raises
:class:`~brainstate.transform._ir_utils.UnsupportedPrimitiveError`; add one with
:func:`register_prim_handler`.

Example::

    print(brainstate.transform.fn_to_python_code(lambda x: jnp.sin(x) * 2.0, 1.0))
"""

from __future__ import annotations

import ast
import enum
import itertools
import threading
import keyword
import math
import warnings
from typing import Callable

import jax
import jax.extend.core as jex_core
import numpy as np

from ._ir_utils import IdentityMap, IdentitySet, UnsupportedPrimitiveError

__all__ = ['fn_to_python_code', 'jaxpr_to_python_code', 'register_prim_handler']

class _ThreadLocalImports(threading.local):
    """The import lines the code being written (in this thread) needs, in insertion order,
    with a set's ``add`` / ``discard`` / ``clear`` / ``in``."""

    def __init__(self):
        self._lines = {}

    def add(self, line: str) -> None:
        self._lines[line] = None

    def discard(self, line: str) -> None:
        self._lines.pop(line, None)

    def clear(self) -> None:
        self._lines.clear()

    def __contains__(self, line) -> bool:
        return line in self._lines

    def __iter__(self):
        return iter(list(self._lines))

    def __len__(self) -> int:
        return len(self._lines)


prefix_imports = _ThreadLocalImports()


class SourcerorState:
    """Names of the variables of the code being written, and fresh names for helpers."""

    def __init__(self, reserved=()):
        self._reserved = set(reserved)
        self._names = IdentityMap()
        self._counter = itertools.count()
        self._skolems = itertools.count(1)

    def str_name(self, var) -> str:
        """The variable's name: ``a``, ``b``, ..., ``z``, ``ba``...; a Python keyword or a
        name the code uses otherwise gets a trailing ``_``."""
        name = self._names.get(var)
        if name is None:
            name = _letters(next(self._counter))
            if keyword.iskeyword(name) or name in _RESERVED or name in self._reserved:
                name += '_'  # (letters never end in '_': still unique)
            self._names[var] = name
        return name

    def name(self, var, ctx=None) -> ast.Name:
        """The variable's name as an AST node."""
        return ast.Name(id=self.str_name(var), ctx=ctx or ast.Load())

    def skolem(self, prefix: str) -> str:
        """A fresh helper name, ``prefix_<n>``."""
        return f'{prefix}_{next(self._skolems)}'


_RESERVED = {'jax', 'np', 'jnp', 'fn', 'id', 'max', 'min', 'abs', 'sum', 'round', 'pow', 'all',
             'any', 'int', 'float', 'bool', 'len', 'map', 'list', 'tuple', 'range', 'slice',
             'type', 'str', 'dir', 'iter', 'next', 'hash', 'print', 'input', 'open', 'exec',
             'eval', 'object', 'super', 'set', 'dict', 'zip', 'sorted', 'vars', 'format'}


def _letters(n: int) -> str:
    out = ''
    while True:
        out = chr(ord('a') + n % 26) + out
        n = n // 26
        if n == 0:
            return out
        n -= 1


# -- values as source ----------------------------------------------------------------------

def is_array(value) -> bool:
    """Whether ``value`` is array data (NumPy, JAX, or an array-like literal wrapper), not a
    dtype."""
    if isinstance(value, (np.dtype, type)):
        return False
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return True
    return hasattr(value, '__array__') and hasattr(value, 'shape') and hasattr(value, 'dtype')


_NAMED_DTYPES = {'float16', 'float32', 'float64', 'bfloat16', 'int32', 'int64', 'complex128'}


def _dtype_src(dtype) -> str:
    name = np.dtype(dtype).name
    if name == 'bool':
        return 'jax.numpy.bool_'
    if name in _NAMED_DTYPES:
        return f'jax.numpy.{name}'
    return f"jax.numpy.dtype('{name}')"


def _coerce_to_numpy(value):
    """``value`` (an array, a literal wrapper holding one in ``.val``, anything with
    ``__array__``) as NumPy data; NumPy values are returned as they are."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value
    inner = getattr(value, 'val', None)
    if isinstance(inner, (np.ndarray, np.generic)):
        return inner
    try:
        return np.asarray(value)
    except Exception as error:
        for attr in ('_value', 'array', 'value'):
            candidate = getattr(value, attr, None)
            if candidate is None or candidate is value:
                continue
            try:
                return np.asarray(candidate)
            except Exception:
                continue
        raise error


def _scalar_src(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return repr(bool(x))
    if isinstance(x, (int, np.integer)):
        return repr(int(x))
    if isinstance(x, (complex, np.complexfloating)):
        return f'complex({_scalar_src(x.real)}, {_scalar_src(x.imag)})'
    x = float(x)
    if math.isnan(x):
        return "float('nan')"
    if math.isinf(x):
        return "float('inf')" if x > 0 else "-float('inf')"
    return repr(x)


def _array_src(value) -> str:
    array = np.asarray(_coerce_to_numpy(value))
    dtype = array.dtype
    if dtype == jax.numpy.bfloat16 or dtype.kind not in 'biufc':
        data = array.astype(np.float32) if dtype.kind == 'V' or dtype.name == 'bfloat16' \
            else array
    else:
        data = array
    if data.ndim == 0:
        body = _scalar_src(data[()])
    else:
        body = _nested(data)
    return f'jax.numpy.array({body}, dtype={_dtype_src(dtype)})'


def _nested(data) -> str:
    if data.ndim == 1:
        return '[' + ', '.join(_scalar_src(x) for x in data) + ']'
    return '[' + ', '.join(_nested(row) for row in data) + ']'


def value_src(value) -> str:
    """A Python expression (with ``jax`` imported) whose value is ``value``."""
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, (int, float, complex)) and not isinstance(value, enum.Enum):
        return _scalar_src(value)
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return _dtype_src(value)
    if is_array(value):
        return _array_src(value)
    if isinstance(value, enum.Enum):
        owner = _public_home(type(value))
        if owner is not None:
            return f'{owner}.{value.name}'
        module = type(value).__module__
        qualname = type(value).__qualname__
        if '<locals>' not in qualname and module != '__main__':
            prefix_imports.add(f'import {module}')
            return f'{module}.{qualname}.{value.name}'
        return _scalar_src(value.value) if isinstance(value.value, (int, float)) else \
            repr(value.value)
    if isinstance(value, tuple) and hasattr(value, '_fields'):
        owner = _public_home(type(value))
        fields = ', '.join(f'{k}={value_src(v)}' for k, v in zip(value._fields, value))
        if owner is not None:
            return f'{owner}({fields})'
    if isinstance(value, (tuple, list)):
        inner = ', '.join(value_src(v) for v in value)
        if isinstance(value, tuple):
            return f'({inner},)' if len(value) == 1 else f'({inner})'
        return f'[{inner}]'
    if type(value).__name__ == 'UnspecifiedValue':
        prefix_imports.add('from jax._src.sharding_impls import UNSPECIFIED')
        return 'UNSPECIFIED'
    try:
        dtype = np.dtype(value)
        return _dtype_src(dtype)
    except TypeError:
        pass
    warnings.warn(f'Unknown value type {type(value).__name__} in a jaxpr parameter; writing '
                  f'its repr, {value!r}, which may not be valid code.')
    return repr(value)


def _public_home(cls):
    """``'jax.lax.Precision'`` for a class JAX exposes publicly, else None."""
    for home, module in (('jax.lax', jax.lax), ('jax.numpy', jax.numpy), ('jax', jax)):
        if getattr(module, cls.__name__, None) is cls:
            return f'{home}.{cls.__name__}'
    return None


# -- writing a jaxpr -----------------------------------------------------------------------

class _Body:
    """The lines of one function being written."""

    def __init__(self, state: SourcerorState, indent: str):
        self.state, self.indent, self.lines = state, indent, []

    def atom(self, atom) -> str:
        if isinstance(atom, jex_core.Literal):
            return value_src(np.asarray(atom.val, dtype=atom.aval.dtype)
                             if hasattr(atom.aval, 'dtype') else atom.val)
        return self.state.str_name(atom)

    def emit(self, line: str):
        self.lines.append(self.indent + line)

    def function(self, closed, name: str | None = None) -> str:
        """Write a nested function computing ``closed`` (a ClosedJaxpr or Jaxpr); returns its
        name. It takes the jaxpr's inputs and returns a tuple of its outputs."""
        name = name or self.state.skolem('fn')
        jaxpr, consts = _split(closed)
        inner = _write_function(self.state, jaxpr, consts, name, self.indent, always_tuple=True)
        self.lines.extend(inner)
        return name


def _split(closed):
    if isinstance(closed, jex_core.ClosedJaxpr):
        return closed.jaxpr, list(closed.consts)
    return closed, []


def _write_function(state, jaxpr, consts, name, indent, always_tuple=False) -> list:
    body = _Body(state, indent + '    ')
    params = ', '.join(state.str_name(v) for v in jaxpr.invars)
    for var, value in zip(jaxpr.constvars, consts):
        body.emit(f'{state.str_name(var)} = {value_src(value)}')
    for eqn in jaxpr.eqns:
        _write_eqn(body, eqn)
    outs = [body.atom(a) for a in jaxpr.outvars]
    if always_tuple or len(outs) != 1:
        body.emit(f'return ({", ".join(outs)}{"," if len(outs) == 1 else ""})')
    else:
        body.emit(f'return {outs[0]}')
    return [f'{indent}def {name}({params}):'] + body.lines


def _write_eqn(body: _Body, eqn):
    handler = prim_to_python.get(eqn.primitive.name)
    if handler is None:
        raise UnsupportedPrimitiveError(
            f'No Python code for the primitive {eqn.primitive.name!r}. Register one with '
            f'brainstate.transform.register_prim_handler({eqn.primitive.name!r}, handler), '
            f'handler(body, eqn) returning the expression.')
    expr = handler(body, eqn)
    outs = [body.state.str_name(v) for v in eqn.outvars]
    if eqn.primitive.multiple_results:
        if len(outs) == 1:
            body.emit(f'{outs[0]}, = {expr}')
        elif outs:
            body.emit(f'{", ".join(outs)} = {expr}')
        else:
            body.emit(expr)
    else:
        body.emit(f'{outs[0]} = {expr}')


# -- handlers: (body, eqn) -> expression ---------------------------------------------------

prim_to_python: dict[str, Callable] = {}


def register_prim_handler(prim_name: str, handler: Callable) -> None:
    """Teach the code writer a primitive: ``handler(body, eqn)`` returns the Python
    expression (a string) computing the equation's result(s) (a tuple of them for a primitive
    with several results); ``body.atom(x)`` gives an operand's source. Replacing a handler
    warns."""
    if prim_name in prim_to_python:
        warnings.warn(f'Overwriting the Python-code handler of primitive {prim_name!r}.')
    prim_to_python[prim_name] = handler


def _args(body, eqn) -> list:
    return [body.atom(a) for a in eqn.invars]


def _call(fn: str, param_names=(), drop_none=True):
    """``fn(*operands, name=param, ...)`` for the listed params."""
    def handler(body, eqn):
        parts = _args(body, eqn)
        for key in param_names:
            value = eqn.params.get(key)
            if value is None and drop_none:
                continue
            parts.append(f'{key}={value_src(value)}')
        return f'{fn}({", ".join(parts)})'
    return handler


def _bind(name: str):
    """``jax.lax.<name>_p.bind(*operands, **params)``: the primitive itself."""
    def handler(body, eqn):
        parts = _args(body, eqn) + [f'{k}={value_src(v)}' for k, v in eqn.params.items()]
        return f'jax.lax.{name}_p.bind({", ".join(parts)})'
    return handler


for _name in ('exp', 'log', 'sin', 'cos', 'tan', 'tanh', 'sqrt', 'rsqrt', 'cbrt', 'abs', 'neg',
              'sign', 'floor', 'ceil', 'logistic', 'exp2', 'log1p', 'expm1', 'asin', 'acos',
              'atan', 'sinh', 'cosh', 'asinh', 'acosh', 'atanh', 'is_finite', 'erf', 'erfc',
              'erf_inv', 'lgamma', 'digamma', 'real', 'imag', 'conj', 'square', 'not',
              'population_count', 'clz', 'reciprocal'):
    if hasattr(jax.lax, _name if _name != 'not' else 'bitwise_not'):
        prim_to_python[_name] = _call('jax.lax.' + (_name if _name != 'not' else
                                                    'bitwise_not'))
for _name, _fn in (('add', 'add'), ('sub', 'sub'), ('mul', 'mul'), ('div', 'div'),
                   ('rem', 'rem'), ('pow', 'pow'), ('max', 'max'), ('min', 'min'),
                   ('atan2', 'atan2'), ('nextafter', 'nextafter'), ('and', 'bitwise_and'),
                   ('or', 'bitwise_or'), ('xor', 'bitwise_xor'), ('eq', 'eq'), ('ne', 'ne'),
                   ('lt', 'lt'), ('le', 'le'), ('gt', 'gt'), ('ge', 'ge'),
                   ('shift_left', 'shift_left'),
                   ('shift_right_logical', 'shift_right_logical'),
                   ('shift_right_arithmetic', 'shift_right_arithmetic'),
                   ('select_n', 'select_n'), ('clamp', 'clamp'), ('complex', 'complex')):
    prim_to_python[_name] = _call('jax.lax.' + _fn)
for _name in ('reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod', 'reduce_and',
              'reduce_or', 'reduce_xor', 'argmax', 'argmin', 'cumsum', 'cumprod', 'cummax',
              'cummin', 'sort', 'gather', 'scatter', 'scatter-add', 'scatter_add',
              'scatter_mul', 'scatter_min', 'scatter_max', 'dynamic_update_slice', 'iota',
              'broadcast_in_dim', 'reshape', 'squeeze', 'transpose', 'rev', 'pad',
              'concatenate', 'split', 'dot_general', 'conv_general_dilated',
              'reduce_precision', 'top_k', 'clamp', 'random_bits', 'random_seed',
              'random_wrap', 'random_unwrap', 'random_fold_in', 'random_split', 'erf_inv',
              'bitcast_convert_type', 'stop_gradient', 'sharding_constraint', 'split'):
    _prim = getattr(jax.lax, _name.replace('-', '_') + '_p', None)
    if _prim is not None and _name not in prim_to_python:
        prim_to_python[_name] = _bind(_name.replace('-', '_'))

prim_to_python['integer_pow'] = lambda body, eqn: \
    f'{body.atom(eqn.invars[0])} ** {int(eqn.params["y"])}'
prim_to_python['round'] = lambda body, eqn: \
    f'jax.lax.round({body.atom(eqn.invars[0])}, ' \
    f'jax.lax.RoundingMethod({int(eqn.params["rounding_method"])}))'
prim_to_python['expand_dims'] = _call('jax.lax.expand_dims', ('dimensions',))
prim_to_python['add_any'] = _call('jax.lax.add')
prim_to_python['copy'] = prim_to_python['copy_p'] = lambda body, eqn: body.atom(eqn.invars[0])
prim_to_python['device_put'] = lambda body, eqn: \
    '(' + ', '.join(_args(body, eqn)) + ',)'
prim_to_python['optimization_barrier'] = lambda body, eqn: \
    f'jax.lax.optimization_barrier(({", ".join(_args(body, eqn))},))'


def _convert(body, eqn):
    x = body.atom(eqn.invars[0])
    return f'jax.lax.convert_element_type({x}, {_dtype_src(eqn.params["new_dtype"])})'


def _slice(body, eqn):
    p = eqn.params
    return (f'jax.lax.slice({body.atom(eqn.invars[0])}, {value_src(tuple(p["start_indices"]))}, '
            f'{value_src(tuple(p["limit_indices"]))}, {value_src(p.get("strides"))})')


def _dynamic_slice(body, eqn):
    x, *idx = _args(body, eqn)
    sizes = value_src(tuple(eqn.params['slice_sizes']))
    return f'jax.lax.dynamic_slice({x}, ({", ".join(idx)},), slice_sizes={sizes})'


def _dynamic_update_slice(body, eqn):
    x, update, *idx = _args(body, eqn)
    return f'jax.lax.dynamic_update_slice({x}, {update}, ({", ".join(idx)},))'


def _reduction(fn):
    def handler(body, eqn):
        return f'{fn}({body.atom(eqn.invars[0])}, axis={value_src(tuple(eqn.params["axes"]))})'
    return handler


prim_to_python.update({
    'convert_element_type': _convert,
    'slice': _slice,
    'dynamic_slice': _dynamic_slice,
    'dynamic_update_slice': _dynamic_update_slice,
    'reduce_sum': _reduction('jax.numpy.sum'),
    'reduce_max': _reduction('jax.numpy.max'),
    'reduce_min': _reduction('jax.numpy.min'),
    'reduce_prod': _reduction('jax.numpy.prod'),
    'reduce_and': _reduction('jax.numpy.all'),
    'reduce_or': _reduction('jax.numpy.any'),
})


def _call_jaxpr(key):
    """A call of a nested jaxpr (``jax.jit`` functions, ``closed_call``, custom derivatives:
    the primal computation) as a nested function, through ``jax.jit`` for jit calls."""
    def handler(body, eqn):
        inner = eqn.params.get(key)
        if inner is None:
            raise UnsupportedPrimitiveError(
                f'{eqn.primitive.name} equation without a {key!r} parameter.')
        fn = body.function(inner)
        if eqn.primitive.name in ('jit', 'pjit'):
            fn = f'jax.jit({fn})'
        return f'{fn}({", ".join(_args(body, eqn))})'
    return handler


prim_to_python['jit'] = prim_to_python['pjit'] = _call_jaxpr('jaxpr')
prim_to_python['closed_call'] = prim_to_python['core_call'] = _call_jaxpr('call_jaxpr')
prim_to_python['custom_jvp_call'] = _call_jaxpr('call_jaxpr')
prim_to_python['custom_vjp_call'] = _call_jaxpr('call_jaxpr')
prim_to_python['custom_vjp_call_jaxpr'] = _call_jaxpr('fun_jaxpr')
prim_to_python['remat'] = prim_to_python['checkpoint'] = prim_to_python['remat2'] = \
    _call_jaxpr('jaxpr')


def _scan(body, eqn):
    from .._compatible_import import scan_num_consts_carry
    p = eqn.params
    n_consts, n_carry = scan_num_consts_carry(p)
    args = _args(body, eqn)
    consts, carry, xs = args[:n_consts], args[n_consts:n_consts + n_carry], \
        args[n_consts + n_carry:]
    inner = body.function(p['jaxpr'])
    step = body.state.skolem('fn')
    n_xs = len(xs)
    body.emit(f'def {step}(carry, xs):')
    call = ', '.join(consts + ['*carry', '*xs'])
    body.emit(f'    outs = {inner}({call})')
    body.emit(f'    return tuple(outs[:{n_carry}]), tuple(outs[{n_carry}:])')
    xs_src = f'({", ".join(xs)},)' if n_xs else '()'
    length, reverse, unroll = p['length'], p['reverse'], p.get('unroll', 1)
    unroll = unroll if isinstance(unroll, (bool, int)) else 1
    return (f'(lambda r: (*r[0], *r[1]))(jax.lax.scan({step}, ({", ".join(carry)}{"," if carry else ""}), '
            f'{xs_src}, length={int(length)}, reverse={bool(reverse)}, unroll={unroll!r}))')


def _cond(body, eqn):
    index, *operands = _args(body, eqn)
    branches = [body.function(b) for b in eqn.params['branches']]
    return f'jax.lax.switch({index}, [{", ".join(branches)}], {", ".join(operands)})'


def _while(body, eqn):
    p = eqn.params
    args = _args(body, eqn)
    nc, nb = p['cond_nconsts'], p['body_nconsts']
    cond_consts, body_consts, init = args[:nc], args[nc:nc + nb], args[nc + nb:]
    cond_fn, body_fn = body.function(p['cond_jaxpr']), body.function(p['body_jaxpr'])
    return (f'jax.lax.while_loop(lambda c: {cond_fn}({", ".join(cond_consts + ["*c"])})[0], '
            f'lambda c: tuple({body_fn}({", ".join(body_consts + ["*c"])})), '
            f'({", ".join(init)}{"," if init else ""}))')


prim_to_python['scan'] = _scan
prim_to_python['cond'] = _cond
prim_to_python['while'] = _while


# -- entry points --------------------------------------------------------------------------

def jaxpr_to_python_code(jaxpr, fn_name: str = 'generated_function') -> str:
    """Python source of a function computing ``jaxpr`` (a Jaxpr or ClosedJaxpr) from its
    inputs; a ClosedJaxpr's constants are written into the code.

    Raises:
      UnsupportedPrimitiveError: an equation's primitive has no handler (see
        :func:`register_prim_handler`).
    """
    jaxpr, consts = _split(jaxpr)
    if not isinstance(jaxpr, jex_core.Jaxpr):
        raise TypeError(f'jaxpr_to_python_code: expected a Jaxpr or ClosedJaxpr, got '
                        f'{type(jaxpr).__name__}.')
    if not fn_name.isidentifier() or keyword.iskeyword(fn_name):
        fn_name = 'generated_function'
    state = SourcerorState(reserved=(fn_name,))
    if jaxpr.constvars and not consts:  # an open jaxpr's constants: extra leading inputs
        jaxpr = jaxpr.replace(constvars=[], invars=list(jaxpr.constvars) + list(jaxpr.invars))
    prefix_imports.clear()
    prefix_imports.add('import jax')
    prefix_imports.add('import jax.numpy')
    lines = _write_function(state, jaxpr, consts, fn_name, '')
    return '\n'.join(prefix_imports) + '\n\n\n' + '\n'.join(lines) + '\n'


def fn_to_python_code(fn: Callable, *args, **kwargs) -> str:
    """Python source of ``fn`` as traced for these example arguments (``jax.make_jaxpr``):
    a function named like ``fn`` (``generated_function`` for a lambda) taking the arguments'
    leaves."""
    closed = jax.make_jaxpr(fn)(*args, **kwargs)
    name = getattr(fn, '__name__', 'generated_function')
    if not name.isidentifier() or keyword.iskeyword(name):
        name = 'generated_function'
    flat = all(isinstance(x, (jax.Array, np.ndarray, np.generic, int, float, complex, bool))
               for x in args) and not kwargs
    if flat:
        return jaxpr_to_python_code(closed, fn_name=name)
    # Containers among the arguments: the flat function, and a wrapper taking the arguments
    # as given and passing their leaves.
    source = jaxpr_to_python_code(closed, fn_name=f'{name}_flat')
    return (source + f'\n\ndef {name}(*args, **kwargs):\n'
            f'    return {name}_flat(*jax.tree_util.tree_leaves((args, kwargs)))\n')


def _astify_value(value):
    """``value`` as a Python expression's AST (see :func:`value_src`)."""
    return ast.parse(value_src(value), mode='eval').body


def _astify_array(value):
    """An array as the AST of a ``jax.numpy.array(...)`` expression."""
    return ast.parse(_array_src(value), mode='eval').body


# The published helper names these containers by.
IdentitySet = IdentitySet
