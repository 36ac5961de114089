"""A matrix product written here: register-tile micro-kernels in LLVM IR, and a Numba loop around them.

    C (m, n) = op(A) (m, k) @ B (k, n)  (+ C)             row-major, B's rows contiguous

The convolutions' products are narrow (a 7x7 plane is 49 columns) and their B, the input, is already laid
out row by row. A BLAS copies ("packs") both operands into its own layout on every call; this GEMM copies
nothing, and on these shapes it ran 1.0-1.6x the BLAS's speed here (``python benchmarks/gemm.py``):

- a *tile* of C, MR rows by NV vectors of columns (8 x 48 floats with AVX-512), lives in registers while
  the sum runs: the tile kernels, in LLVM IR, are in ``cpu_tiles``;
- ``tiled_gemm`` walks the tiles: depth in chunks of KC (one chunk for one column block, below), blocks of
  MC_TILES row tiles (A's block stays in the core's L2 cache), column blocks (B's block in L1), row tiles;
- except for a product through the epilogue that is shallow and wide (one chunk of the depth, at least
  ROWS_FIRST_BLOCKS column blocks, B's panel within ROWS_FIRST_PANEL): there each row tile runs along all
  the column blocks, B's panel coming from L2. Down the columns, the tiles store C (and read the residual)
  in short pieces of 8 rows far apart in memory; along the rows they make 8 long runs that the CPU's
  prefetchers follow. A 64 -> 256 channel 1x1 convolution at batch 8 on 56x56 with a ResNet block's
  shortcut took 0.68x the time; ResNet-50's batch-8 forward 0.95x;
- the first row tile of each column block asks for the next block's rows of B from memory as it reads its
  own (``AHEAD``): those rows are 192 bytes each, far apart, which no hardware prefetcher predicts. A
  256 -> 64 channel 1x1 convolution at batch 8 on 56x56 took 0.80x the time forward, its transpose 0.84x;
  ResNet-50 0.96-0.98x and VGG-16 0.97-0.985x at batch 1 and 8;
- a product of one column block (a 7x7 plane's 49 columns) reads each number of A once whatever the walk, so
  the depth is not cut into chunks there: each row tile sums all of it, and A's 8 rows stream whole, long runs
  that the prefetchers follow, instead of 1 KiB pieces (cold weights at batch 1). Inside ResNet-50's batch-1
  saliency pass, alternating pass by pass: its 512-channel 3x3 forward on 7x7 1.80 -> 1.57 ms, the 3x3/2 0.91
  -> 0.80, the 1x1/2 0.73 -> 0.67; with A transposed (an input gradient) it lost (a 1x1/2's 0.82 -> 1.17 ms);
- a pass of tiles costs the same for one valid column as for 48: the 49th column of a 7x7 plane made a
  2048 x 49 x 512 product 1.44x as slow as 2048 x 48 x 512 (1.7x with A transposed). So a last block of up
  to THIN_COLUMNS columns is summed row by row instead, with vectorised Numba loops, while A's block is in
  cache (``_thin_sums``): 1.27x / 1.39x faster on those products.

A needs no particular layout: its rows and its depth each have a stride, so op(A) = A^T (``trans_a``) is the
same code. A product whose B is transposed (a dense layer's forward, the weight gradient) goes to the BLAS.
Two things a BLAS cannot do, the convolutions use:

- the tile kernels apply a convolution's epilogue (scale, bias, a residual shortcut, ReLU) as they store C
  (``tiled_gemm_epilogue``), so a 1x1 convolution's output is written once and never read back;
- B's rows can come from a table of offsets instead of a stride (``tiled_gemm_rows``): the taps of a 7x7
  kernel, each a shifted run of the same input plane, are then the depth of one product, without im2col.

Without AVX2 and FMA, or with MINIXAI_GEMM=blas, every product goes to the BLAS (``cpu_blas.gemm``).
"""
import numpy as np
from numba import njit

from .cpu_tiles import (ADD, AHEAD, EPILOGUE, RELU, RESIDUAL, SHAPE, TABLE, config, is_on, switch,
                        tile_kernels, vector_shape, _tile)

# the products, and (from cpu_tiles) the switch, the tile shape and the kernels' flags: one door to the GEMM
__all__ = ["tiled_gemm", "tiled_gemm_rows", "tiled_gemm_epilogue", "switch", "is_on", "config", "SHAPE",
           "vector_shape", "tile_kernels", "ADD", "AHEAD", "EPILOGUE", "RELU", "RESIDUAL", "TABLE"]

