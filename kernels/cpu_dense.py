"""Dense-layer CPU kernels (part of ``minixai.kernels.cpu``).

Both directions give each Numba thread one contiguous block of W, so W, the big operand, is streamed
once and split evenly; at batch 1 the products are matrix-vector ones (gemv). NumPy's multi-threaded
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
            gemv(True, O, i1 - i0, wf, i0, I, df, 0, 0.0, xf, i0)
        else:         # dx^T[i0:i1] = w[:, i0:i1]^T (i1-i0, O) @ dout^T (O, N)                    (oi,on->in)
            gemm(True, False, i1 - i0, N, O, wf, i0, I, df, 0, N, 0.0, xf, i0 * N, N)
