"""Elementwise CPU kernels (part of ``minixai.kernels.cpu``): ReLU forward and backward, the per-channel
affine map of an inference batch norm, the residual join with its ReLU, and a sum. Each is one pass in parallel
chunks, or on one thread for small arrays, where a fork/join would cost more than the pass."""
import contextlib

import numba
import numpy as np
from numba import njit, prange

from . import cpu_memory
from .cpu_memory import contiguous

RELU_CHUNK = 1 << 16           # elements per parallel task
RELU_PARALLEL_MIN = 1 << 18    # below this many elements one thread is faster than a fork/join


@njit(cache=True, inline="always")
def epilogue(v, a, b, relu, residual=None, at=(0, 0, 0, 0)):
    """a * v + b, plus residual[at] if given (the shortcut of a residual join; ``at`` is the output's
    (n, k, i, j)), then the ReLU if asked (NaN passes, as np.maximum): how the convolutions apply an
    inference batch norm, a ResNet block's join and a ReLU to each output as they write it."""
    v = a * v + b
    if residual is not None:                    # a None residual: this line is compiled away
        v = v + residual[at]
    return v - v if relu and v < 0 else v       # v - v: a zero of v's own type


@njit(cache=True, nogil=True, inline="always")
def epilogue_run(src, s_at, dst, d_at, count, a, b, relu, residual):
    """dst[d_at + j] = epilogue(src[s_at + j], a, b, relu, residual (flat, laid out as dst)) for j < count. Flat,
    unsigned indices: no test for a negative index, so LLVM vectorises the run (a 4-d index per element made
    the shift GEMM's copy out of its wide rows a quarter of a 7x7/2 layer's time)."""
    for j in range(count):
        at = np.uint64(d_at + j)
        dst[at] = epilogue(src[np.uint64(s_at + j)], a, b, relu, residual, at)


def relu_forward(x):
    """out = max(x, 0) (NaN stays NaN, as np.maximum), one pass in parallel chunks."""
    x = np.ascontiguousarray(x)
    out = cpu_memory.empty(x.shape, x.dtype)
    with _threads_for(x.size):
        _relu(x.reshape(x.size), out.reshape(out.size), x.dtype.type(0))
    return out


def relu_backward(dout, out):
    """dx = dout where out > 0, else 0; a new array (dout is left untouched: callers keep references)."""
    dout, out = np.ascontiguousarray(dout), np.ascontiguousarray(out)
    if dout.shape != out.shape:
        raise ValueError(f"relu_backward: dout has shape {dout.shape}, the ReLU output {out.shape}")
    dx = cpu_memory.empty(dout.shape, dout.dtype)
    with _threads_for(dout.size):
        _relu_mask(dout.reshape(dout.size), out.reshape(out.size), dx.reshape(dx.size), dout.dtype.type(0))
    return dx


@contextlib.contextmanager
def _threads_for(size):
    """One Numba thread for an elementwise pass over fewer than RELU_PARALLEL_MIN elements."""
    previous = numba.get_num_threads()
    if size >= RELU_PARALLEL_MIN or previous == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def add_relu(a, b):
    """out = max(a + b, 0) in one pass: the residual join and the ReLU after it."""
    a, b, out = _summands(a, b, a.dtype, "add_relu")
    with _threads_for(a.size):
        _add_relu(a.reshape(a.size), b.reshape(b.size), out.reshape(out.size), a.dtype.type(0))
    return out


def add(a, b):
    """out = a + b in one parallel pass: where a residual branch rejoins the main path, in the backward."""
    a, b, out = _summands(a, b, np.result_type(a, b), "add")
    with _threads_for(a.size):
        _add(a.reshape(a.size), b.reshape(b.size), out.reshape(out.size))
    return out


def _summands(a, b, dtype, name):
    """(a, b, out): the two summands contiguous and of one shape, and an output array of `dtype` for them."""
    a, b = contiguous(a, b)
    if a.shape != b.shape:
        raise ValueError(f"{name}: the summands have shapes {a.shape} and {b.shape}")
    return a, b, cpu_memory.empty(a.shape, dtype)


@njit(parallel=True, cache=True)
def _add(a, b, out):
    for chunk in prange((a.size + RELU_CHUNK - 1) // RELU_CHUNK):
        part = slice(chunk * RELU_CHUNK, (chunk + 1) * RELU_CHUNK)
        a_s, b_s, outs = a[part], b[part], out[part]
        for i in range(a_s.size):
            outs[i] = a_s[i] + b_s[i]


@njit(parallel=True, cache=True)
def _add_relu(a, b, out, zero):
    for chunk in prange((a.size + RELU_CHUNK - 1) // RELU_CHUNK):
        part = slice(chunk * RELU_CHUNK, (chunk + 1) * RELU_CHUNK)
        a_s, b_s, outs = a[part], b[part], out[part]
        for i in range(a_s.size):
            v = a_s[i] + b_s[i]
            outs[i] = zero if v < zero else v


@njit(parallel=True, cache=True)
def _relu(x, out, zero):
    for chunk in prange((x.size + RELU_CHUNK - 1) // RELU_CHUNK):
        xs, outs = x[chunk * RELU_CHUNK:(chunk + 1) * RELU_CHUNK], out[chunk * RELU_CHUNK:(chunk + 1) * RELU_CHUNK]
        for i in range(xs.size):
            outs[i] = zero if xs[i] < zero else xs[i]       # np.maximum(x, 0): NaN passes unchanged


@njit(parallel=True, cache=True)
def _relu_mask(dout, out, dx, zero):
    for chunk in prange((dout.size + RELU_CHUNK - 1) // RELU_CHUNK):
        part = slice(chunk * RELU_CHUNK, (chunk + 1) * RELU_CHUNK)
        douts, outs, dxs = dout[part], out[part], dx[part]
        for i in range(douts.size):
            dxs[i] = douts[i] if outs[i] > zero else zero


# ---- per-channel affine map (inference batch norm) --------------------------------------------------------
def channel_affine(x, scale, shift):
    """out[n, c] = x[n, c] * scale[c] + shift[c] in one pass (NumPy's x * s + t makes two, and a temporary)."""
    x, scale, shift = contiguous(x, scale, shift)
    out = cpu_memory.empty(x.shape, x.dtype)
    with _threads_for(x.size):
        _channel_affine(x.reshape(x.shape[0] * x.shape[1], -1), scale, shift, out.reshape(x.shape[0] * x.shape[1], -1))
    return out


@njit(parallel=True, cache=True)
def _channel_affine(x, scale, shift, out):
    C = scale.size
    for plane in prange(x.shape[0]):
        a, b = scale[plane % C], shift[plane % C]
        for i in range(x.shape[1]):
            out[plane, i] = x[plane, i] * a + b
