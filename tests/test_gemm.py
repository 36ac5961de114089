"""minixai's tiled GEMM (kernels/cpu_gemm.py) against NumPy's matrix product.

Shapes, strides, offsets, the transpose of A and beta are drawn by hypothesis, in float32 and float64, so that
every tile edge is hit: rows short of MR, a last column vector with 1..lanes valid lanes, depths that are not
a multiple of KC, and k = 0. Everything of C outside the product must be left as it was. The epilogue the
tile kernels apply as they store (scale, bias, residual, ReLU) is checked the same way. The tile kernels of
the AVX2 shape (6 rows x 2 vectors of 8) are compiled and checked here too, whatever the CPU's own shape is.
"""
import contextlib
import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from minixai.kernels import cpu_gemm

pytestmark = pytest.mark.skipif(cpu_gemm.SHAPE is None, reason="the tiled GEMM needs AVX2 and FMA")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def switched(on):
    """The tiled GEMM on or off inside, as the process chose it (``cpu_blas.TILED``) after."""
    from minixai.kernels import cpu_blas
    cpu_gemm.switch(on)
    try:
        yield
    finally:
        cpu_gemm.switch(cpu_blas.TILED)


@pytest.fixture(scope="module")
def tiled():
    with switched(True):
        yield


def operands(rng, dtype, m, n, k, trans_a, pads, offsets):
    """Flat a, b, c with the matrices at the offsets and leading dimensions padded by `pads`, and the
    matrices themselves (op(A), B, C) as NumPy views."""
    lda = (m if trans_a else k) + pads[0]
    ldb, ldc = n + pads[1], n + pads[2]
    stored_rows = k if trans_a else m
    a = rng.standard_normal(offsets[0] + stored_rows * lda + 3).astype(dtype)
    b = rng.standard_normal(offsets[1] + k * ldb + 3).astype(dtype)
    c = rng.standard_normal(offsets[2] + m * ldc + 3).astype(dtype)
    A = a[offsets[0]:offsets[0] + stored_rows * lda].reshape(stored_rows, lda)
    A = A[:, :m].T if trans_a else A[:, :k]
    B = b[offsets[1]:offsets[1] + k * ldb].reshape(k, ldb)[:, :n]
    C = c[offsets[2]:offsets[2] + m * ldc].reshape(m, ldc)[:, :n]
    return (a, lda), (b, ldb), (c, ldc), (A, B, C)


@SETTINGS
@given(m=st.integers(1, 40), n=st.integers(1, 110), k=st.sampled_from([0, 1, 2, 7, 64, 255, 256, 257, 600]),
       trans_a=st.booleans(), beta=st.sampled_from([0.0, 1.0]), dtype=st.sampled_from([np.float32, np.float64]),
       pads=st.tuples(*[st.integers(0, 5)] * 3), offsets=st.tuples(*[st.integers(0, 9)] * 3),
       seed=st.integers(0, 2 ** 31))
# one column block (a 7x7 plane's 48 + 1 columns) deeper than KC: summed in one pass over the whole depth
@example(m=17, n=49, k=600, trans_a=False, beta=1.0, dtype=np.float32, pads=(1, 2, 3), offsets=(1, 2, 3), seed=1)
@example(m=9, n=48, k=600, trans_a=False, beta=0.0, dtype=np.float64, pads=(0, 0, 0), offsets=(0, 0, 0), seed=2)
def test_the_tiled_product_is_numpys(tiled, m, n, k, trans_a, beta, dtype, pads, offsets, seed):
    rng = np.random.default_rng(seed)
    (a, lda), (b, ldb), (c, ldc), (A, B, C) = operands(rng, dtype, m, n, k, trans_a, pads, offsets)
    if beta == 0:
        C[...] = np.nan                                 # beta 0 must overwrite, never read, what C held
    expected = A.astype(np.float64) @ B.astype(np.float64) + (beta * C if beta else 0)
    before = c.copy()
    cpu_gemm.tiled_gemm(trans_a, m, n, k, a, offsets[0], lda, b, offsets[1], ldb, beta, c, offsets[2], ldc)
    tolerance = (1e-5 if dtype == np.float32 else 1e-13) * np.sqrt(max(k, 1))
    scale = np.abs(A).sum(axis=1, keepdims=True) @ np.abs(B).max(axis=0, keepdims=True, initial=0) + 1  # |A||B| bound
    assert np.all(np.abs(C - expected) <= tolerance * scale)
    outside = np.ones(c.size, bool)
    outside[(offsets[2] + np.arange(m)[:, None] * ldc + np.arange(n)[None, :]).ravel()] = False
    np.testing.assert_array_equal(c[outside], before[outside])


