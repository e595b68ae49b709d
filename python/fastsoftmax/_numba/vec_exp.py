"""exp, its variants for x - max, and the row max (cpp/src/vec_exp.hpp, and simd.hpp's max),
one implementation per dtype behind a generic name, callable from compiled code only."""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from .. import _constants
from .operands import kept
from .primitives import prefer_wide_vectors


def exp(x):
    """``exp(x)`` of one float32 or float64, written so that LLVM vectorises its loops.

    cpp/src/vec_exp.hpp, operation for operation: clamp, Cody-Waite reduction, a polynomial of
    degree 5 (float32) or 11 (float64), 2**n built in the exponent bits in two halves.
    Measured: within 2.03 ulp (float32, every 101st float bit pattern) and 0.87 ulp (float64,
    3e6 points of [-746, 710]) for normal results, within 1.32 smallest subnormals below them;
    exp(-inf) = 0, exp(+inf) = +inf, NaN in gives NaN out.
    """
    raise NotImplementedError("only callable from Numba-compiled code")


def exp_nonpositive(x):
    """`exp` of an ``x`` known to be at most 0 or NaN, as every x - max of the kernels is:
    without the upper clamp (vec_exp.hpp's exp_nonpositive). Same bits as `exp` there."""
    raise NotImplementedError("only callable from Numba-compiled code")


def exp_summand(x):
    """`exp_nonpositive` as a term of a sum that holds a 1, exp(max - max): a result below
    about 2**-125 comes out as a normal number below 2**-124 instead, which such a sum cannot
    hold. So one scaling by 2**n suffices, and neither underflow nor its mask is needed (the
    Note on sums of exps in vector_loops.py). Same bits as `exp` above that."""
    raise NotImplementedError("only callable from Numba-compiled code")


def row_max(row, where):
    """The maximum of a contiguous row, NaN if the row's top key is a NaN; of its entries that
    the mask row ``where`` keeps, -inf for none (None: every entry).

    [Note: integer keys]
    LLVM vectorises a float max reduction only if it may assume there are no NaNs. The bits of
    a float read as a signed integer, with the magnitude bits flipped when negative, order like
    the float, and an integer max reduction vectorises. A NaN may win or lose here; if it loses,
    it still makes the row sum NaN, and if it wins the max is not finite: the row is NaN either
    way, as it is in kernels.cpp.
    """
    raise NotImplementedError("only callable from Numba-compiled code")


def _make_exp(float_t, int_t, constants, *, upper=True, normal=False):
    """`exp` for one dtype, from ``_constants``, with the upper clamp where ``upper``, and
    results kept normal where ``normal`` (`exp_summand`); exp(r) is Horner's rule over the
    coefficients, highest first."""
    mantissa_bits = np.finfo(float_t).nmant
    bias = int_t(np.finfo(float_t).maxexp - 1)
    magic = float_t(1.5 * 2.0**mantissa_bits)  # adding it rounds to an integer
    magic_bits = magic.view(int_t)
    lowest, highest = float_t(constants["lowest"]), float_t(constants["highest"])
    if normal:  # n >= 2 - bias: p (at least 0.7) times 2**n stays above the smallest normal
        lowest = float_t((2 - int(bias)) * np.log(2.0))
    log2e = float_t(constants["log2e"])
    ln2_head, ln2_tail = float_t(constants["ln2_head"]), float_t(constants["ln2_tail"])
    coefficients = constants["coefficients"]
    head, rest = float_t(coefficients[0]), tuple(float_t(c) for c in coefficients[1:])

    def exp(x):
        xc = lowest if x < lowest else x  # NaN compares false and passes both clamps
        if upper:
            xc = highest if xc > highest else xc
        shifted = xc * log2e + magic
        n = shifted - magic
        n_int = float_t(shifted).view(int_t) - magic_bits
        r = xc - n * ln2_head
        r = r - n * ln2_tail
        p = head
        for c in rest:
            p = p * r + c
        if normal:
            return p * int_t((n_int + bias) << mantissa_bits).view(float_t)
        half = n_int >> 1
        scale_a = int_t((half + bias) << mantissa_bits).view(float_t)
        scale_b = int_t((n_int - half + bias) << mantissa_bits).view(float_t)
        # At the lower clamp a factor of 0, not an underflow (cpp/src/vec_exp.hpp's Note on
        # underflow: a -inf-filled causal softmax 3.9x slower on a Xeon); NaN stays NaN in p.
        return (p * scale_a) * (scale_b if xc > lowest else float_t(0))

    return exp


def _exps(**kinds):
    """`_make_exp`'s function of each dtype, of the kind ``kinds`` says."""
    return {
        types.float32: _make_exp(
            np.float32, np.int32, _constants.exp_constants("float32"), **kinds
        ),
        types.float64: _make_exp(
            np.float64, np.int64, _constants.exp_constants("float64"), **kinds
        ),
    }


def _make_row_max(float_t, int_t):
    magnitude = int_t(np.iinfo(int_t).max)
    sign_shift = int_t(np.iinfo(int_t).bits - 1)
    lowest_key = int_t(np.iinfo(int_t).min)

    masked_key = float_t(-np.inf).view(int_t) ^ magnitude  # a masked entry reads as -inf

    def row_max(row, where):
        prefer_wide_vectors()
        bits = row.view(int_t)
        best = lowest_key
        for i in range(bits.shape[0]):
            key = bits[i] ^ ((bits[i] >> sign_shift) & magnitude)
            key = kept(where, i, key, masked_key)
            best = key if key > best else best
        return int_t(best ^ ((best >> sign_shift) & magnitude)).view(float_t)

    return row_max


_ROW_MAXES = {
    types.float32: _make_row_max(np.float32, np.int32),
    types.float64: _make_row_max(np.float64, np.int64),
}


def _overload_by_dtype(function, implementations):
    """``function``'s overload: ``implementations[dtype of x]``."""
    overload(function, jit_options={"fastmath": {"contract"}})(lambda x: implementations.get(x))


_overload_by_dtype(exp, _exps())
_overload_by_dtype(exp_nonpositive, _exps(upper=False))
_overload_by_dtype(exp_summand, _exps(upper=False, normal=True))


@overload(row_max)
def _overload_row_max(row, where):
    return _ROW_MAXES.get(row.dtype)
