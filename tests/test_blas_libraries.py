"""The CPU kernels give the reference's numbers with every BLAS that can be behind them (SciPy's OpenBLAS,
the same on its AVX-512 kernels where the CPU has them, MKL when the optional wheel is installed) and with
minixai's own tiled GEMM in front, and the automatic choices are the fastest measured. The library is bound
once per process, at import, so each one is checked in its own subprocess."""
import json
import os
import subprocess
import sys

import pytest

CHECK = r"""
import json
import numpy as np
from minixai.kernels import cpu, cpu_blas, reference
rng = np.random.default_rng(0)
errors = {}
cases = {"3x3 shift": ((2, 16, 21, 20), (24, 16, 3, 3), (1, 1), (1, 1)),
         "3x3 small plane": ((1, 32, 7, 7), (40, 32, 3, 3), (1, 1), (1, 1)),
         "1x1": ((1, 24, 21, 20), (40, 24, 1, 1), (1, 1), (0, 0)),
         "strided": ((1, 3, 17, 19), (16, 3, 7, 7), (2, 2), (3, 3))}
for dtype in (np.float32, np.float64):
    for name, (xs, ws, stride, pad) in cases.items():
        x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
        out = cpu.conv2d_forward(x, w, None, stride, pad, (1, 1))
        ref = reference.conv2d_forward(x, w, None, stride, pad, (1, 1))
        d = rng.standard_normal(ref.shape).astype(dtype)
        dx = cpu.conv2d_backward_input(d, w, xs, stride, pad, (1, 1))
        dref = reference.conv2d_backward_input(d, w, xs, stride, pad, (1, 1))
        errors[f"{name} {dtype.__name__}"] = max(float(np.abs(out - ref).max() / np.abs(ref).max()),
                                                 float(np.abs(dx - dref).max() / np.abs(dref).max()))
    for n in (1, 3):
        x, w = rng.standard_normal((n, 300)).astype(dtype), rng.standard_normal((70, 300)).astype(dtype)
        d = rng.standard_normal((n, 70)).astype(dtype)
        errors[f"dense batch {n} {dtype.__name__}"] = max(
            float(np.abs(cpu.linear_forward(x, w, None) - x @ w.T).max() / np.abs(x @ w.T).max()),
            float(np.abs(cpu.linear_backward_input(d, w) - d @ w).max() / np.abs(d @ w).max()))
print(json.dumps({"blas": cpu_blas.BLAS, "tiled": cpu_blas.TILED, "errors": errors,
                  "threads": cpu_blas.bound_threads()}))
"""


def available():
    """The libraries blas_choice can load here (loading one does not bind it)."""
    from minixai.kernels import blas_choice
    cache = blas_choice.cache_dir()
    found = {"openblas": blas_choice.scipy_openblas(), "openblas-avx512": blas_choice.openblas_avx512(cache),
             "mkl": blas_choice.mkl()}
    return [name for name, lib in found.items() if lib is not None]


def run_with(blas, gemm="blas"):
    """The CHECK script's result with MINIXAI_BLAS=blas; by default every product goes to that library."""
    env = dict(os.environ, MINIXAI_BLAS=blas, MINIXAI_GEMM=gemm)
    result = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def check(result):
    assert result["threads"] == 1, f"{result['blas']} would start {result['threads']} threads inside the kernels"
    for case, error in result["errors"].items():
        tolerance = 1e-5 if "float32" in case else 1e-12
        assert error < tolerance, f"{result['blas']}: {case} is off by {error:.2e} (relative)"


@pytest.mark.parametrize("name", ["openblas", "openblas-avx512", "mkl"])
def test_kernels_with_each_library(name):
    if name not in available():
        pytest.skip(f"{name} cannot be loaded on this machine (no mkl wheel, or no AVX-512 / OpenBLAS already on it)")
    result = run_with(name)
    assert result["blas"] == name and not result["tiled"]
    check(result)


def test_kernels_with_the_tiled_gemm():
    from minixai.kernels import cpu_gemm
    if cpu_gemm.SHAPE is None:
        pytest.skip("the tiled GEMM needs AVX2 and FMA")
    result = run_with("auto", gemm="tiled")
    assert result["tiled"]
    check(result)


def test_the_automatic_choice_is_the_fastest_measured():
    from minixai.kernels import blas_choice
    result = run_with("auto", gemm="auto")
    check(result)
    library, reason = blas_choice.choose()
    assert result["blas"] == library.name
    tiled, why = blas_choice.choose_tiled(library)
    assert result["tiled"] == tiled
    if "GF/s" in why:                          # measured (not forced, and the CPU has FMA)
        speeds = [entry for entry in blas_choice._read(blas_choice.cache_dir() / "minixai_blas.json").values()
                  if set(entry) == {"tiled", library.name}]
        assert speeds and tiled == (speeds[-1]["tiled"] > speeds[-1][library.name])
    if len(available()) > 1:
        speeds = blas_choice._read(blas_choice.cache_dir() / "minixai_blas.json")
        measured = [entry for entry in speeds.values() if set(entry) == set(available())]
        assert measured and max(measured[-1], key=measured[-1].get) == library.name
        assert "fastest" in reason


def test_an_unknown_library_name_is_refused():
    env = dict(os.environ, MINIXAI_BLAS="atlas")
    result = subprocess.run([sys.executable, "-c", "import minixai.kernels.cpu_blas"], env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0 and "valid: auto, openblas, openblas-avx512, mkl" in result.stderr


def test_an_unknown_gemm_name_is_refused():
    env = dict(os.environ, MINIXAI_GEMM="fast")
    result = subprocess.run([sys.executable, "-c", "import minixai.kernels.cpu_blas"], env=env, capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0 and "valid: auto, tiled, blas" in result.stderr


def test_a_slow_spell_does_not_decide_the_choice(monkeypatch):
    # two candidates that do the same work; the machine is slow for a stretch of calls at the start of each
    # shape's measurement. Timed one after the other, the first candidate took the whole spell and lost by
    # 10x; taking turns, each gets calls after the spell and they come out level
    import time

    from minixai.kernels import blas_choice
    monkeypatch.setattr(blas_choice, "SHAPES", [(4, 4, 4), (8, 8, 8)])
    calls = []

    def candidate(a, b, c):
        def call():
            calls.append(1)
            time.sleep(0.01 if len(calls) % (2 + 2 * blas_choice.ROUNDS) < 8 else 0.001)   # 7 slow calls per shape
        return call

    speeds = blas_choice.shapes_gflops({"first": candidate, "second": candidate})
    assert len(calls) == len(blas_choice.SHAPES) * 2 * (1 + blas_choice.ROUNDS)
    assert 0.5 < speeds["first"] / speeds["second"] < 2