KC = 256                       # depth per pass over a tile (of several column blocks): 256 rows of 48 floats = 48 KiB
MC_TILES = 16                  # row tiles per block of A (8 x 16 rows x KC = 128 KiB of float32, in L2)
THIN_COLUMNS = 3               # a last block of columns this narrow is summed by rows (``_tiled``)
ROWS_FIRST_BLOCKS = 8          # an epilogue's product walks row tiles first from this many column blocks on
ROWS_FIRST_PANEL = 512 << 10   # ... if B's panel (depth x columns) is at most this many bytes (a quarter of L2)


_NO_TABLE = np.zeros(0, np.int64)


@njit(cache=True, nogil=True)
def tiled_gemm(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """Row-major C = op(A) @ B + beta * C (beta 0 or 1) on flat arrays from the given offsets, as
    ``cpu_blas.gemm`` with B not transposed. Needs the switch on (``config() != 0``)."""
    _tiled(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, _NO_TABLE, ADD if beta != 0 else 0, c, c_off, ldc, c, c, 0,
           None)


@njit(cache=True, nogil=True)
def tiled_gemm_rows(m, n, k, a, a_off, lda, b, b_off, rows_at, c, c_off, ldc):
    """C = A @ B, where B's row p is b[b_off + rows_at[p]:][:n]: rows anywhere in b. A shift GEMM's taps
    (rows of one plane, shifted) and channels (planes) then make one product of depth C*R*S instead of
    one product per tap, and no im2col copy. Needs the switch on."""
    _tiled(False, m, n, k, a, a_off, lda, b, b_off, 0, rows_at, 0, c, c_off, ldc, c, c, 0, None)


@njit(cache=True, nogil=True)
def tiled_gemm_epilogue(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc, scale, bias, row0, relu,
                        residual):
    """C = op(A) @ B through the convolutions' epilogue, on flat arrays from the given offsets:

    C[r, j] = max(scale[row0 + r] * (op(A) @ B)[r, j] + bias[row0 + r] (+ residual[c_off + r*ldc + j]), 0 if relu)

    ``residual`` (None or a flat array laid out as C) is a ResNet block's shortcut. The tile kernels apply
    this as they store each tile of C, so the output is written once and never read back. Needs the switch
    on."""
    flags = EPILOGUE | (RELU if relu else 0) | (RESIDUAL if residual is not None else 0)
    _tiled(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, _NO_TABLE, flags, c, c_off, ldc, scale, bias, row0, residual)


@njit(cache=True, nogil=True)
def _tiled(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, table, flags, c, c_off, ldc, scale, bias, row0, residual):
    """The walk over the tiles; ``flags`` (ADD, EPILOGUE, RELU, RESIDUAL) as the tile kernels read them,
    the epilogue's at the last chunk of the depth only, with scale[row0:], bias[row0:] and the residual (None,
    or an array laid out as C from c_off on). A non-empty ``table`` gives B's rows' offsets (ldb is then
    unused). A last block of columns up to THIN_COLUMNS wide (a 7x7 plane's 49th) is summed row by row
    (``_thin_sums``) instead of by a tile pass, which costs the same whether one lane or sixteen are valid;
    an empty sum (k = 0) is all thin columns, so that its C too goes through the flags' store."""
    setting = config()
    mr, nv_max, lanes = setting & 255, (setting >> 8) & 255, (setting >> 16) * 4 // c.itemsize
    size = c.itemsize
    a_rs, a_ps = (1, lda) if trans_a else (lda, 1)
    pa = np.int64(a.ctypes.data) + a_off * size
    pb = np.int64(b.ctypes.data) + b_off * size
    pc = np.int64(c.ctypes.data) + c_off * size
    pscale, pbias = np.int64(scale.ctypes.data) + row0 * size, np.int64(bias.ctypes.data) + row0 * size
    pres = np.int64(residual.ctypes.data) + c_off * size if residual is not None else np.int64(0)
    width, block = nv_max * lanes, MC_TILES * mr
    by_table = table.size > 0
    thin = n if k == 0 else n % width if n > width and n % width <= THIN_COLUMNS else 0
    wide = n - thin                             # the columns the tile kernels take
    depth = max(k, 1) if wide <= width and not trans_a else KC     # the depth of one pass over a tile
    # an epilogue's product in one chunk of the depth, wide, with B's panel small: each row tile along all columns
    rows_first = (flags & EPILOGUE != 0 and k <= KC and wide >= ROWS_FIRST_BLOCKS * width
                  and k * wide * size <= ROWS_FIRST_PANEL)
    if thin:                                    # (allocated only here: Numba's allocator counts every array in
        sums = np.zeros(thin * m, c.dtype)      # shared counters, which two threads' calls contend on)
        column = np.empty(thin * depth, c.dtype)  # the thin columns' sums over the depth, sums[j * m + r];
                                                # B's thin columns in one chunk of the depth, column[j * depth + p]
    for p0 in range(0, k, depth):
        kc = min(depth, k - p0)
        step = ((flags & ADD) if p0 == 0 else ADD) | (TABLE if by_table else 0)
        step |= (flags & ~ADD) if p0 + kc == k else 0
        for j in range(thin):
            for p in range(kc):
                column[j * depth + p] = b[b_off + (table[p0 + p] if by_table else (p0 + p) * ldb) + wide + j]
        for m1 in range(0, m, block):               # A's block of rows stays in L2 across the column blocks
            n_blocks, n_tiles = (wide + width - 1) // width, (min(m, m1 + block) - m1 + mr - 1) // mr
            # the row tile i and column block j, walked down each column block, or (rows_first) along each row tile
            i = j = 0
            for _ in range(n_blocks * n_tiles):
                m0, n0 = m1 + i * mr, j * width
                rows, cols = min(mr, m - m0), min(width, wide - n0)
                nv = nv_max if cols == width else (cols + lanes - 1) // lanes
                last = cols - (nv - 1) * lanes
                # B's block: from row p0 of the table, or p0 rows of ldb on
                b_at, b_rows = ((pb + n0 * size, np.int64(table.ctypes.data) + p0 * 8) if by_table
                                else (pb + (p0 * ldb + n0) * size, ldb))
                _tile(size, nv, pa + (m0 * a_rs + p0 * a_ps) * size, a_rs, a_ps, b_at, b_rows,
                      pc + (m0 * ldc + n0) * size, ldc, kc, rows, last, step | (AHEAD if i == 0 else 0),
                      pscale + m0 * size, pbias + m0 * size, pres + (m0 * ldc + n0) * size)
                if rows_first:
                    i, j = (i + 1, 0) if j + 1 == n_blocks else (i, j + 1)
                else:
                    i, j = (0, j + 1) if i + 1 == n_tiles else (i + 1, j)
            if thin:                                # ... and the thin columns while A's block is in cache
                _thin_sums(trans_a, m, thin, m1, min(m, m1 + block), p0, kc, a, a_off, lda, column, depth, sums)
    for j in range(thin):                       # C's thin columns, through what the tile kernels' stores do
        for r in range(m):
            at = c_off + r * ldc + wide + j
            v = sums[j * m + r] + c[at] if flags & ADD else sums[j * m + r]
            if flags & EPILOGUE:
                v = scale[row0 + r] * v + bias[row0 + r]
                if residual is not None:
                    v = v + residual.flat[at]
            c[at] = 0 if flags & EPILOGUE and flags & RELU and v < 0 else v


@njit(cache=True, nogil=True)
def _thin_sums(trans_a, m, thin, r0, r1, p0, kc, a, a_off, lda, column, depth, sums):
    """sums[j*m + r] += sum_{p < kc} op(A)[r, p0 + p] * column[j*depth + p] for rows r0..r1 and j < thin: with A
    transposed, a sweep along A's contiguous rows (op(A)'s columns); otherwise a dot product per row and
    column. The indices are unsigned: Numba then adds no test for a negative one, and LLVM vectorises the
    loops (12x faster here)."""
    if trans_a:
        for p in range(kc):
            at = a_off + (p0 + p) * lda
            for j in range(thin):
                bv, base = column[j * depth + p], j * m
                for r in range(r0, r1):
                    sums[np.uint64(base + r)] += a[np.uint64(at + r)] * bv
        return
    for r in range(r0, r1):
        for j in range(thin):
            sums[j * m + r] += _dot(a, a_off + r * lda + p0, column, j * depth, kc)


@njit(cache=True, nogil=True, fastmath=True)
def _dot(a, at, v, v_at, n):
    """sum_p a[at + p] * v[v_at + p] for p < n, vectorised (fastmath lets the sum be reordered)."""
    s = v.dtype.type(0)
    for p in range(n):
        s += a[np.uint64(at + p)] * v[np.uint64(v_at + p)]
    return s
