"""The register-tile micro-kernels of minixai's GEMM (``cpu_gemm`` walks them), in LLVM IR, and the switch.

A *tile* of C, MR rows by NV vectors of columns (8 x 48 floats with AVX-512), lives in registers while
``kc`` steps of the sum run: at step p the kernel loads NV vectors of B's row p and, for each of the MR
rows, one number A[r, p] spread over a vector ("broadcast"), and adds their products (MR * NV fused
multiply-adds). The kernels are written in LLVM IR below (``_tile_kernel``), compiled when this module is
imported for the CPU it runs on, and called from Numba under fixed names (as ``cpu_blas`` does for the
BLAS). The last column vector is masked (only its valid lanes are read and written), and a tile with fewer
than MR rows repeats its last row's loads and stores only the rows that exist. Flags make the same kernel
add to C, apply a convolution's epilogue as it stores C, read B's rows through a table of offsets, or ask
for the next column block's rows of B from memory while it runs.

On a CPU without AVX-512 the tiles are 6 x 2 vectors of 8 floats (AVX2 has 16 vector registers, not 32);
without AVX2 and FMA the switch stays off and every product goes to the BLAS (``cpu_blas.gemm``).
"""
import ctypes
import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types

MAX_NV = 3                     # the kernels exist for 1..MAX_NV vectors per tile row (the linker needs all)
ADD, EPILOGUE, RELU, RESIDUAL, TABLE, AHEAD = 1, 2, 4, 8, 16, 32      # the tile kernels' flags


def vector_shape(features=None, wanted=None):
    """(float32 lanes, MR rows, NV vectors) of the register tile for this CPU, or None if it has no FMA.

    MR * NV accumulators, NV vectors of B and a broadcast must fit the vector registers: 24 + 3 + 1 of
    AVX-512's 32; 12 + 2 + 1 of AVX2's 16. ``wanted="avx2"`` (MINIXAI_GEMM_TILES=avx2) takes AVX2's tile on
    an AVX-512 CPU too, so that the tests run the code an AVX2 machine runs."""
    features = features if features is not None else llvm.get_host_cpu_features()
    if wanted not in (None, "", "avx2"):
        raise ValueError(f"MINIXAI_GEMM_TILES={wanted!r}; valid: avx2 (or unset: this CPU's widest)")
    if features.get("avx512f") and wanted != "avx2":
        return 16, 8, 3
    if features.get("avx2") and features.get("fma"):
        return 8, 6, 2
    return None


_i64 = ir.IntType(64)
_i32 = ir.IntType(32)
_i8p = ir.IntType(8).as_pointer()


