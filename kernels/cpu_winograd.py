"""3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016), on the CPU.

A 2x2 block of outputs of a 3x3 filter g over the 4x4 input tile d under it needs 16 multiplications
instead of 36:

    Y = A^T [(G g G^T) * (B^T d B)] A          (* elementwise; tiles start every 2 pixels)

    B^T = [[1, 0, -1, 0],    G = [[1,    0,   0  ],    A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],         [1/2,  1/2, 1/2],           [0, 1, -1, -1]]
           [0, -1, 1, 0],         [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]        [0,    0,   1  ]]

Summed over the input channels, the elementwise product is 16 independent matrix products, one for
each position xi = (a, b) of the transformed 4x4 tile:

    M[xi] (K, P) = U[xi] (K, C) @ V[xi] (C, P)       U = G g G^T,  V = B^T d B,  P = number of tiles

so the convolution costs 16 GEMMs of K x C x P (2.25x fewer multiplications than the direct one's
K x 9C x 4P) plus the transforms, which are additions only. The entries of B, G, A are 0, +-1 and
+-1/2, so the float32 error stays close to the direct sum's (measured on a 256-channel layer: 1.4x its
root-mean-square error; the tests allow 4x). Two differences at the edges of float: an input of +-inf
gives NaN rather than +-inf (the transforms compute inf - inf), in the same outputs the direct sum makes
non-finite; and values near float32's maximum can overflow in the transforms where the direct sum would not.

The input gradient is a 3x3 convolution too: dout padded by 2 - P, with W flipped and transposed. A flip
is flip(g) = J g J with J the 3x3 reversal, and G J (G's columns reversed) is G with rows 0 and 3 swapped,
as rows 1 and 2 read the same backwards: G J = S G. Hence G flip(g) G^T = S (G g G^T) S^T, so the same U
serves: U_grad[(a, b)] = U[(s(a), s(b))] with s = (3, 1, 2, 0), its (K, C) transposed by the GEMM.

The tiles are processed in chunks of tile rows, in one of two schedules (``schedule``). Either each step of
a chunk runs on all threads (chunks whose V and M fit ``SCRATCH_BYTES``): the input transform in parallel
over channels, the 16 GEMMs over Numba's threads (one ``cpu_blas.gemm`` each), the output transform, with
``cpu_pointwise.epilogue``, over output channels. Or each thread takes whole chunks, small enough to stay in
its core's cache (``THREAD_SCRATCH_BYTES``), through all three steps: faster for narrow layers.
"""
import numba
import numpy as np
from numba import njit, prange

from .cpu_blas import gemm
from .cpu_pointwise import epilogue

# When F(2x2, 3x3) beats the direct kernels (`python benchmarks/conv_layers.py`, batch 1, both directions):
# 64 channels on 56x56 1.0-1.1x, 16 or 32 channels 0.65-0.77x; 512 channels on 14x14 (49 tiles) 1.05-1.35x,
# on 7x7 (16 tiles) 0.65x, but 1.6-1.8x at batch 8 (128 tiles); 128-512 channels on 28x28-112x112 1.2-1.9x.
MIN_CHANNELS = 64
MIN_TILES = 40
SCRATCH_BYTES = 32 << 20    # V and M of one chunk of tiles; 8 MiB chunks ran 10-25% slower (narrower
                            # GEMMs, and U is read once per chunk)
# Two schedules. `_winograd` runs each step of a chunk (input transform, 16 products, output transform) on all
# threads, which pass V and M to each other through the shared cache; `_winograd_by_thread` gives each thread
# whole chunks of its own, small enough (THREAD_SCRATCH_BYTES) that V and M stay in its core's cache, at the
# price of every thread reading all of U. By thread is faster with at most 128 x 128 channels and at least
# 4 chunks per thread: 64 channels on 224x224 1.3x, 128 on 112x112 1.1x, at batch 8 64 on 56x56 1.3-1.45x and
# 128 on 28x28 1.1-1.2x; 256 channels and more 0.2-0.7x (python benchmarks/conv_layers.py --schedules).
THREAD_SCRATCH_BYTES = 768 << 10
BY_THREAD_MAX_CHANNELS = 128 * 128      # C * K
BY_THREAD = None                        # None: as above; True / False force a schedule (tests, benchmarks)
_SWAP = (3, 1, 2, 0)        # flipping a filter swaps rows 0 and 3 of G (module docstring)
_IDENTITY = np.arange(16)
_FLIPPED = np.array([_SWAP[a] * 4 + _SWAP[b] for a in range(4) for b in range(4)])