@SETTINGS
@given(m=st.integers(1, 30), n=st.one_of(st.integers(1, 100), st.integers(380, 420)),
       k=st.sampled_from([0, 1, 5, 255, 256, 257, 600]), trans_a=st.booleans(), relu=st.booleans(),
       with_residual=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), pads=st.tuples(*[st.integers(0, 5)] * 3),
       offsets=st.tuples(*[st.integers(0, 9)] * 3), row0=st.integers(0, 4), seed=st.integers(0, 2 ** 31))
@example(m=20, n=50, k=600, trans_a=False, relu=True, with_residual=True, dtype=np.float32, pads=(2, 1, 0),
         offsets=(3, 0, 1), row0=2, seed=3)
def test_the_epilogue_in_the_tile_stores(tiled, m, n, k, trans_a, relu, with_residual, dtype, pads, offsets, row0,
                                         seed):
    """C = max(scale * (op(A) @ B) + bias (+ residual), 0 if relu), applied once, after the last chunk of the
    depth (A transposed: a 1x1 convolution's input gradient, its shortcut's gradient as the residual). From 380
    columns on (8 column blocks or more) a shallow product walks its row tiles first."""
    rng = np.random.default_rng(seed)
    (a, lda), (b, ldb), (c, ldc), (A, B, C) = operands(rng, dtype, m, n, k, trans_a, pads, offsets)
    C[...] = np.nan                                     # C is overwritten, never read
    scale, bias = rng.standard_normal(row0 + m).astype(dtype), rng.standard_normal(row0 + m).astype(dtype)
    residual = rng.standard_normal(c.size).astype(dtype) if with_residual else None
    expected = scale[row0:, None] * (A.astype(np.float64) @ B.astype(np.float64)) + bias[row0:, None]
    if with_residual:
        expected += residual[offsets[2]:offsets[2] + m * ldc].reshape(m, ldc)[:, :n]
    expected = np.maximum(expected, 0) if relu else expected
    before = c.copy()
    cpu_gemm.tiled_gemm_epilogue(trans_a, m, n, k, a, offsets[0], lda, b, offsets[1], ldb, c, offsets[2], ldc, scale,
                                 bias, row0, relu, residual)
    tolerance = (1e-5 if dtype == np.float32 else 1e-13) * np.sqrt(max(k, 1))
    bound = tolerance * (np.abs(scale[row0:, None]) * (np.abs(A) @ np.abs(B)) + np.abs(bias[row0:, None]) + 1)
    assert np.all(np.abs(C - expected) <= bound)
    if relu:
        assert np.all(C >= 0)
    outside = np.ones(c.size, bool)
    outside[(offsets[2] + np.arange(m)[:, None] * ldc + np.arange(n)[None, :]).ravel()] = False
    np.testing.assert_array_equal(c[outside], before[outside])


@SETTINGS
@given(m=st.integers(1, 30), n=st.integers(1, 100), k=st.sampled_from([0, 1, 5, 147, 256, 257, 600]),
       dtype=st.sampled_from([np.float32, np.float64]), offsets=st.tuples(*[st.integers(0, 9)] * 3),
       seed=st.integers(0, 2 ** 31))
