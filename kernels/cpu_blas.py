"""BLAS GEMM callable from inside cached Numba kernels, run single-threaded per Numba thread.

The Numba kernels of ``cpu.py`` split a convolution into tasks and run them on Numba's threads; each task
calls one GEMM. That GEMM must be single-threaded BLAS (one threading model, no oversubscription), and the
kernels must stay cacheable (``cache=True``). So:

- the BLAS routines (Fortran ABI, every argument a pointer) are registered with LLVM under fixed symbol
  names and declared as ``ExternalFunction``s: the cached machine code refers to the name, which this
  module binds to an address on every import (a ctypes object would bake in an address and disable the
  cache);
- the library behind the names is chosen by measurement (``blas_choice``): SciPy's OpenBLAS, the same
  library on its AVX-512 kernels, or Intel MKL's sequential layer from the optional ``mkl`` wheel, whichever
  ran the convolutions' GEMM shapes fastest on this machine. ``MINIXAI_BLAS`` forces one; ``BLAS`` says which
  is bound and ``BLAS_REASON`` why;
- in front of the library, minixai's own tiled GEMM (``cpu_gemm``) takes every product whose B is not
  transposed, where it measured faster here (``blas_choice.choose_tiled``); ``TILED`` says whether it is
  on and ``TILED_REASON`` why;
- ``single_threaded_blas()`` sets the BLAS libraries' thread count to 1 around a kernel call (about 3 us;
  the user's own NumPy/SciPy BLAS keeps its setting outside our kernels).
"""
import contextlib
import os
import threading

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types

from . import blas_choice, cpu_gemm

_library, BLAS_REASON = blas_choice.choose()
TILED, TILED_REASON = blas_choice.choose_tiled(_library)
cpu_gemm.switch(TILED)
BLAS = _library.name
_SHARED = BLAS == "openblas"   # SciPy's own copy can start threads; the AVX-512 copy (loaded with one thread)
                               # and MKL's sequential layer never do
for _name, _address in _library.addresses.items():
    # the names never change: kernels cached against them (Numba tracks only their own file) keep linking
    llvm.add_symbol(f"minixai_cython_{_name}", _address)

_P = types.voidptr
_GEMM_SIGNATURE = types.void(_P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P)
_sgemm = types.ExternalFunction("minixai_cython_sgemm", _GEMM_SIGNATURE)
_dgemm = types.ExternalFunction("minixai_cython_dgemm", _GEMM_SIGNATURE)
_GEMV_SIGNATURE = types.void(_P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P)
_sgemv = types.ExternalFunction("minixai_cython_sgemv", _GEMV_SIGNATURE)
_dgemv = types.ExternalFunction("minixai_cython_dgemv", _GEMV_SIGNATURE)


@njit(cache=True, nogil=True)
def gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """Row-major C = op(A) @ op(B) + beta * C on flat arrays, each matrix starting at its offset.

    op(A) is (m, k), op(B) is (k, n), C is (m, n); ``lda/ldb/ldc`` are the row strides (in elements) of the
    stored matrices; ``trans_a`` means A is stored as (k, m) and op(A) = A^T.
    With B not transposed this is minixai's own tiled GEMM where it is on (``cpu_gemm``). Otherwise BLAS:
    it is column-major, and a row-major matrix is its column-major transpose, so we ask BLAS for
    C^T = op(B)^T @ op(A)^T: the operands swap places and keep their transpose flags.
    """
    if not trans_b and cpu_gemm.config() != 0:
        cpu_gemm.tiled_gemm(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc)
        return
    chars = np.array([78, 84], np.uint8)                        # 'N', 'T'
    ints = np.array([n, m, k, ldb, lda, ldc], np.int32)
    scalars = np.array([1.0, beta], c.dtype)                    # alpha, beta
    ta = chars[1:] if trans_a else chars[:1]
    tb = chars[1:] if trans_b else chars[:1]
    args = (tb.ctypes, ta.ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes, scalars[0:].ctypes,
            b[b_off:].ctypes, ints[3:].ctypes, a[a_off:].ctypes, ints[4:].ctypes, scalars[1:].ctypes,
            c[c_off:].ctypes, ints[5:].ctypes)
    if c.itemsize == 4:
        _sgemm(*args)
    else:
        _dgemm(*args)


@njit(cache=True, nogil=True)
def gemv(trans_a, m, n, a, a_off, lda, x, x_off, beta, y, y_off):
    """Row-major y = op(A) @ x + beta * y on flat arrays; A is stored (m, n) with row stride ``lda``,
    op(A) = A (y has m entries) or, with ``trans_a``, A^T (y has n entries). Unit strides for x and y.

    Column-major BLAS sees the stored A as its transpose (n, m), so the transpose flag flips.
    """
    chars = np.array([78, 84], np.uint8)                        # 'N', 'T'
    ints = np.array([n, m, lda, 1], np.int32)
    scalars = np.array([1.0, beta], y.dtype)
    ta = chars[:1] if trans_a else chars[1:]
    args = (ta.ctypes, ints[0:].ctypes, ints[1:].ctypes, scalars[0:].ctypes, a[a_off:].ctypes,
            ints[2:].ctypes, x[x_off:].ctypes, ints[3:].ctypes, scalars[1:].ctypes, y[y_off:].ctypes,
            ints[3:].ctypes)
    if y.itemsize == 4:
        _sgemv(*args)
    else:
        _dgemv(*args)


_blas_lock = threading.Lock()
_blas_controllers = None     # threadpoolctl's handles on the loaded BLAS libraries (found once)
_blas_users = 0              # threads inside single_threaded_blas() right now
_blas_saved = []             # (library controller, its thread count before the first of them entered)


def single_threaded_blas():
    """Run the enclosed kernels with every loaded BLAS limited to one thread (Numba owns the threads).

    BLAS thread counts are process-wide, and several Python threads may run kernels at once: the first to
    enter saves the counts and sets them to 1, the last to leave restores them. Only SciPy's OpenBLAS, shared
    with the user's own SciPy calls, needs it: with another library bound this does nothing (and costs
    nothing: a generator's context per kernel call was 1% of a batch-1 pass)."""
    return _one_blas_thread() if _SHARED else _NOTHING


_NOTHING = contextlib.nullcontext()


@contextlib.contextmanager
def _one_blas_thread():
    global _blas_controllers, _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            if _blas_controllers is None:
                from threadpoolctl import ThreadpoolController
                _blas_controllers = ThreadpoolController().select(user_api="blas").lib_controllers
            _blas_saved = [(lib, lib.get_num_threads()) for lib in _blas_controllers]
            for lib, count in _blas_saved:
                if count != 1:
                    lib.set_num_threads(1)
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for lib, count in _blas_saved:
                    if count != 1:
                        lib.set_num_threads(count)


def bound_threads():
    """How many threads the library behind the kernels may start in a call made inside single_threaded_blas()
    (anything but 1 would oversubscribe Numba's threads)."""
    with single_threaded_blas():
        if BLAS == "mkl":
            return _library.handle.MKL_Get_Max_Threads()
        if _library.handle is not None:
            return _library.handle.scipy_openblas_get_num_threads()
        from threadpoolctl import threadpool_info
        bound = os.path.realpath(_library.files[0])
        return max(lib["num_threads"] for lib in threadpool_info() if os.path.realpath(lib["filepath"]) == bound)
