"""The shift GEMM's Numba kernels (part of ``minixai.kernels.cpu``, which chooses the path and explains the
method): the padded (or gated) copy of the input and the taps' layout, a strided convolution's phase planes,
the products themselves with their epilogue."""
import functools

import numpy as np
from numba import njit, prange

from .cpu_blas import gemm
from .cpu_gemm import config as tiled_gemm_on, tiled_gemm_epilogue, tiled_gemm_rows
from .cpu_im2col import columns_inside, scaled_run, zero_run
from .cpu_memory import filled, work_buffer
from .cpu_pointwise import epilogue_run


@functools.lru_cache(maxsize=256)
def _tap_offsets(R, S, dh, dw, Wp):
    """tap_at[r, s] = r*dh*Wp + s*dw: where tap (r, s) of a kernel starts in a padded plane Wp wide."""
    return (np.arange(R)[:, None] * dh * Wp + np.arange(S)[None, :] * dw).astype(np.int64)


@functools.lru_cache(maxsize=256)
def _fold_table(C, plane, tap_at):
    """The rows of a folded product's B: table[(c, r, s)] = c*plane + tap_at[r, s] (tap_at as int64 bytes)."""
    return (np.arange(C)[:, None] * plane + np.frombuffer(tap_at, np.int64)[None, :]).ravel()


@njit(parallel=True, cache=True)
def _fill_pad_and_taps(x, xpad, qh, qw, copy_x, gate, gated, clip, scale, w, taps, copy_w, transposed):
    N, C, H, W = x.shape
    Hp, Wp = xpad.shape[2], xpad.shape[3]
    K, Cw, R, S = w.shape
    n_planes = N * C if copy_x else 0
    n_weight_blocks = (K + 15) // 16 if copy_w else 0
    xf, gf, pf = x.reshape(x.size), gate.reshape(gate.size), xpad.reshape(xpad.size)
    j0, j1 = columns_inside(-qw, 1, W, Wp)           # the columns j of xpad inside x (0 <= j - qw < W)
    for task in prange(n_planes + n_weight_blocks):
        if task < n_planes:                            # one plane of the padded (or cropped) copy
            a = scale[task % C]
            # flat, unsigned indices and no test of the column: LLVM vectorises each run of columns inside x
            # (2-d indices with a test per element: 2-2.8x the time of a gated copy padded by 1, batch 8, 64 x 56 x 56)
            if Wp == W and Hp == H:                    # no padding: the plane is one run
                scaled_run(xf, gf, pf, task * H * W, task * H * W, H * W, a, gated, clip)
                continue
            for i in range(Hp):
                h = i - qh
                at = (task * Hp + i) * Wp
                if h < 0 or h >= H:
                    zero_run(pf, at, Wp)
                    continue
                zero_run(pf, at, j0)
                zero_run(pf, at + j1, Wp - j1)
                scaled_run(xf, gf, pf, (task * H + h) * W - qw + j0, at + j0, j1 - j0, a, gated, clip)
        else:                                          # the weights of 16 output channels
            k0 = (task - n_planes) * 16
            k1 = min(K, k0 + 16)
            for r in range(R):
                for s in range(S):
                    if transposed:                     # write 16 consecutive k at a time
                        for c in range(Cw):
                            for k in range(k0, k1):
                                taps[R - 1 - r, S - 1 - s, c, k] = w[k, c, r, s]
                    else:
                        for k in range(k0, k1):
                            for c in range(Cw):
                                taps[r, s, k, c] = w[k, c, r, s]


def gated_copy(dout, gate, scale, clip):
    """dout * scale[k] where gate > 0, else 0, into a reused buffer (for the col2im path)."""
    out = work_buffer("gated", dout.size, dout.dtype).reshape(dout.shape)
    K = dout.shape[1]
    no_weights = np.zeros((1, 1, 1, 1), dout.dtype)         # the same kernel, with no weights to copy
    _fill_pad_and_taps(dout, out, 0, 0, True, gate if gate is not None else dout, gate is not None, clip,
                       scale if scale is not None else filled(1, K, dout.dtype), no_weights, no_weights,
                       False, False)
    return out


@njit(parallel=True, cache=True)
def _phase_planes(x, planes, phases, sh, sw, ph, pw):
    """planes[n, p, c, i, j] = x[n, c, sh*i + a - ph, sw*j + b - pw] (0 outside x), (a, b) = phases[p]."""
    N, C, H, W = x.shape
    P, Hp, Wp = planes.shape[1], planes.shape[3], planes.shape[4]
    xf, pf = x.reshape(x.size), planes.reshape(planes.size)
    for task in prange(N * C):
        n, c = task // C, task % C
        for p in range(P):
            a, b = phases[p, 0], phases[p, 1]
            j0, j1 = columns_inside(b - pw, sw, W, Wp)     # the columns j whose sw*j + b - pw is inside x
            for i in range(Hp):
                at = (((n * P + p) * C + c) * Hp + i) * Wp
                h = sh * i + a - ph
                if h < 0 or h >= H:
                    zero_run(pf, at, Wp)
                    continue
                zero_run(pf, at, j0)
                zero_run(pf, at + j1, Wp - j1)
                # flat, unsigned indices and no test per column (as im2col)
                src = ((n * C + c) * H + h) * W + b - pw
                for j in range(j0, j1):
                    pf[np.uint64(at + j)] = xf[np.uint64(src + sw * j)]