def test_b_rows_by_table(tiled, m, n, k, dtype, offsets, seed):
    """C = A @ B with B's row p at b[b_off + rows_at[p]]: rows anywhere, repeated and overlapping."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(offsets[0] + m * k + 3).astype(dtype)
    b = rng.standard_normal(offsets[1] + 3 * n + 50).astype(dtype)
    rows_at = rng.integers(0, 2 * n + 50, k).astype(np.int64)
    c = np.full(offsets[2] + m * n + 3, np.nan, dtype)
    cpu_gemm.tiled_gemm_rows(m, n, k, a, offsets[0], k, b, offsets[1], rows_at, c, offsets[2], n)
    A = a[offsets[0]:offsets[0] + m * k].reshape(m, k).astype(np.float64)
    B = np.array([b[offsets[1] + at:offsets[1] + at + n] for at in rows_at], np.float64).reshape(k, n)
    C = c[offsets[2]:offsets[2] + m * n].reshape(m, n)
    tolerance = (1e-5 if dtype == np.float32 else 1e-13) * np.sqrt(max(k, 1))
    assert np.all(np.abs(C - A @ B) <= tolerance * (np.abs(A) @ np.abs(B) + 1))
    assert np.isnan(c[:offsets[2]]).all() and np.isnan(c[offsets[2] + m * n:]).all()


def test_kernels_of_the_avx2_tile_shape():
    """One call of each kernel compiled for 6 rows x NV vectors of 8 lanes (AVX2's tile), rows 1..6 and every
    count of valid lanes in the last vector, accumulating and not, with and without each part of the epilogue,
    B's rows by stride and by table."""
    library, addresses = cpu_gemm.tile_kernels((8, 6), "test_avx2")
    kernel_type = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 14)
    rng = np.random.default_rng(0)
    flag_sets = [0, cpu_gemm.ADD, cpu_gemm.EPILOGUE, cpu_gemm.ADD | cpu_gemm.EPILOGUE | cpu_gemm.RELU,
                 cpu_gemm.EPILOGUE | cpu_gemm.RESIDUAL, cpu_gemm.EPILOGUE | cpu_gemm.RESIDUAL | cpu_gemm.RELU,
                 cpu_gemm.TABLE, cpu_gemm.TABLE | cpu_gemm.ADD | cpu_gemm.EPILOGUE]
    for name, address in addresses.items():
        kernel = kernel_type(address)
        dtype, lanes = (np.float32, 8) if name[-2] == "s" else (np.float64, 4)
        nv = int(name[-1])
        for rows in range(1, 7):
            for last in range(1, lanes + 1):
                flags = flag_sets[(rows + last) % len(flag_sets)]
                kc, width = 5, (nv - 1) * lanes + last
                a = rng.standard_normal((6, kc)).astype(dtype)           # read rows 0..rows-1 only
                b = rng.standard_normal((kc, width)).astype(dtype)
                c = rng.standard_normal((6, width + 2)).astype(dtype)
                scale, bias = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
                residual = rng.standard_normal((6, width + 2)).astype(dtype)
                before = c.copy()
                order = rng.permutation(kc)                 # the table's rows: b's rows in this order
                table = (order * width).astype(np.int64)
                by_table = flags & cpu_gemm.TABLE
                ldb = table.ctypes.data if by_table else width
                kernel(a.ctypes.data, kc, 1, b.ctypes.data, ldb, c.ctypes.data, width + 2, kc, rows, last, flags,
                       scale.ctypes.data, bias.ctypes.data, residual.ctypes.data)
                b_rows = b[order] if by_table else b
                expected = a[:rows] @ b_rows + (before[:rows, :width] if flags & cpu_gemm.ADD else 0)
                if flags & cpu_gemm.EPILOGUE:
                    expected = scale[:rows, None] * expected + bias[:rows, None]
                    expected += residual[:rows, :width] if flags & cpu_gemm.RESIDUAL else 0
                    expected = np.maximum(expected, 0) if flags & cpu_gemm.RELU else expected
                np.testing.assert_allclose(c[:rows, :width], expected, rtol=1e-5, atol=1e-5)
                np.testing.assert_array_equal(c[rows:], before[rows:])
                np.testing.assert_array_equal(c[:, width:], before[:, width:])
    del library


