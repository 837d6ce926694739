"""fold-constants: evaluate scalar arithmetic on literals at compile time.

A pure primitive whose operands are all scalar literals and whose results are scalars is
computed once now, and its uses take the results as literals (``add 1.0 2.0`` becomes ``3.0``).
Recurses into region bodies.

The exactly rounded operations (arithmetic, comparisons, logic, selects, conversions) on the
common dtypes are computed with NumPy, which gives the same bits as XLA (IEEE rounding, signed
zeros, NaNs) without dispatching a JAX operation: an eager JAX op costs tens of microseconds
and waits for the device queue (behind a large transfer, tens of milliseconds). Anything else
(transcendentals, whose last bit may differ between libraries, other dtypes, the cases listed
below) is evaluated by JAX itself.
"""

from __future__ import annotations

import jax
import numpy as np

from ..ir import Literal
from ._pass import PassStatistics, register

__all__ = ['fold_constants']


def _foldable(node) -> bool:
    """Whether the node's operands and results are all scalars of plain number dtypes (asked
    once per distinct operation and operands: see _evaluate)."""
    for value in node.inputs:
        if value.aval.shape != ():
            return False
    for value in node.outputs:
        if value.aval.shape != () or not _plain_number(value.aval.dtype):
            return False
    return True


_PLAIN_NUMBER: dict = {}  # dtype -> whether it is a plain number (numpy's test is slow)


def _plain_number(dtype) -> bool:
    """A numeric or boolean dtype (not an extended one such as a typed PRNG key)."""
    plain = _PLAIN_NUMBER.get(dtype)
    if plain is None:
        try:
            plain = bool(np.issubdtype(dtype, np.number) or dtype == np.bool_)
        except TypeError:  # numpy cannot interpret an extended dtype
            plain = False
        _PLAIN_NUMBER[dtype] = plain
    return plain


_NOT_CACHED = object()


# Dtypes NumPy computes exactly as XLA does (float16/bfloat16 are left to JAX).
_NUMPY_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float32, np.float64))


def _same_kind_float(*xs) -> bool:
    return all(x.dtype.kind == 'f' for x in xs)


def _max_min(pick):
    def rule(a, b):
        # XLA propagates NaN; which of -0.0 and 0.0 it picks is not NumPy's business: leave it.
        if a == b and a.tobytes() != b.tobytes():
            return None
        return pick(a, b)
    return rule


def _convert(x, new_dtype, **_):
    new_dtype = np.dtype(new_dtype)
    if new_dtype not in _NUMPY_DTYPES:
        return None
    if x.dtype.kind == 'f' and new_dtype.kind in 'iu':
        # Out-of-range and NaN conversions are implementation-defined: JAX decides.
        info = np.iinfo(new_dtype)
        if not np.isfinite(x) or not (info.min <= x <= info.max):
            return None
    if new_dtype == np.bool_:
        return np.bool_(x != 0)
    return x.astype(new_dtype)


def _select_n(which, *cases):
    return cases[int(which)]


def _float_only(fn):
    def rule(*xs):
        return fn(*xs) if _same_kind_float(*xs) else None
    return rule


# primitive name -> f(*numpy scalars, **params) -> numpy scalar, or None to let JAX decide.
_NUMPY_RULES = {
    'add': lambda a, b: a + b,
    'sub': lambda a, b: a - b,
    'mul': lambda a, b: a * b,
    'div': _float_only(lambda a, b: a / b),  # integer division by zero: XLA's own rule
    'neg': lambda a: -a,
    'abs': lambda a: abs(a),
    'max': _max_min(np.maximum),
    'min': _max_min(np.minimum),
    'eq': lambda a, b: np.bool_(a == b),
    'ne': lambda a, b: np.bool_(a != b),
    'lt': lambda a, b: np.bool_(a < b),
    'le': lambda a, b: np.bool_(a <= b),
    'gt': lambda a, b: np.bool_(a > b),
    'ge': lambda a, b: np.bool_(a >= b),
    'and': lambda a, b: a & b,
    'or': lambda a, b: a | b,
    'xor': lambda a, b: a ^ b,
    'not': lambda a: ~a,
    'select_n': _select_n,
    'convert_element_type': _convert,
    'floor': _float_only(np.floor),
    'ceil': _float_only(np.ceil),
}


