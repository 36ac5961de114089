"""Dense-layer CPU kernels (part of ``minixai.kernels.cpu``).

Both directions give each Numba thread one contiguous block of W, so W, the big operand, is streamed
once and split evenly; at batch 1 the forward is a matrix-vector product (gemv), and the input gradient reads
only the rows of W whose gradient is not zero (``_rows_where_nonzero``). NumPy's multi-threaded
``x @ W.T`` would leave BLAS's threads spinning after it and slow the next Numba kernel by up to 2x.
"""
import numba
import numpy as np
from numba import njit, prange

from .cpu_blas import gemm, gemv, single_threaded_blas
from .cpu_memory import contiguous


def linear_forward(x, w, b):
    """out = x @ w^T + b. x (N, I), w (O, I), b (O,) or None."""
    x, w, b = contiguous(x, w, b)
    out = np.empty((x.shape[0], w.shape[0]), x.dtype)
    with single_threaded_blas():
        _linear(x, w, b if b is not None else np.zeros(w.shape[0], x.dtype), out, numba.get_num_threads())
    return out


def linear_backward_input(dout, w):
    """dx = dout @ w. dout (N, O), w (O, I): each thread computes a block of input features."""
    dout, w = contiguous(dout, w)
    dxt = np.empty((w.shape[1], dout.shape[0]), dout.dtype)      # dx^T: OpenBLAS is 1.7x faster this way
    with single_threaded_blas():
        _linear_transposed(np.ascontiguousarray(dout.T), w, dxt, numba.get_num_threads())
    return np.ascontiguousarray(dxt.T)


@njit(parallel=True, cache=True)
def _linear(x, w, b, out, threads):
    N, I = x.shape
    O = w.shape[0]
    rows = (O + threads - 1) // threads
    xf, wf, of = x.reshape(x.size), w.reshape(w.size), out.reshape(out.size)
    for t in prange(threads):
        o0, o1 = t * rows, min(O, (t + 1) * rows)
        if o0 >= o1:
            continue
        if N == 1:    # out[0, o0:o1] = w[o0:o1] (o1-o0, I) @ x[0] (I,)                          (oi,i->o)
            gemv(False, o1 - o0, I, wf, o0 * I, I, xf, 0, 0.0, of, o0)
        else:         # out[:, o0:o1] = x (N, I) @ w[o0:o1]^T (I, o1-o0)                         (ni,oi->no)
            gemm(False, True, N, o1 - o0, I, xf, 0, I, wf, o0 * I, I, 0.0, of, o0, O)
        for n in range(N):
            out[n, o0:o1] += b[o0:o1]


@njit(parallel=True, cache=True)
def _linear_transposed(dout_t, w, dxt, threads):
    O, N = dout_t.shape
    I = w.shape[1]
    cols = (I + threads - 1) // threads
    df, wf, xf = dout_t.reshape(dout_t.size), w.reshape(w.size), dxt.reshape(dxt.size)
    for t in prange(threads):
        i0, i1 = t * cols, min(I, (t + 1) * cols)
        if i0 >= i1:
            continue
        if N == 1:    # dx[0, i0:i1] = w[:, i0:i1]^T (i1-i0, O) @ dout[0] (O,)                   (oi,o->i)
            _rows_where_nonzero(df, wf, I, i0, i1, xf)
        else:         # dx^T[i0:i1] = w[:, i0:i1]^T (i1-i0, O) @ dout^T (O, N)                    (oi,on->in)
            gemm(True, False, i1 - i0, N, O, wf, i0, I, df, 0, N, 0.0, xf, i0 * N, N)


@njit(cache=True, nogil=True)
def _rows_where_nonzero(g, wf, I, i0, i1, dx):
    """dx[i0:i1] = sum over o of g[o] * w[o, i0:i1], reading only the rows of w whose g[o] is not zero (the
    reference BLAS's sgemv skips such terms too): behind a ReLU about half of a dense layer's gradient is zero,
    and an explanation's first gradient is one-hot, so at batch 1 much of w, the big operand, is never read
    (VGG-16's 4096 x 25088 layer with half its gradient zero: 10.1 -> 3.7 ms; all nonzero 7.9 -> 5.9 ms). A
    zero times an infinite weight is then left out rather than made NaN. Four rows at a time; flat, unsigned
    indices (vectorised)."""
    # a NaN is not zero: it still reaches dx. Each thread finds the rows itself (4096 tests): found once before
    # the parallel loop, the 4096 x 25088 product with half its gradient zero took 5.0-7.8 ms against 3.3-3.7
    nonzero = np.flatnonzero(g != 0)
    for i in range(i0, i1):
        dx[np.uint64(i)] = 0
    n4 = nonzero.size - nonzero.size % 4
    for q in range(0, n4, 4):
        o0, o1, o2, o3 = nonzero[q], nonzero[q + 1], nonzero[q + 2], nonzero[q + 3]
        g0, g1, g2, g3 = g[o0], g[o1], g[o2], g[o3]
        a0, a1, a2, a3 = o0 * I, o1 * I, o2 * I, o3 * I
        for i in range(i0, i1):
            dx[np.uint64(i)] += (g0 * wf[np.uint64(a0 + i)] + g1 * wf[np.uint64(a1 + i)]
                                 + g2 * wf[np.uint64(a2 + i)] + g3 * wf[np.uint64(a3 + i)])
    for q in range(n4, nonzero.size):
        o = nonzero[q]
        go, at = g[o], o * I
        for i in range(i0, i1):
            dx[np.uint64(i)] += go * wf[np.uint64(at + i)]
