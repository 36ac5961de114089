"""How fast this machine streams memory from Numba's loops: the yardstick for "is this kernel bound by memory?".

    python benchmarks/bandwidth.py              # 100 MB arrays, 1 and 2 threads, median of 20 passes

Three loops over float32 arrays far larger than the caches: a sum (reads one array), a scale-and-add
(reads two, writes one: the shape of a convolution's epilogue with a residual) and a copy. GB/s counts
the bytes the loop asks for, read plus written, not the extra read a cache line costs before a write.
"""
import argparse
import time

import numba
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, fastmath=True)
def _sum(a):
    # fastmath lets LLVM reorder the additions: vectors of partial sums instead of one chain of dependent adds,
    # which ran at 7 GB/s (the adder's latency, not memory)
    total = np.float32(0.0)
    for i in prange(a.size):
        total += a[i]
    return total


@njit(parallel=True, cache=True)
def _axpy(a, b, out):
    for i in prange(a.size):
        out[i] = 2.0 * a[i] + b[i]


@njit(parallel=True, cache=True)
def _copy(a, out):
    for i in prange(a.size):
        out[i] = a[i]


def _median_seconds(run, reps):
    run()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="size of each array in MB")
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    n = args.mb * 1_000_000 // 4
    a, b, out = (np.full(n, 1.0, np.float32) for _ in range(3))
    loops = [("sum (read 1)", lambda: _sum(a), 4),
             ("2a + b (read 2, write 1)", lambda: _axpy(a, b, out), 12),
             ("copy (read 1, write 1)", lambda: _copy(a, out), 8)]
    print(f"{args.mb} MB per array, float32, median of {args.reps} passes")
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        for name, run, bytes_per_item in loops:
            seconds = _median_seconds(run, args.reps)
            print(f"{threads} thread(s)  {name:26s} {seconds * 1e3:6.2f} ms  "
                  f"{n * bytes_per_item / seconds / 1e9:5.1f} GB/s")


if __name__ == "__main__":
    main()