def _numpy_results(node):
    """The node's results computed by NumPy, or None where JAX must compute them."""
    rule = _NUMPY_RULES.get(node.op.name)
    if rule is None or node.op.multiple_results:
        return None
    operands = []
    for value in node.inputs:
        dtype = np.dtype(value.aval.dtype)
        if dtype not in _NUMPY_DTYPES:
            return None
        operands.append(np.asarray(value.val, dtype=dtype)[()])
    out_dtype = node.outputs[0].aval.dtype
    if np.dtype(out_dtype) not in _NUMPY_DTYPES:
        return None
    params = node.params if node.op.name == 'convert_element_type' else {}
    with np.errstate(all='ignore'):  # overflow wraps and 1/0 is inf, as in XLA
        result = rule(*operands, **params)
    if result is None or np.asarray(result).dtype != out_dtype:
        return None  # a promotion NumPy and JAX disagree on: JAX decides
    if result.dtype.kind == 'f' and np.isnan(result):
        return None  # the sign and payload of a NaN result are XLA's own
    return [result]


def _evaluate(node, cache: dict):
    """The results of a pure node as Literals; None when it is not folded (an operand is not
    a literal, or not a scalar, ...). Computed once per distinct operation, params and operands (compared by
    dtype, shape and bits: ``-0.0`` is not ``0.0``)."""
    inputs = node.inputs
    for value in inputs:
        if type(value) is not Literal:
            return None
    key = (node.op, *inputs, *node.params.items())  # Literals compare by dtype, shape and bits
    try:
        results = cache.get(key, _NOT_CACHED)
    except TypeError:  # an unhashable parameter: evaluate, without memo
        key, results = None, _NOT_CACHED
    if results is not _NOT_CACHED:
        return results
    results = _compute(node) if _foldable(node) else None
    if key is not None:
        cache[key] = results
    return results


def _compute(node):
    results = _numpy_results(node)
    if results is None:
        try:
            # Passes can run while JAX traces (a jit retracing): force eager evaluation.
            with jax.ensure_compile_time_eval():
                results = node.op.bind(*[v.val for v in node.inputs], **node.params)
            if not node.op.multiple_results:
                results = [results]
        except Exception:  # leave anything JAX cannot evaluate eagerly to XLA
            return None
    return [Literal(np.asarray(r, dtype=v.aval.dtype)[()], v.aval)
            for v, r in zip(node.outputs, results)]


# Folds remembered across runs (the same few, e.g. ``neg 1.0`` of a mean's gradient, recur in
# every trace of a program, and NumPy's scalar path costs ~10-25 us a fold): operation, params
# and operands (Literals: dtype, shape and bits) -> result Literals (never changed once made,
# so graphs may share them), or None for "not folded". Bounded: cleared when full.
_MEMO: dict = {}
_MEMO_LIMIT = 4096


@register('fold-constants')
def fold_constants(graph, stats=None, _cache=None):
    """Compute scalar operations on literal operands at compile time."""
    stats = PassStatistics() if stats is None else stats
    if _cache is not None:
        cache = _cache
    else:
        cache = _MEMO
        if len(cache) > _MEMO_LIMIT:
            cache.clear()
    folded = 0
    for node in graph.nodes:
        # Most nodes have a first operand that is not a literal: rule them out first.
        inputs = node.inputs
        if not inputs or type(inputs[0]) is not Literal or node.kind != 'primitive' or \
                node.has_effect:
            continue
        results = _evaluate(node, cache)
        if results is None:
            continue
        graph.replace_node(node, results)
        folded += 1
    # Region bodies on their own (regions are closed: folding in one changes nothing outside).
    for region in graph.find_nodes('region', recursive=False):
        for sub in region.subgraphs:
            fold_constants(sub, stats, _cache=cache)
    if folded:
        stats['operations folded'] += folded
    return graph