def applies(kernel, stride, padding, dilation, channels, out_shape):
    """F(2x2, 3x3) covers 3x3 filters at stride 1, no dilation; padding 0-2 (the input gradient's padding
    2 - P is then 0-2 too: no cropping, which the kernel would handle but the tests do not draw). It is
    faster with at least MIN_CHANNELS input and output channels and MIN_TILES 2x2 output tiles.
    ``out_shape`` (N, OH, OW): the batch and plane of the forward's output."""
    N, OH, OW = out_shape
    return (tuple(kernel) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and all(0 <= p <= 2 for p in padding) and channels >= MIN_CHANNELS
            and N * ((OH + 1) // 2) * ((OW + 1) // 2) >= MIN_TILES)


def conv3x3_forward(x, w, scale, bias, relu, padding, out, buffer, residual=None):
    """out = epilogue(conv(x, w), scale, bias, relu, residual); x (N, C, H, W), w (K, C, 3, 3), out and
    residual (N, K, OH, OW). ``buffer(name, size, dtype)`` hands out reusable scratch."""
    _run(x, padding, w, False, _IDENTITY, scale, bias, relu, out, buffer, residual=residual)


def conv3x3_backward_input(dout, w, padding, scale, gate, clip, dx, buffer, residual=None):
    """dx (+ residual) for dout * scale[k] where gate > 0 (clip: dout's negative part dropped first), as
    ``cpu.conv2d_backward_input``: the forward kernel on dout padded by 2 - P, with U flipped."""
    C = w.shape[1]
    _run(dout, (2 - padding[0], 2 - padding[1]), w, True, _FLIPPED, np.ones(C, dx.dtype),
         np.zeros(C, dx.dtype), False, dx, buffer, scale, gate, clip, residual)


def schedule(C, K, out_shape, itemsize, threads):
    """(by thread?, tile rows per chunk) for a layer with C -> K channels and outputs out_shape (N, OH, OW):
    the rule above (BY_THREAD forces the schedule), chunks sized to THREAD_SCRATCH_BYTES or SCRATCH_BYTES."""
    N, OH, OW = out_shape
    tile_rows = N * ((OH + 1) // 2)
    per_row = 16 * (C + K) * ((OW + 1) // 2) * itemsize          # bytes of V and M per tile row
    rows = max(1, THREAD_SCRATCH_BYTES // per_row)
    by_thread = BY_THREAD if BY_THREAD is not None else (C * K <= BY_THREAD_MAX_CHANNELS
                                                         and tile_rows >= 4 * threads * rows)
    if by_thread:
        return True, min(rows, -(-tile_rows // threads))
    return False, min(tile_rows, max(1, SCRATCH_BYTES // per_row))


def _run(x, padding, w, trans, perm, scale, bias, relu, out, buffer, in_scale=None, gate=None, clip=False,
         residual=None):
    """Transform the filters, choose the schedule, size its chunks of tile rows (to SCRATCH_BYTES, or per
    thread to THREAD_SCRATCH_BYTES) and run it (arguments as in `_winograd`; w (K, C, 3, 3) of the forward
    convolution, whichever direction runs)."""
    U = buffer("winograd_U", 16 * w.shape[0] * w.shape[1], w.dtype).reshape(16, w.shape[0], w.shape[1])
    _filter_transform(w, U)
    N, C = x.shape[:2]
    K, OH, OW = out.shape[1:]
    threads = numba.get_num_threads()
    by_thread, rows = schedule(C, K, (N, OH, OW), x.itemsize, threads)
    copies, width = (threads if by_thread else 1), rows * ((OW + 1) // 2)
    V = buffer("winograd_V", copies * 16 * C * width, x.dtype).reshape(copies, 16, C, width)
    M = buffer("winograd_M", copies * 16 * K * width, x.dtype).reshape(copies, 16, K, width)
    V, M = (V, M) if by_thread else (V[0], M[0])
    gated = gate is not None
    kernel = _winograd_by_thread if by_thread else _winograd
    kernel(x, padding[0], padding[1], gate if gated else x, gated, clip,
           in_scale if in_scale is not None else np.ones(C, x.dtype),
           U, trans, perm, scale, bias, relu, residual, out, V, M, threads)


@njit(parallel=True, cache=True)
def _filter_transform(w, U):
    """U[a*4 + b, k, c] = (G g G^T)[a, b] for g = w[k, c] (3x3)."""
    K, C = w.shape[0], w.shape[1]
    for k in prange(K):
        for c in range(C):              # plain indexing: a view of w per filter would contend on its refcount
            for a in range(4):          # row a of G g: g's row 0, 2, or half the sum of its rows with +-row 1
                if a == 0 or a == 3:
                    r = 0 if a == 0 else 2
                    t0, t1, t2 = w[k, c, r, 0], w[k, c, r, 1], w[k, c, r, 2]
                else:
                    sign = 1.0 if a == 1 else -1.0
                    t0 = 0.5 * (w[k, c, 0, 0] + sign * w[k, c, 1, 0] + w[k, c, 2, 0])
                    t1 = 0.5 * (w[k, c, 0, 1] + sign * w[k, c, 1, 1] + w[k, c, 2, 1])
                    t2 = 0.5 * (w[k, c, 0, 2] + sign * w[k, c, 1, 2] + w[k, c, 2, 2])
                U[a * 4, k, c] = t0                         # ... times G^T
                U[a * 4 + 1, k, c] = 0.5 * (t0 + t1 + t2)
                U[a * 4 + 2, k, c] = 0.5 * (t0 - t1 + t2)
                U[a * 4 + 3, k, c] = t2


@njit(parallel=True, cache=True)
def _winograd(x, ph, pw, gate, gated, clip, in_scale, U, trans, perm, scale, bias, relu, residual, out, V, M,
              threads):
    """out[n, k] = epilogue(conv3x3(x', padding (ph, pw)), scale[k], bias[k], relu, residual) by F(2x2, 3x3),
    where x' = x * in_scale[c] where gate > 0 (if gated; clip: 0 where x < 0). Each step of a chunk runs on all
    threads: the input transform over channels, the 16 products, the output transform over output channels.

    U (16, K, C), or with ``trans`` (16, C, K) read transposed; M[xi] uses U[perm[xi]].
    V (16, C, width), M (16, K, width): scratch for one chunk of width // TW tile rows.
    """
    N, C, H, W = x.shape
    K, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    chunk = V.shape[2] // TW
    Uf, Vf, Mf = U.reshape(U.size), V.reshape(V.size), M.reshape(M.size)
    for tr0 in range(0, N * TH, chunk):                # tr: tile row th of image n, tr = n * TH + th
        tr1 = min(N * TH, tr0 + chunk)
        for c in prange(C):
            _input_tiles(x, c, tr0, tr1, TH, TW, ph, pw, gate, gated, clip, in_scale[c], V,
                         np.empty((4, 2 * TW + 2), x.dtype))
        for tid in prange(threads):
            for xi in range(tid, 16, threads):
                _product(Uf, Vf, Mf, xi, trans, perm, K, C, V.shape[2], (tr1 - tr0) * TW)
        for k in prange(K):
            _output_tiles(M, k, tr0, tr1, TH, TW, scale[k], bias[k], relu, residual, out,
                          np.empty((2, 4, TW), M.dtype))


@njit(parallel=True, cache=True)
def _winograd_by_thread(x, ph, pw, gate, gated, clip, in_scale, U, trans, perm, scale, bias, relu, residual, out,
                        V, M, threads):
    """As `_winograd`, but each thread takes whole chunks of tile rows through all three steps, so that its
    own V[t] (16, C, width) and M[t] (16, K, width) stay in its cache from one step to the next."""
    N, C, H, W = x.shape
    K, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    chunk = V.shape[3] // TW
    n_chunks = (N * TH + chunk - 1) // chunk
    Uf = U.reshape(U.size)
    for t in prange(threads):
        Vt, Mt = V[t], M[t]
        Vf, Mf = Vt.reshape(Vt.size), Mt.reshape(Mt.size)
        d, atm = np.empty((4, 2 * TW + 2), x.dtype), np.empty((2, 4, TW), M.dtype)
        for part in range(t, n_chunks, threads):
            tr0 = part * chunk
            tr1 = min(N * TH, tr0 + chunk)
            for c in range(C):
                _input_tiles(x, c, tr0, tr1, TH, TW, ph, pw, gate, gated, clip, in_scale[c], Vt, d)
            for xi in range(16):
                _product(Uf, Vf, Mf, xi, trans, perm, K, C, V.shape[3], (tr1 - tr0) * TW)
            for k in range(K):
                _output_tiles(Mt, k, tr0, tr1, TH, TW, scale[k], bias[k], relu, residual, out, atm)


@njit(cache=True)
def _input_tiles(x, c, tr0, tr1, TH, TW, ph, pw, gate, gated, clip, sc, V, d):
    """V[a*4 + b, c, p] = (B^T d B)[a, b] for the tiles p of tile rows tr0..tr1 (p = (tr - tr0) * TW + tw),
    d the 4x4 tile of x'[n, c] at (2th - ph, 2tw - pw); d (4, 2TW + 2): one tile row's 4 input rows."""
    H, W = x.shape[2], x.shape[3]
    for tr in range(tr0, tr1):
        n, th = tr // TH, tr % TH
        for r in range(4):
            i = 2 * th - ph + r
            for j in range(2 * TW + 2):
                v = j - pw
                if i < 0 or i >= H or v < 0 or v >= W:
                    d[r, j] = 0
                elif (gated and not gate[n, c, i, v] > 0) or (clip and x[n, c, i, v] < 0):
                    d[r, j] = 0
                else:
                    d[r, j] = x[n, c, i, v] * sc
        for j in range(2 * TW + 2):                   # B^T d, in place: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3
            d0, d1, d2, d3 = d[0, j], d[1, j], d[2, j], d[3, j]
            d[0, j], d[1, j], d[2, j], d[3, j] = d0 - d2, d1 + d2, d2 - d1, d1 - d3
        p0 = (tr - tr0) * TW
        for r in range(4):                            # ... times B, the same combination of columns
            for tw in range(TW):
                e0, e1, e2, e3 = d[r, 2 * tw], d[r, 2 * tw + 1], d[r, 2 * tw + 2], d[r, 2 * tw + 3]
                V[r * 4, c, p0 + tw] = e0 - e2
                V[r * 4 + 1, c, p0 + tw] = e1 + e2
                V[r * 4 + 2, c, p0 + tw] = e2 - e1
                V[r * 4 + 3, c, p0 + tw] = e1 - e3


@njit(cache=True)
def _product(Uf, Vf, Mf, xi, trans, perm, K, C, width, P):
    """M[xi, :, :P] = U[perm[xi]] @ V[xi, :, :P] on the flat arrays, V (16, C, width), M (16, K, width)
    (kc,cp->kp)"""
    gemm(trans, False, K, P, C, Uf, perm[xi] * K * C, K if trans else C,
         Vf, xi * C * width, width, 0.0, Mf, xi * K * width, width)


@njit(cache=True)
def _output_tiles(M, k, tr0, tr1, TH, TW, sc, b, relu, residual, out, atm):
    """out[n, k, 2th:2th+2, 2tw:2tw+2] = epilogue(A^T m A) for the tiles of tile rows tr0..tr1, m = M[:, k, p]
    as 4x4; atm (2, 4, TW): A^T m for one tile row."""
    OH, OW = out.shape[2], out.shape[3]
    for tr in range(tr0, tr1):
        n, th = tr // TH, tr % TH
        p0 = (tr - tr0) * TW
        for b4 in range(4):
            for tw in range(TW):
                m0, m1 = M[b4, k, p0 + tw], M[4 + b4, k, p0 + tw]
                m2, m3 = M[8 + b4, k, p0 + tw], M[12 + b4, k, p0 + tw]
                atm[0, b4, tw] = m0 + m1 + m2
                atm[1, b4, tw] = m1 - m2 - m3
        for r in range(2):
            i = 2 * th + r
            if i >= OH:
                continue
            for tw in range(OW // 2):                 # whole tiles: no test per element
                y0 = atm[r, 0, tw] + atm[r, 1, tw] + atm[r, 2, tw]
                y1 = atm[r, 1, tw] - atm[r, 2, tw] - atm[r, 3, tw]
                out[n, k, i, 2 * tw] = epilogue(y0, sc, b, relu, residual, (n, k, i, 2 * tw))
                out[n, k, i, 2 * tw + 1] = epilogue(y1, sc, b, relu, residual, (n, k, i, 2 * tw + 1))
            if OW % 2:                                # an odd width: the last tile's left column only
                tw = TW - 1
                y0 = atm[r, 0, tw] + atm[r, 1, tw] + atm[r, 2, tw]
                out[n, k, i, 2 * tw] = epilogue(y0, sc, b, relu, residual, (n, k, i, 2 * tw))
