"""ResNet-50's convolutions against the machine's sgemm peak, by layer type (minixai only).

    python benchmarks/conv_peak.py                  # batch 1 and 8
    python benchmarks/conv_peak.py --batches 8 --reps 3

Peak: the faster single-threaded sgemm on a 1536^3 product of the two the kernels can run, the BLAS they chose
(kernels/blas_choice.py) and minixai's tiled GEMM (kernels/cpu_gemm.py, where it is on), best of 5, times
Numba's threads. Then saliency passes of ResNet-50 at 224x224 run with every convolution timed (the forward
and the input gradient apart) and its flops counted as a direct convolution would do them (2 K C R S per
output, so Winograd's layers count what they replace). The table is the pass whose convolutions took the
median time (their mean and range are printed too). Each row: time, GF/s and share of the peak for the
layer type: the 7x7 first layer, 1x1, 3x3 stride 1, and the stride-2 ones.
"""
import argparse
import collections
import statistics
import time

import numba
import numpy as np

import minixai as mx
from minixai import models
from minixai.kernels import blas_choice, cpu, cpu_blas, cpu_gemm


def peak_gflops(size=1536, reps=5):
    """{"BLAS name": GF/s, "tiled": GF/s}: single-threaded sgemm on size^3, best of reps (tiled only where on)."""
    from threadpoolctl import threadpool_limits
    gemm = blas_choice._FORTRAN_GEMM(cpu_blas._library.addresses["sgemm"])
    a, b = (np.random.default_rng(i).random((size, size), np.float32) for i in range(2))
    c = np.empty((size, size), np.float32)
    calls = {cpu_blas.BLAS: blas_choice._fortran_call(gemm, a, b, c)}
    if cpu_blas.TILED:
        calls["tiled"] = lambda: cpu_gemm.tiled_gemm(False, size, size, size, a.ravel(), 0, size, b.ravel(), 0,
                                                     size, 0.0, c.ravel(), 0, size)
    speeds = {}
    with threadpool_limits(1, user_api="blas"):
        for name, call in calls.items():
            call()
            speeds[name] = 2.0 * size ** 3 / min(blas_choice._timed(call) for _ in range(reps)) / 1e9
    return speeds


def kind(w, stride):
    K, C, R, S = w.shape
    if C == 3:
        return "first (7x7/2)"
    return f"{R}x{S} stride {stride[0]}"


def profile(batch, reps):
    """{(direction, kind): [seconds, flops]} of the pass whose convolutions took the median time, the whole
    passes' median seconds, and every pass's convolution seconds (the machine is shared: the median, as the
    other benchmarks take, is not moved by one pass that another process slowed)."""
    stats = collections.defaultdict(lambda: [0.0, 0.0])
    forward, backward = cpu.conv2d_forward, cpu.conv2d_backward_input

    def timed_forward(x, w, b, stride, padding, dilation, **fused):       # fused: scale, relu, residual
        start = time.perf_counter()
        out = forward(x, w, b, stride, padding, dilation, **fused)
        entry = stats[("forward", kind(w, stride))]
        entry[0] += time.perf_counter() - start
        entry[1] += 2.0 * out.size * w[0].size
        return out

    def timed_backward(dout, w, x_shape, stride, padding, dilation, **fused):  # scale, gate, clip, residual
        start = time.perf_counter()
        dx = backward(dout, w, x_shape, stride, padding, dilation, **fused)
        entry = stats[("input gradient", kind(w, stride))]
        entry[0] += time.perf_counter() - start
        entry[1] += 2.0 * dout.size * w[0].size
        return dx

    model = models.resnet50(seed=0)
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    mx.saliency(model, x, 0)
    cpu.conv2d_forward, cpu.conv2d_backward_input = timed_forward, timed_backward
    try:
        for _ in range(2):
            mx.saliency(model, x, 0)                    # warm-up: compile and fill the output pool
        passes = []
        for _ in range(reps):
            stats.clear()
            start = time.perf_counter()
            mx.saliency(model, x, 0)
            passes.append((time.perf_counter() - start, {k: tuple(v) for k, v in stats.items()}))
    finally:
        cpu.conv2d_forward, cpu.conv2d_backward_input = forward, backward
    conv_seconds = [sum(t for t, _ in by_type.values()) for _, by_type in passes]
    median = sorted(range(reps), key=conv_seconds.__getitem__)[reps // 2]
    return passes[median][1], statistics.median(t for t, _ in passes), conv_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    threads = numba.get_num_threads()
    speeds = peak_gflops()
    peak = max(speeds.values())
    cpu_name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name")), "?")
    shown = ", ".join(f"{name} {gf:.0f}" for name, gf in speeds.items())
    print(f"CPU: {cpu_name}; BLAS: {cpu_blas.BLAS}, tiled GEMM {'on' if cpu_blas.TILED else 'off'}; "
          f"single-threaded sgemm on 1536^3 (GF/s): {shown}; peak {peak:.0f} x {threads} threads = "
          f"{peak * threads:.0f} GF/s")
    for batch in args.batches:
        stats, total, conv_seconds = profile(batch, args.reps)
        conv_time = sum(t for t, _ in stats.values())
        conv_flops = sum(f for _, f in stats.values())
        mean = sum(conv_seconds) / len(conv_seconds)
        print(f"\nResNet-50, batch {batch}: saliency pass {total * 1e3:.0f} ms (median of {args.reps}), of which "
              f"convolutions {conv_time * 1e3:.0f} ms at {conv_flops / conv_time / 1e9:.0f} GF/s = "
              f"{conv_flops / conv_time / 1e9 / (peak * threads):.0%} of the peak (the median pass; their mean "
              f"{mean * 1e3:.0f} ms = {conv_flops / mean / 1e9 / (peak * threads):.0%}, "
              f"range {min(conv_seconds) * 1e3:.0f}-{max(conv_seconds) * 1e3:.0f} ms)")
        print("| pass | layers | ms | GF/s | share of peak |")
        print("|---|---|---|---|---|")
        for (direction, name), (t, f) in sorted(stats.items()):
            gflops = f / t / 1e9
            print(f"| {direction} | {name} | {t * 1e3:.1f} | {gflops:.0f} | {gflops / (peak * threads):.0%} |")


if __name__ == "__main__":
    main()
