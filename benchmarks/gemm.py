"""minixai's tiled GEMM (kernels/cpu_gemm.py) against the BLAS the kernels chose, on the convolutions' shapes.

    python benchmarks/gemm.py
    python benchmarks/gemm.py --reps 7

Row-major C (m, n) = A (m, k) @ B (k, n) in float32, m output channels, n positions, k depth, as the
kernels call it (kernels/blas_choice.py's SHAPES: ResNet-50's layers at batch 1). Each product runs once
single-threaded, and once as two halves of its rows on two Python threads at the same time (each engine
releases the GIL), which is how the convolutions run it: one product per task, one task per thread.
Best of --reps, GF/s, and the ratio tiled / BLAS of the speeds (above 1: the tiled GEMM is faster).
"""
import argparse
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from conv_layers import best_time

from minixai.kernels import blas_choice, cpu_blas, cpu_gemm


@njit(nogil=True)
def _product(a, b, c):
    """cpu_blas.gemm, as the kernels call it: the tiled GEMM or the BLAS, as cpu_gemm's switch says."""
    m, k = a.shape
    n = b.shape[1]
    cpu_blas.gemm(False, False, m, n, k, a.ravel(), 0, k, b.ravel(), 0, n, 0.0, c.ravel(), 0, n)


def _halves(pool, halves, b, parts):
    """The two halves of A's rows, one product each, on the pool's two threads at once."""
    for future in [pool.submit(_product, half, b, part) for half, part in zip(halves, parts)]:
        future.result()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if cpu_gemm.SHAPE is None:
        raise SystemExit("the tiled GEMM needs AVX2 and FMA, which this CPU lacks")
    pool = ThreadPoolExecutor(2)
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
    lanes, mr, nv = cpu_gemm.SHAPE
    print(f"CPU: {cpu}; BLAS: {cpu_blas.BLAS}; tiles of {mr} rows x {nv * lanes} float32 columns")
    print("| m x n x k | BLAS, 1 thread | tiled, 1 thread | ratio | BLAS, 2 threads | tiled, 2 threads | ratio |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    with cpu_blas.single_threaded_blas():
        for m, n, k in blas_choice.SHAPES:
            a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
            halves = [np.ascontiguousarray(a[:m // 2]), np.ascontiguousarray(a[m // 2:])]
            c = np.empty((m, n), np.float32)
            parts = [c[:m // 2], c[m // 2:]]
            row = []
            for threads in (1, 2):
                speeds = []
                for tiled in (False, True):
                    cpu_gemm.switch(tiled)
                    if threads == 1:
                        ms = best_time(functools.partial(_product, a, b, c), args.reps)
                    else:
                        ms = best_time(functools.partial(_halves, pool, halves, b, parts), args.reps)
                    speeds.append(2.0 * m * n * k / ms / 1e6)
                row += [f"{speeds[0]:.0f}", f"{speeds[1]:.0f}", f"{speeds[1] / speeds[0]:.2f}"]
            print(f"| {m} x {n} x {k} | " + " | ".join(row) + " |", flush=True)
    cpu_gemm.switch(cpu_blas.TILED)


if __name__ == "__main__":
    main()