def test_switched_off_the_kernels_take_the_blas_and_agree():
    """The same convolution with the switch on and off (the BLAS) gives the same numbers."""
    from minixai.kernels import cpu
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 40, 9, 11)).astype(np.float64)
    w = rng.standard_normal((50, 40, 1, 1)).astype(np.float64)
    outs = []
    for on in (True, False):
        with switched(on):
            outs.append(cpu.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1)))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[0], np.einsum("kc,nchw->nkhw", w[:, :, 0, 0], x), rtol=1e-12, atol=1e-12)


def test_an_edited_kernel_source_drops_the_whole_numba_cache(tmp_path):
    """Numba would keep a caller's cached machine code after an edit of a kernel it calls in another file;
    kernels/__init__.py drops the folder's cache when any source changes, and keeps it otherwise."""
    from minixai import kernels
    (tmp_path / "caller.py").write_text("x = 1\n")
    (tmp_path / "callee.py").write_text("y = 2\n")
    cache = tmp_path / "__pycache__"
    kernels._drop_stale_numba_cache(tmp_path)
    (cache / "caller.f-1.py311.nbi").write_text("index")
    (cache / "caller.f-1.py311.1.nbc").write_text("code")
    kernels._drop_stale_numba_cache(tmp_path)                   # nothing changed: kept
    assert sorted(p.suffix for p in cache.iterdir()) == [".nbc", ".nbi", ".sha256"]
    (tmp_path / "callee.py").write_text("y = 3\n")
    kernels._drop_stale_numba_cache(tmp_path)                   # the callee changed: the caller's cache goes
    assert sorted(p.suffix for p in cache.iterdir()) == [".sha256"]


AVX2_CHECK = r"""
import json
import numpy as np
from minixai.kernels import cpu, cpu_blas, cpu_gemm, reference
rng = np.random.default_rng(0)
worst = 0.0
for case in range(200):
    dtype = (np.float32, np.float64)[case % 2]
    m, n, k = (int(v) for v in rng.integers(1, (30, 70, 600)))
    trans_a, beta = bool(case % 3 == 0), float(case % 4 == 0)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B, C = rng.standard_normal((k, n)).astype(dtype), rng.standard_normal((m, n)).astype(dtype)
    expected = (A.T if trans_a else A).astype(np.float64) @ B + beta * C
    cpu_gemm.tiled_gemm(trans_a, m, n, k, A.ravel(), 0, m if trans_a else k, B.ravel(), 0, n, beta, C.ravel(), 0, n)
    scale = np.abs(A).sum() * np.abs(B).max() / m + 1
    worst = max(worst, float(np.abs(C - expected).max() / scale / (1e-6 if dtype == np.float32 else 1e-14)))
x = rng.standard_normal((2, 32, 15, 13))
w = rng.standard_normal((40, 32, 3, 3))
conv = float(np.abs(cpu.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1))
                    - reference.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1))).max())
print(json.dumps({"shape": cpu_gemm.SHAPE, "tiled": cpu_blas.TILED, "worst": worst, "conv": conv}))
"""


def test_the_avx2_tiles_in_a_process_of_their_own():
    """MINIXAI_GEMM_TILES=avx2 makes this process run what an AVX2 machine runs (6 x 2 vectors of 8 lanes):
    the products and a convolution through them give NumPy's and the reference's numbers."""
    if cpu_gemm.vector_shape(wanted="avx2") is None:
        pytest.skip("this CPU has no AVX2 and FMA")
    env = dict(os.environ, MINIXAI_GEMM_TILES="avx2", MINIXAI_GEMM="tiled")
    result = subprocess.run([sys.executable, "-c", AVX2_CHECK], env=env, capture_output=True, text=True, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["shape"] == [8, 6, 2] and found["tiled"]
    assert found["worst"] < 1.0, f"off by {found['worst']:.2f} x the tolerance"
    assert found["conv"] < 1e-10