def _tile_kernel(module, name, scalar, lanes, mr, nv):
    """void name(a, a_rs, a_ps, b, ldb, c, ldc, kc, rows, last, flags, scale, bias, res), every argument an
    i64 (pointers too):

    v = (C[r, j] if flags & ADD else 0) + sum_{p < kc} A[r*a_rs + p*a_ps] * B[p*ldb + j]
    C[r, j] = v, or with flags & EPILOGUE:  max(scale[r] * v + bias[r] (+ res[r*ldc + j]), 0 if flags & RELU)
    (the residual with flags & RESIDUAL) for r < rows (<= mr) and j < (nv - 1) * lanes + last (strides in
    elements; the vector count is fixed). The epilogue is ``cpu_pointwise.epilogue``'s arithmetic, in its
    order and without fused multiply-adds, so that it rounds as that function does. With flags & TABLE, ldb
    is the address of a table of int64 offsets and B's row p starts at B[ldb[p]] instead of B[p*ldb] (the
    test is the same at every step, and LLVM takes it out of the loop). With flags & AHEAD, step p also
    prefetches the nv vectors of B's row p that follow the tile's columns (the next column block's)."""
    vec = ir.VectorType(scalar, lanes)
    mask_t = ir.VectorType(ir.IntType(1), lanes)
    size = 4 if isinstance(scalar, ir.FloatType) else 8
    ptr_t = scalar.as_pointer()
    vptr_t = vec.as_pointer()
    suffix = f"v{lanes}{'f32' if size == 4 else 'f64'}"
    fma = _intrinsic(module, f"llvm.fma.{suffix}", ir.FunctionType(vec, [vec, vec, vec]))
    load = _intrinsic(module, f"llvm.masked.load.{suffix}.p0",
                      ir.FunctionType(vec, [vptr_t, _i32, mask_t, vec]))
    store = _intrinsic(module, f"llvm.masked.store.{suffix}.p0",
                       ir.FunctionType(ir.VoidType(), [vec, vptr_t, _i32, mask_t]))
    prefetch = _intrinsic(module, "llvm.prefetch.p0", ir.FunctionType(ir.VoidType(), [_i8p, _i32, _i32, _i32]))

    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [_i64] * 14), name)
    a, a_rs, a_ps, b, ldb, c, ldc, kc, rows, last, flags, scale, bias, res = fn.args
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    bld = ir.IRBuilder(entry)

    def at(base, index):                      # &base[index] for an i64 address and an element index
        return bld.inttoptr(bld.add(base, bld.mul(index, ir.Constant(_i64, size))), ptr_t)

    def spread(value, vtype):                 # a vector of `lanes` copies of value
        one = bld.insert_element(ir.Constant(vtype, ir.Undefined), value, ir.Constant(_i32, 0))
        first = ir.Constant(ir.VectorType(_i32, lanes), [0] * lanes)
        return bld.shuffle_vector(one, ir.Constant(vtype, ir.Undefined), first)

    lane = ir.Constant(ir.VectorType(_i32, lanes), list(range(lanes)))
    last_mask = bld.icmp_signed("<", lane, spread(bld.trunc(last, _i32), ir.VectorType(_i32, lanes)))
    full_mask = ir.Constant(mask_t, [1] * lanes)
    masks = [full_mask] * (nv - 1) + [last_mask]
    zero = ir.Constant(vec, [0.0] * lanes)
    # rows past `rows` read the last row again (in bounds) and are not stored
    a_rows = [bld.mul(bld.select(bld.icmp_signed("<", ir.Constant(_i64, r), rows), ir.Constant(_i64, r),
                                 bld.sub(rows, ir.Constant(_i64, 1))), a_rs) for r in range(mr)]

    def flag(bit):
        return bld.icmp_signed("!=", bld.and_(flags, ir.Constant(_i64, bit)), ir.Constant(_i64, 0))

    adding, epilogue, relu, residual = flag(ADD), flag(EPILOGUE), flag(RELU), flag(RESIDUAL)
    with bld.if_then(residual):               # the shortcut is read at the end: ask for it from memory now
        for r in range(mr):
            for v in range(nv):
                line = at(res, bld.add(bld.mul(ir.Constant(_i64, r), ldc), ir.Constant(_i64, v * lanes)))
                bld.call(prefetch, [bld.bitcast(line, _i8p), ir.Constant(_i32, 0), ir.Constant(_i32, 3),
                                    ir.Constant(_i32, 1)])
    start = bld.block
    bld.branch(loop)

    bld.position_at_end(loop)                 # one step p of the sum: MR x NV fused multiply-adds
    p = bld.phi(_i64)
    acc = [[bld.phi(vec) for _ in range(nv)] for _ in range(mr)]
    by_table = bld.icmp_signed("!=", bld.and_(flags, ir.Constant(_i64, TABLE)), ir.Constant(_i64, 0))
    row_at = bld.inttoptr(bld.add(ldb, bld.mul(p, ir.Constant(_i64, 8))), _i64.as_pointer())
    with bld.if_else(by_table) as (from_table, by_stride):
        with from_table:
            listed, listed_block = bld.load(row_at, align=8), bld.block
        with by_stride:
            strided, strided_block = bld.mul(p, ldb), bld.block
    b_row = bld.phi(_i64)
    b_row.add_incoming(listed, listed_block)
    b_row.add_incoming(strided, strided_block)
    b_vec = [bld.call(load, [bld.bitcast(at(b, bld.add(b_row, ir.Constant(_i64, v * lanes))), vptr_t),
                             ir.Constant(_i32, size), masks[v], zero]) for v in range(nv)]
    with bld.if_then(flag(AHEAD)):            # ask for the next column block's row p of B
        for v in range(nv):
            line = at(b, bld.add(b_row, ir.Constant(_i64, (nv + v) * lanes)))
            bld.call(prefetch, [bld.bitcast(line, _i8p), ir.Constant(_i32, 0), ir.Constant(_i32, 3),
                                ir.Constant(_i32, 1)])
    a_col = bld.mul(p, a_ps)
    new = []
    for r in range(mr):
        a_rp = spread(bld.load(at(a, bld.add(a_rows[r], a_col)), align=size), vec)
        new.append([bld.call(fma, [a_rp, b_vec[v], acc[r][v]]) for v in range(nv)])
    p_next = bld.add(p, ir.Constant(_i64, 1))
    latch = bld.block                         # the step's last block (after the choice of B's row)
    p.add_incoming(ir.Constant(_i64, 0), start)
    p.add_incoming(p_next, latch)
    for r in range(mr):
        for v in range(nv):
            acc[r][v].add_incoming(zero, start)
            acc[r][v].add_incoming(new[r][v], latch)
    bld.cbranch(bld.icmp_signed("<", p_next, kc), loop, done)

    bld.position_at_end(done)                 # C's rows that exist, its valid columns
    no_lane = ir.Constant(mask_t, [0] * lanes)

    def where_set(condition, mask):           # a masked load with no lane set reads no memory
        return bld.and_(mask, bld.select(condition, full_mask, no_lane))

    for r in range(mr):
        with bld.if_then(bld.icmp_signed("<", ir.Constant(_i64, r), rows)):
            c_row = bld.mul(ir.Constant(_i64, r), ldc)
            values = []
            for v in range(nv):
                where = bld.bitcast(at(c, bld.add(c_row, ir.Constant(_i64, v * lanes))), vptr_t)
                old = bld.call(load, [where, ir.Constant(_i32, size), where_set(adding, masks[v]), zero])
                values.append((where, bld.select(adding, bld.fadd(new[r][v], old), new[r][v])))
            with bld.if_else(epilogue) as (then, otherwise):
                with then:
                    row_scale = spread(bld.load(at(scale, ir.Constant(_i64, r)), align=size), vec)
                    row_bias = spread(bld.load(at(bias, ir.Constant(_i64, r)), align=size), vec)
                    for v, (where, value) in enumerate(values):
                        value = bld.fadd(bld.fmul(row_scale, value), row_bias)
                        shortcut = bld.bitcast(at(res, bld.add(c_row, ir.Constant(_i64, v * lanes))), vptr_t)
                        join = bld.call(load, [shortcut, ir.Constant(_i32, size), where_set(residual, masks[v]), zero])
                        value = bld.select(residual, bld.fadd(value, join), value)
                        negative = bld.fcmp_ordered("<", value, zero)
                        value = bld.select(relu, bld.select(negative, zero, value), value)
                        bld.call(store, [value, where, ir.Constant(_i32, size), masks[v]])
                with otherwise:
                    for v, (where, value) in enumerate(values):
                        bld.call(store, [value, where, ir.Constant(_i32, size), masks[v]])
    bld.ret_void()


