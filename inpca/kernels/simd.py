"""Explicit 8-lane float32/int32 vectors for numba: the building blocks of the CPU micro-kernel.

numba vectorises only innermost loops, and only where it can prove there is no aliasing, so a
register-tiled kernel (accumulators held in registers across a loop over samples, as in a GEMM
micro-kernel) cannot be written as plain numba loops. These types and intrinsics let numba code hold
LLVM vector values (<8 x float>, <8 x i32>) in variables; LLVM keeps them in SIMD registers (one
AVX2 ymm register each here; two SSE registers on a CPU without AVX) and the code is portable:
nothing is specific to one instruction set.

Loads and stores take a 1-D contiguous array and an element index and do NOT check bounds: callers
guarantee that idx .. idx + 7 lie inside the array (the kernel pads every dimension it indexes).
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

LANES = 8
_F = ir.FloatType()
_I32 = ir.IntType(32)
_VF = ir.VectorType(_F, LANES)
_VI = ir.VectorType(_I32, LANES)


class F32x8(types.Type):
    def __init__(self):
        super().__init__(name="f32x8")


class I32x8(types.Type):
    def __init__(self):
        super().__init__(name="i32x8")


f32x8 = F32x8()
i32x8 = I32x8()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VF)


@register_model(I32x8)
class _I32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VI)


def _is_flat(arr, dtype) -> bool:
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == dtype


def _element_ptr(context, builder, array_type, array, idx):
    return builder.gep(context.make_array(array_type)(context, builder, array).data, [idx])


def _splat(builder, scalar, vector_type=_VF):
    v = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vector_type, ir.Undefined), ir.Constant(_VI, [0] * LANES))


def _vector_of(arr):
    """(numba vector type, LLVM vector type) of a 1-D float32 or int32 array, else None."""
    if isinstance(arr, types.Array) and arr.ndim == 1:
        return {types.float32: (f32x8, _VF), types.int32: (i32x8, _VI)}.get(arr.dtype)
    return None


@intrinsic
def load(typingctx, arr, idx):
    """arr[idx : idx + 8] of a float32 (-> f32x8) or int32 (-> i32x8) array."""
    vector = _vector_of(arr)
    if vector is None or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(builder.bitcast(ptr, vector[1].as_pointer()), align=4)
    return vector[0](arr, idx), codegen


@intrinsic
def store(typingctx, arr, idx, value):
    """arr[idx : idx + 8] = value, an f32x8 into a float32 array or an i32x8 into an int32 one."""
    vector = _vector_of(arr)
    if vector is None or not isinstance(idx, types.Integer) or value != vector[0]:
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(ptr, vector[1].as_pointer()), align=4)
        return context.get_dummy_value()
    return types.none(arr, idx, value), codegen


@intrinsic
def broadcast(typingctx, arr, idx):
    """arr[idx] (float32) in all 8 lanes."""
    if not (_is_flat(arr, types.float32) and isinstance(idx, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return _splat(builder, builder.load(_element_ptr(context, builder, sig.args[0], args[0], args[1])))
    return f32x8(arr, idx), codegen


@intrinsic
def mul(typingctx, a, b):
    if not (a == f32x8 and b == f32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(*args)
    return f32x8(a, b), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c: one FMA instruction where the CPU has them, else a multiply and an add.

    (llvm.fmuladd, not llvm.fma: the latter is emulated in software on CPUs without FMA.)
    """
    if not (a == f32x8 and b == f32x8 and c == f32x8):
        return None

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VF, [_VF] * 3), "llvm.fmuladd.v8f32")
        return builder.call(fn, list(args))
    return f32x8(a, b, c), codegen


@intrinsic
def add(typingctx, a, b):
    if not (a == f32x8 and b == f32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(*args)
    return f32x8(a, b), codegen


@intrinsic
def clamp(typingctx, x, lo, hi):
    """min(max(x, lo), hi) lane by lane, for x >= 0 (or -0.0) and 0 < lo < hi float32 scalars.

    Compares the bit patterns as int32 (ordered like the values for non-negative floats; -0.0 reads
    as negative and becomes lo): integer min/max run on more of the vector ALUs than float min/max.
    """
    if not (x == f32x8 and lo == types.float32 and hi == types.float32):
        return None

    def codegen(context, builder, sig, args):
        x = builder.bitcast(args[0], _VI)
        lo = builder.bitcast(_splat(builder, args[1]), _VI)
        hi = builder.bitcast(_splat(builder, args[2]), _VI)
        x = builder.select(builder.icmp_signed(">", x, lo), x, lo)
        x = builder.select(builder.icmp_signed("<", x, hi), x, hi)
        return builder.bitcast(x, _VF)
    return f32x8(x, lo, hi), codegen


@intrinsic
def peel(typingctx, x, exponents):
    """(mantissa of x in [1, 2), exponents + the biased exponent field of x), for positive normal x.

    Exact bit operations, no branch: x = mantissa * 2**(field - 127).
    """
    if not (x == f32x8 and exponents == i32x8):
        return None
    sig = types.Tuple((f32x8, i32x8))(x, exponents)

    def codegen(context, builder, sig, args):
        bits = builder.bitcast(args[0], _VI)
        field = builder.lshr(bits, ir.Constant(_VI, [23] * LANES))
        mantissa = builder.or_(builder.and_(bits, ir.Constant(_VI, [0x007FFFFF] * LANES)),
                               ir.Constant(_VI, [0x3F800000] * LANES))
        return context.make_tuple(builder, sig.return_type,
                                  [builder.bitcast(mantissa, _VF), builder.add(args[1], field)])
    return sig, codegen