@njit(parallel=True, cache=True)
def _shift_gemm(planes, tap_at, taps, table, trans, scale, bias, relu, residual, plain, out, rows, kblock, wide):
    """out[n, k, i, j] = epilogue(sum_{r, s, c} taps[r, s, k, c] * planes[n].flat[tap_at[r, s] + c*Hp*Wp + i*Wp + j]).

    planes (N, P, C, Hp, Wp): the padded input (P = 1; tap (r, s) starts at r*dh*Wp + s*dw) or its phase
    planes (a strided convolution, ``_phase_planes``); taps (R, S, K, C) or, with ``trans``, stored as
    (R, S, C, K); out (N, K, OH, OW), OW <= Wp; residual None or flat, laid out as out; wide (threads,
    kblock * L): per-thread wide output rows, unused when Wp == OW. A non-empty ``table`` (the tiled GEMM's
    rows by table): taps is W (1, 1, K, C*R*S) and each task one product, B's row q = (c, r, s) starting at
    table[q] = c*Hp*Wp + tap_at[r, s].
    """
    N, P, C, Hp, Wp = planes.shape
    K = out.shape[1]
    R, S = taps.shape[0], taps.shape[1]
    OH, OW = out.shape[2], out.shape[3]
    threads = wide.shape[0]
    n_rb, n_kb = (OH + rows - 1) // rows, (K + kblock - 1) // kblock
    n_tasks = N * n_rb * n_kb
    direct = Wp == OW
    xf, tf, of = planes.reshape(planes.size), taps.reshape(taps.size), out.reshape(out.size)
    for t in prange(threads):
        wt = wide[t]                           # one view per thread (a view per row: both contend on its count)
        for task in range(t, n_tasks, threads):
            n, rb, kb = task // (n_rb * n_kb), (task // n_kb) % n_rb, task % n_kb
            i0, k0 = rb * rows, kb * kblock
            i1, k1 = min(OH, i0 + rows), min(K, k0 + kblock)
            L = (i1 - i0 - 1) * Wp + OW        # wide rows i0..i1 as one contiguous run of the padded plane
            c, c_off, ldc = (of, ((n * K + k0) * OH + i0) * OW, OH * OW) if direct else (wt, 0, L)
            image = n * P * C * Hp * Wp + i0 * Wp
            a_row, lda = (k0, K) if trans else (k0 * C, C)      # A's first row and row stride in each tap
            if table.size:
                # one product of depth C*R*S: C[k, l] = W[k, :] @ planes[n].flat[i0*Wp + table[:] + l]   (kq,qL->kL)
                depth = table.size
                tiled_gemm_rows(k1 - k0, L, depth, tf, k0 * depth, depth, xf, image, table, c, c_off, ldc)
            elif direct and R * S == 1 and not plain and tiled_gemm_on():
                # one tap whose rows are out's: the tiled GEMM's kernels apply the epilogue as they store C
                tiled_gemm_epilogue(trans, k1 - k0, L, C, tf, a_row, lda, xf, image + tap_at[0, 0], Hp * Wp, c, c_off,
                                    ldc, scale, bias, k0, relu, residual)
                continue
            else:
                for r in range(R):
                    for s in range(S):
                        # C[k, l] (+)= taps[r, s, k, :] @ planes[n, :, :, i0:, :].flat[tap_at[r, s] + l]  (kc,cL->kL)
                        gemm(trans, False, k1 - k0, L, C, tf, (r * S + s) * K * C + a_row, lda, xf,
                             image + tap_at[r, s], Hp * Wp, 0.0 if r == 0 and s == 0 else 1.0, c, c_off, ldc)
            # copy the valid columns out of the wide rows through the epilogue (bias, scale, ReLU). Written
            # straight into `out` with an identity epilogue (an input gradient), nothing is left to do
            if direct and plain:
                continue
            for k in range(k0, k1):
                for i in range(i0, i1):
                    at = ((n * K + k) * OH + i) * OW
                    if direct:
                        epilogue_run(of, at, of, at, OW, scale[k], bias[k], relu, residual)
                    else:
                        epilogue_run(wt, (k - k0) * L + (i - i0) * Wp, of, at, OW, scale[k], bias[k], relu, residual)