def _intrinsic(module, name, fntype):
    return module.globals.get(name) or ir.Function(module, fntype, name)


def tile_kernels(shape, prefix):
    """Compile the kernels {prefix}_{s|d}{nv} (float32 / float64, nv = 1..MAX_NV) for the tile shape
    (float32 lanes, MR, ...) in a module of their own; returns (library, {name: address})."""
    lanes, mr = shape[:2]
    module = ir.Module(prefix)
    names = [f"{prefix}_{t}{nv}" for t in "sd" for nv in range(1, MAX_NV + 1)]
    for name in names:
        scalar = ir.FloatType() if name[-2] == "s" else ir.DoubleType()
        _tile_kernel(module, name, scalar, lanes if name[-2] == "s" else lanes // 2, mr, int(name[-1]))
    library = _finalize(module)
    return library, {name: library.get_pointer_to_function(name) for name in names}


def _finalize(module):
    """The module compiled by Numba's code generator (for this CPU, optimised as Numba's own code)."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    with global_compiler_lock:
        library = cpu_target.target_context.codegen().create_library(module.name)
        library.add_ir_module(module)
        library.finalize()
    return library


def _compile(shape):
    """Build, compile and bind the tile kernels and the switch; returns (libraries, the switch's setter and
    getter)."""
    # without FMA the kernels are stand-ins (4 lanes, 1 row) that the switch never lets run
    tiles, addresses = tile_kernels(shape if shape is not None else (4, 1), "minixai_gemm")
    module = ir.Module("minixai_gemm_switch")
    switch = ir.GlobalVariable(module, _i64, "minixai_gemm_switch")
    switch.initializer = ir.Constant(_i64, 0)
    config = ir.Function(module, ir.FunctionType(_i64, []), "minixai_gemm_config")
    bld = ir.IRBuilder(config.append_basic_block("entry"))
    bld.ret(bld.load(switch))
    setter = ir.Function(module, ir.FunctionType(ir.VoidType(), [_i64]), "minixai_gemm_set")
    bld = ir.IRBuilder(setter.append_basic_block("entry"))
    bld.store(setter.args[0], switch)
    bld.ret_void()
    library = _finalize(module)
    addresses["minixai_gemm_config"] = library.get_pointer_to_function("minixai_gemm_config")
    for name, address in addresses.items():
        llvm.add_symbol(name, address)
    setter = ctypes.CFUNCTYPE(None, ctypes.c_int64)(library.get_pointer_to_function("minixai_gemm_set"))
    getter = ctypes.CFUNCTYPE(ctypes.c_int64)(addresses["minixai_gemm_config"])
    return (tiles, library), setter, getter


SHAPE = vector_shape(wanted=os.environ.get("MINIXAI_GEMM_TILES"))
_libraries, _set, _get = _compile(SHAPE)      # the libraries must live as long as the process


def is_on():
    """Whether the tiled GEMM is switched on (from Python; jitted code calls ``config()``)."""
    return _get() != 0


def switch(on):
    """Turn the tiled GEMM on (the kernels' products go through it) or off (all go to the BLAS)."""
    if on and SHAPE is None:
        raise ValueError("the tiled GEMM needs AVX2 and FMA, which this CPU lacks")
    lanes, mr, nv = SHAPE if on else (0, 0, 0)
    _set(lanes << 16 | nv << 8 | mr)


_I = types.int64
_SIGNATURE = types.void(*[_I] * 14)
config = types.ExternalFunction("minixai_gemm_config", types.int64())
_s1, _s2, _s3, _d1, _d2, _d3 = (types.ExternalFunction(f"minixai_gemm_{t}{nv}", _SIGNATURE)
                                for t in "sd" for nv in range(1, MAX_NV + 1))


@njit(cache=True, nogil=True)
def _tile(size, nv, *args):
    """The tile kernel for the element size (4: float32, 8: float64) and nv vectors per row."""
    if size == 4:
        if nv == 3:
            _s3(*args)
        elif nv == 2:
            _s2(*args)
        else:
            _s1(*args)
    elif nv == 3:
        _d3(*args)
    elif nv == 2:
        _d2(*args)
    else:
        _d1(*args)
