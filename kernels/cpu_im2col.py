"""The im2col / col2im kernels of the CPU backend (part of ``minixai.kernels.cpu``, which chooses the path):
strided convolutions, layers with few channels (an RGB input) or small planes, and the weight gradient.

im2col copies, for a block of output rows, every input pixel each output reads into a (C*R*S, L) matrix,
so that the convolution is one GEMM with the (K, C*R*S) weights; col2im is its transpose, the input
gradient: the GEMM of the transposed weights with dout, scattered back over the windows.
"""
import numpy as np
from numba import njit, prange

from .cpu_blas import gemm
from .cpu_gemm import config as tiled_gemm_on, tiled_gemm, tiled_gemm_epilogue
from .cpu_memory import filled, work_buffer
from .cpu_pointwise import epilogue_run


@njit(cache=True)
def columns_inside(shift, sw, W, OW):
    """(j0, j1): the output columns j0 <= j < j1 whose input column j*sw + shift lies in 0..W-1."""
    j0 = min(OW, max(0, (sw - 1 - shift) // sw))
    return j0, max(j0, min(OW, (W - 1 - shift) // sw + 1))


@njit(cache=True, inline="always")
def zero_run(a, at, count):
    """a[at:at + count] = 0 by index: a slice is a view, whose reference count (shared by the threads' views of
    one array) each one takes and gives back: 2.2x the time of a padded copy of 256 x 14 x 14 (42 against 19 us)."""
    for j in range(count):
        a[np.uint64(at + j)] = 0


@njit(cache=True, inline="always")
def scaled_run(xf, gf, pf, src, at, count, a, gated, clip):
    """pf[at + j] = xf[src + j] * a, or 0 where gated and not gf[src + j] > 0 or where clip and xf[src + j] < 0,
    for j < count."""
    for j in range(count):
        v = xf[np.uint64(src + j)]
        drop = (gated and not gf[np.uint64(src + j)] > 0) or (clip and v < 0)
        pf[np.uint64(at + j)] = 0 if drop else v * a


@njit(cache=True)
def im2col(x, n, i0, i1, OW, sh, sw, ph, pw, dh, dw, R, S, cols):
    """cols[(c, r, s), (i - i0, j)] = x[n, c, i*sh - ph + r*dh, j*sw - pw + s*dw] (0 outside x), rows i0..i1."""
    im2col_channels(x, n, 0, x.shape[1], i0, i1, OW, sh, sw, ph, pw, dh, dw, R, S, cols)


@njit(cache=True)
def im2col_channels(x, n, c0, c1, i0, i1, OW, sh, sw, ph, pw, dh, dw, R, S, cols):
    """The rows (c, r, s) of ``im2col`` for the input channels c0 <= c < c1 only."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    L = (i1 - i0) * OW
    xf = x.reshape(x.size)
    for c in range(c0, c1):
        for r in range(R):
            for s in range(S):
                base = ((c * R + r) * S + s) * L
                shift = s * dw - pw                     # column j reads v = j*sw + shift
                j0, j1 = columns_inside(shift, sw, W, OW)
                for i in range(i0, i1):
                    h = i * sh - ph + r * dh
                    at = base + (i - i0) * OW
                    if h < 0 or h >= H:
                        zero_run(cols, at, OW)
                        continue
                    zero_run(cols, at, j0)
                    zero_run(cols, at + j1, OW - j1)
                    # flat, unsigned indices and no test per column (as col2im)
                    src = ((n * C + c) * H + h) * W + shift
                    for j in range(j0, j1):
                        cols[np.uint64(at + j)] = xf[np.uint64(src + j * sw)]


@njit(parallel=True, cache=True)
def im2col_gemm(x, wmat, scale, bias, relu, residual, out, sh, sw, ph, pw, dh, dw, R, S, rows, kblock, cols):
    """out[n, :, i0:i1, :] = epilogue(wmat (K, CRS) @ im2col(rows i0..i1) (CRS, L)), one task per row block;
    residual None or flat, laid out as out."""
    N = x.shape[0]
    K, CRS = wmat.shape
    OH, OW = out.shape[2], out.shape[3]
    threads = cols.shape[0]
    n_rb, n_kb = (OH + rows - 1) // rows, (K + kblock - 1) // kblock
    n_tasks = N * n_rb * n_kb
    wf, of = wmat.reshape(wmat.size), out.reshape(out.size)
    for t in prange(threads):
        built = -1
        for task in range(t, n_tasks, threads):
            n, rb, kb = task // (n_rb * n_kb), (task // n_kb) % n_rb, task % n_kb
            i0, k0 = rb * rows, kb * kblock
            i1, k1 = min(OH, i0 + rows), min(K, k0 + kblock)
            L = (i1 - i0) * OW
            if built != n * n_rb + rb:
                im2col(x, n, i0, i1, OW, sh, sw, ph, pw, dh, dw, R, S, cols[t])
                built = n * n_rb + rb
            _product(wf, k0, k1, CRS, cols[t], L, scale, bias, relu, residual, of, ((n * K + k0) * OH + i0) * OW,
                     OH * OW)


@njit(parallel=True, cache=True)
def im2col_gemm_shared(x, wmat, scale, bias, relu, residual, out, sh, sw, ph, pw, dh, dw, R, S, kblock, cols):
    """``im2col_gemm`` for one image (x and out of batch 1) whose whole output plane is one block of rows: the
    threads build its im2col together, a block of input channels each, then each multiplies blocks of kblock
    output channels by all of it. Split by rows instead (one im2col per thread), a 7x7 plane became 4 + 3 rows,
    28 and 21 columns of the tile kernels' 48, and a 512-channel 3x3 layer ran at 61% of the peak with hot
    weights (``kernels/cpu.py`` chooses which)."""
    C = x.shape[1]
    K, CRS = wmat.shape
    OH, OW = out.shape[2], out.shape[3]
    L = OH * OW
    col = cols.reshape(cols.size)
    for c in prange(C):
        im2col_channels(x, 0, c, c + 1, 0, OH, OW, sh, sw, ph, pw, dh, dw, R, S, col)
    wf, of = wmat.reshape(wmat.size), out.reshape(out.size)
    for kb in prange((K + kblock - 1) // kblock):
        k0 = kb * kblock
        _product(wf, k0, min(K, k0 + kblock), CRS, col, L, scale, bias, relu, residual, of, k0 * L, L)


@njit(cache=True, nogil=True)
def _product(wf, k0, k1, CRS, col, L, scale, bias, relu, residual, of, at, plane):
    """out's channels k0..k1 (from `at`, planes `plane` apart) = epilogue(W[k0:k1] (k, CRS) @ col (CRS, L))."""
    if tiled_gemm_on():                 # the tile kernels apply the epilogue as they store the output
        tiled_gemm_epilogue(False, k1 - k0, L, CRS, wf, k0 * CRS, CRS, col, 0, L, of, at, plane,
                            scale, bias, k0, relu, residual)
        return
    gemm(False, False, k1 - k0, L, CRS, wf, k0 * CRS, CRS, col, 0, L, 0.0, of, at, plane)
    for k in range(k0, k1):             # the L outputs of plane k are one run of out
        run = at + (k - k0) * plane
        epilogue_run(of, run, of, run, L, scale[k], bias[k], relu, residual)


def gating(dout, gate, scale, clip, threads, size):
    """The first arguments of col2im's kernels, (dout, gate, gated, scale, clip, copies): dout itself for no
    gate, scale 1 for none, and each thread's buffer of `size` for its gated copies of dout (none without gate,
    scale or clip)."""
    gated_copies = gate is not None or scale is not None or clip
    copies = work_buffer("gated_rows", threads * size if gated_copies else 0, dout.dtype)
    scale = filled(1, dout.shape[1], dout.dtype) if scale is None else scale
    return dout, dout if gate is None else gate, gate is not None, scale, clip, copies.reshape(threads, -1)


@njit(parallel=True, cache=True)
def col2im_gemm(dout, gate, gated, scale, clip, copies, wmat, dx, sh, sw, ph, pw, dh, dw, R, S, rows, cblock, hrows,
                cols):
    """dx[n, c, i*sh - ph + r*dh, j*sw - pw + s*dw] += (wmat^T @ g[n, :, rows])[(c, r, s), (i, j)], where g is dout,
    or with `copies` (threads, K * rows * OW) its gated copy, made a block of rows at a time in the thread's own
    copy while the product reads it from cache: g = dout * scale[k], 0 where gated and not gate > 0 or where
    clip and dout < 0 (a fused ReLU / batch norm backward; a whole copy first wrote and read back all of dout:
    VGG-16's RGB layer's 64 x 224 x 224, 0.87 ms of its input gradient's 2.3). Where tasks split the channels,
    each would gate the same rows again: ``kernels/cpu.py`` passes a whole gated copy there, and no `copies`.

    One task per (image, block of input channels, block of hrows rows of dx), which owns those rows of the
    dx planes; it walks the blocks of output rows that reach them (a block of output rows next to a
    border between tasks is computed by both, each keeping its own rows: RGB's 3 channels at batch 1 are
    then more than 3 tasks for 2 threads).
    """
    N, C, H, W = dx.shape
    K, CRS = wmat.shape
    OH, OW = dout.shape[2], dout.shape[3]
    threads = cols.shape[0]
    n_cb, n_hb = (C + cblock - 1) // cblock, (H + hrows - 1) // hrows
    wf, df, dxf = wmat.reshape(wmat.size), dout.reshape(dout.size), dx.reshape(dx.size)
    gf = gate.reshape(gate.size)
    by_phase = sw > 1 and S > 2 * sw                # strided, 3 taps or more on a phase of dx's columns
    for t in prange(threads):
        col, copy = cols[t], copies[t]
        phases = np.empty(sw * ((W + sw - 1) // sw) if by_phase else 0, dx.dtype)   # per thread and call
        for task in range(t, N * n_cb * n_hb, threads):
            n, c0, h0 = task // (n_cb * n_hb), (task // n_hb) % n_cb * cblock, task % n_hb * hrows
            c1, h1 = min(C, c0 + cblock), min(H, h0 + hrows)
            # the output rows i whose window rows i*sh - ph + r*dh (r < R) meet dx's rows h0..h1
            first = max(0, -((ph + (R - 1) * dh - h0) // sh))
            stop = min(OH, (h1 - 1 + ph) // sh + 1)
            for i0 in range(first, stop, rows):
                i1 = min(stop, i0 + rows)
                L = (i1 - i0) * OW
                b, b_off, ldb = df, (n * K * OH + i0) * OW, OH * OW
                if copy.size > 0:
                    for k in range(K):
                        scaled_run(df, gf, copy, b_off + k * ldb, k * L, L, scale[k], gated, clip)
                    b, b_off, ldb = copy, 0, L
                # col[(c, r, s), l] = sum_k W[k, c, r, s] * g[n, k, l]                    (kq,kL->qL)
                gemm(True, False, (c1 - c0) * R * S, L, K, wf, c0 * R * S, CRS, b, b_off, ldb, 0.0, col, 0, L)
                for c in range(c0, c1):
                    for r in range(R):
                        if by_phase:
                            for i in range(i0, i1):
                                h = i * sh - ph + r * dh
                                if h0 <= h < h1:
                                    _scatter_by_phase(col, ((c - c0) * R + r) * S * L + (i - i0) * OW, L, OW, S, sw,
                                                      dw, pw, W, dxf, ((n * C + c) * H + h) * W, phases)
                            continue
                        for s in range(S):
                            base = (((c - c0) * R + r) * S + s) * L
                            shift = s * dw - pw             # column j lands on v = j*sw + shift
                            j0, j1 = columns_inside(shift, sw, W, OW)
                            for i in range(i0, i1):
                                h = i * sh - ph + r * dh
                                if h < h0 or h >= h1:
                                    continue
                                # flat, unsigned indices and no test per column: 2x faster (RGB 7x7/2)
                                at, src = ((n * C + c) * H + h) * W + shift, base + (i - i0) * OW
                                for j in range(j0, j1):
                                    dxf[np.uint64(at + j * sw)] += col[np.uint64(src + j)]


@njit(cache=True, inline="always")
def _scatter_by_phase(col, src, L, OW, S, sw, dw, pw, W, dxf, row, phases):
    """dx's row (from dxf[row]) += the S taps' rows of col (tap s's from col[src + s*L]) of a strided
    convolution, a phase at a time: the taps that land on the columns v = u*sw + b of one phase b are summed
    first, contiguously, into phases[b*Wq + u], which is then added to dx once per phase, not once per tap (the
    strided adds that LLVM cannot vectorise: a 7x7/2 makes 2 passes instead of 7). Hot, gated, ResNet's RGB 7x7/2
    input gradient 0.90x the time at batch 1, 0.85x at batch 8; with 2 taps on a phase it lost, a 3x3/2 with
    128-256 channels into 56x56 and 28x28 1.15-1.19x (Inception's RGB 3x3/2 into 299x299 0.94x): kernels wider
    than 2 * sw only."""
    Wq = (W + sw - 1) // sw
    zero_run(phases, 0, sw * Wq)
    for s in range(S):
        shift = s * dw - pw                         # column j lands on v = j*sw + shift: phase b, u = j + off
        b = shift % sw
        j0, j1 = columns_inside(shift, sw, W, OW)
        at, tap = b * Wq + (shift - b) // sw, src + s * L
        for j in range(j0, j1):
            phases[np.uint64(at + j)] += col[np.uint64(tap + j)]
    for b in range(sw):
        for u in range((W - b + sw - 1) // sw):
            dxf[np.uint64(row + u * sw + b)] += phases[np.uint64(b * Wq + u)]


@njit(parallel=True, cache=True)
def col2im_by_rows(dout, w, residual, dx, sh, sw, ph, pw, dh, dw, R, S, cblock, scratch):
    """col2im_gemm's result (+ residual) for a product with few columns (a 7x7 plane at batch 1), computed as
    its transpose: per task (image n, input channels c0..c1) scratch[l, q] = (dout[n]^T @ W[:, q])[l, q] for
    q = (c, r, s) of those channels, so that W's rows, contiguous, are the right operand (which the tiled
    GEMM reads ahead) instead of a transposed left one; then scattered over the windows. A 1x1 stride-1
    unpadded kernel (dx^T = dout^T W) is a transposed copy. w (K, C*R*S), residual None or flat as dx."""
    N, C, H, W = dx.shape
    K, OH, OW = dout.shape[1], dout.shape[2], dout.shape[3]
    L, CRS = OH * OW, w.shape[1]
    threads = scratch.shape[0]
    n_cb = (C + cblock - 1) // cblock
    gf, wf, dxf = dout.reshape(dout.size), w.reshape(w.size), dx.reshape(dx.size)
    copy = R * S == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
    for t in prange(threads):
        st = scratch[t]
        for task in range(t, N * n_cb, threads):
            n, c0 = task // n_cb, task % n_cb * cblock
            c1 = min(C, c0 + cblock)
            nq = (c1 - c0) * R * S
            tiled_gemm(True, L, nq, K, gf, n * K * L, L, wf, c0 * R * S, CRS, 0.0, st, 0, nq)   # (kL,kq->Lq)
            for c in range(c0, c1):
                plane = (n * C + c) * H * W
                if copy:
                    for l in range(L):
                        v = st[np.uint64(l * nq + c - c0)]
                        dxf[np.uint64(plane + l)] = v + residual[np.uint64(plane + l)] if residual is not None else v
                    continue
                for l in range(H * W):
                    dxf[np.uint64(plane + l)] = residual[np.uint64(plane + l)] if residual is not None else 0
                for r in range(R):
                    for s in range(S):
                        q = ((c - c0) * R + r) * S + s
                        shift = s * dw - pw                 # column j lands on v = j*sw + shift
                        j0, j1 = columns_inside(shift, sw, W, OW)
                        for i in range(OH):
                            h = i * sh - ph + r * dh
                            if h < 0 or h >= H:
                                continue
                            at, src = plane + h * W + shift, i * OW * nq + q
                            for j in range(j0, j1):
                                dxf[np.uint64(at + j * sw)] += st[np.uint64(src + j * nq)]


@njit(parallel=True, cache=True)
def weight_gradient(dout, x, partial, sh, sw, ph, pw, dh, dw, R, S, rows, cols):
    """partial[t] += dout[n, :, rows] (K, L) @ im2col(rows)^T (L, CRS) over thread t's tasks.

    The caller sums the per-thread partial sums: dw = sum_t partial[t] (no overlapping += under prange).
    """
    N, K, OH, OW = dout.shape
    threads, _, CRS = partial.shape
    n_rb = (OH + rows - 1) // rows
    df = dout.reshape(dout.size)
    for t in prange(threads):
        for task in range(t, N * n_rb, threads):
            n, i0 = task // n_rb, (task % n_rb) * rows
            i1 = min(OH, i0 + rows)
            L = (i1 - i0) * OW
            im2col(x, n, i0, i1, OW, sh, sw, ph, pw, dh, dw, R, S, cols[t])
            gemm(False, True, K, CRS, L, df, (n * K * OH + i0) * OW, OH * OW, cols[t], 0, L,
                 1.0, partial[t].reshape(K * CRS), 0, CRS)
