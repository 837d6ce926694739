"""fold-constants computes exactly rounded scalar operations with NumPy: the results must be
the bits JAX itself computes (dtypes, signed zeros, NaNs, infinities, integer wrap-around)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import brainstate
from brainstate import ir
from brainstate.passes import _fold_constants as fold

FLOATS = [0., -0., 1., -1.5, 3.25, 1e30, -1e-30, np.inf, -np.inf, np.nan, 7.]
INTS = [0, 1, -1, 7, -8, 2 ** 31 - 1, -2 ** 31]


def literal(value, dtype):
    aval = jax.core.ShapedArray((), np.dtype(dtype))
    return ir.Literal(np.asarray(value).astype(dtype)[()], aval)


def node_of(prim, operands, out_dtype, **params):
    return ir.Node('primitive', op=prim, inputs=operands,
                   output_avals=[jax.core.ShapedArray((), np.dtype(out_dtype))], params=params)


def jax_result(prim, operands, **params):
    with jax.ensure_compile_time_eval():
        return np.asarray(prim.bind(*[jnp.asarray(o.val, o.aval.dtype) for o in operands],
                                    **params))


def check(prim, operands, out_dtype, **params):
    node = node_of(prim, operands, out_dtype, **params)
    ours = fold._numpy_results(node)
    expected = jax_result(prim, operands, **params)
    if ours is None:
        return False  # left to JAX: always correct
    got = np.asarray(ours[0])
    assert got.dtype == expected.dtype, (prim, operands, got.dtype, expected.dtype)
    assert got.tobytes() == expected.tobytes(), (prim, [o.val for o in operands], got, expected)
    return True


BINARY = [lax.add_p, lax.sub_p, lax.mul_p, lax.div_p, lax.max_p, lax.min_p]
COMPARE = [lax.eq_p, lax.ne_p, lax.lt_p, lax.le_p, lax.gt_p, lax.ge_p]


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_float_arithmetic_and_comparisons_match_jax_bit_for_bit(dtype):
    with jax.enable_x64(dtype == 'float64'):
        _float_cases(dtype)


def _float_cases(dtype):
    folded = 0
    for a, b in itertools.product(FLOATS, FLOATS):
        ops = [literal(a, dtype), literal(b, dtype)]
        for prim in BINARY:
            folded += check(prim, ops, dtype)
        for prim in COMPARE:
            folded += check(prim, ops, 'bool')
    for a in FLOATS:
        for prim in (lax.neg_p, lax.abs_p, lax.floor_p, lax.ceil_p):
            folded += check(prim, [literal(a, dtype)], dtype)
    assert folded > 500  # NumPy did the work, not JAX


def test_signed_zero_results_keep_their_sign():
    zero, neg_zero = literal(0., 'float32'), literal(-0., 'float32')
    assert check(lax.add_p, [neg_zero, neg_zero], 'float32')
    (result,) = fold._numpy_results(node_of(lax.mul_p, [neg_zero, literal(2., 'float32')],
                                            'float32'))
    assert np.signbit(result) and result.dtype == np.float32
    # max/min of -0.0 and 0.0: XLA's choice, so JAX computes it.
    assert fold._numpy_results(node_of(lax.max_p, [zero, neg_zero], 'float32')) is None


@pytest.mark.parametrize('dtype', ['int32', 'uint8', 'int8'])
def test_integer_arithmetic_wraps_as_in_jax(dtype):
    info = np.iinfo(dtype)
    values = sorted({int(np.asarray(v).astype(dtype)) for v in INTS} | {info.min, info.max})
    folded = 0
    for a, b in itertools.product(values, values):
        ops = [literal(a, dtype), literal(b, dtype)]
        for prim in (lax.add_p, lax.sub_p, lax.mul_p, lax.max_p, lax.min_p,
                     lax.and_p, lax.or_p, lax.xor_p):
            folded += check(prim, ops, dtype)
        for prim in COMPARE:
            folded += check(prim, ops, 'bool')
        # Integer division is left to JAX (division by zero, rounding toward zero).
        assert fold._numpy_results(node_of(lax.div_p, ops, dtype)) is None
    for a in values:
        folded += check(lax.neg_p, [literal(a, dtype)], dtype)
        folded += check(lax.not_p, [literal(a, dtype)], dtype)
    assert folded > 100


def test_conversions_and_selects_match_jax():
    for value, src in itertools.product(FLOATS + [2.5, -2.5, 3e9], ['float32']):
        for dst in ('int32', 'uint8', 'bool', 'float32'):
            check(lax.convert_element_type_p, [literal(value, src)], dst,
                  new_dtype=np.dtype(dst), weak_type=False, sharding=None)
    for value in INTS:
        for dst in ('float32', 'int8', 'bool', 'uint32'):
            assert check(lax.convert_element_type_p, [literal(value, 'int32')], dst,
                         new_dtype=np.dtype(dst), weak_type=False, sharding=None)
    # NaN and out-of-range float -> int conversions are implementation-defined: JAX decides.
    for value in (np.nan, 3e9, -np.inf):
        assert fold._numpy_results(node_of(
            lax.convert_element_type_p, [literal(value, 'float32')], 'int32',
            new_dtype=np.dtype('int32'), weak_type=False, sharding=None)) is None
    for which in (False, True):
        assert check(lax.select_n_p, [literal(which, 'bool'), literal(-0., 'float32'),
                                      literal(2., 'float32')], 'float32')


def test_transcendentals_and_small_floats_are_left_to_jax():
    assert fold._numpy_results(node_of(lax.exp_p, [literal(1., 'float32')], 'float32',
                                       accuracy=None)) is None
    assert fold._numpy_results(node_of(lax.add_p, [literal(1., 'float16'),
                                                   literal(2., 'float16')], 'float16')) is None


def test_folding_in_a_jitted_program_gives_jax_results_and_dtypes():
    state = brainstate.ShortTermState(jnp.zeros((), jnp.float32))
    count = brainstate.ShortTermState(jnp.zeros((), jnp.int32))

    def step(x):
        # Literal arithmetic the pipeline folds: signed zero, weak types, int wrap-around.
        neg_zero = lax.mul(np.float32(-0.), np.float32(3.))
        big = lax.add(np.int32(2 ** 31 - 1), np.int32(1))
        state.value = x * 0. + neg_zero
        count.value = big + lax.convert_element_type(np.float32(2.75), np.int32)
        return x + lax.div(np.float32(1.), np.float32(3.))

    out = brainstate.transform.jit(step)(jnp.float32(-1.))
    graph = brainstate.transform.jit(step).optimized_ir(jnp.float32(-1.))
    assert 'mul' not in str(graph).split('state_write')[0].replace('mul %', '')  # folded
    expected = np.float32(-1.) + np.float32(1.) / np.float32(3.)
    assert out.dtype == jnp.float32 and np.asarray(out).tobytes() == expected.tobytes()
    assert np.signbit(np.asarray(state.value)) and state.value.dtype == jnp.float32
    assert count.value.dtype == jnp.int32 and int(count.value) == -2 ** 31 + 2


def test_a_fold_is_computed_once_across_traces_and_keeps_its_bits(monkeypatch):
    # The same literal arithmetic recurs in every trace of a program (e.g. `neg 1.0` in a
    # mean's gradient): the pass remembers it across runs instead of computing it again.
    computed = []
    compute = fold._compute
    monkeypatch.setattr(fold, '_compute', lambda node: computed.append(node.op.name)
                        or compute(node))
    monkeypatch.setattr(fold, '_MEMO', {})

    def step(x):
        return x + lax.div(np.float32(-0.), np.float32(7.)) * lax.neg(np.float32(2.5))

    outs = []
    for _ in range(3):  # a fresh function each time: three traces, three pipeline runs
        outs.append(brainstate.transform.jit(lambda x: step(x))(jnp.float32(1.)))
    assert sorted(computed) == ['div', 'mul', 'neg']  # once each, not three times
    expected = np.float32(1.) + np.float32(-0.) / np.float32(7.) * -np.float32(2.5)
    for out in outs:
        assert np.asarray(out).tobytes() == expected.tobytes()


def test_the_fold_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(fold, '_MEMO', {})
    monkeypatch.setattr(fold, '_MEMO_LIMIT', 2)
    for k in range(6):
        c = np.float32(k + 0.5)
        brainstate.transform.jit(lambda x: x + lax.neg(c))(jnp.float32(1.))
    assert 0 < len(fold._MEMO) <= 3
