"""Winograd's F(2x2, 3x3) against the direct CPU kernels, layer by layer (minixai only, no PyTorch).

    python benchmarks/conv_layers.py                 # VGG-16's and ResNet's 3x3 layer shapes, batch 1
    python benchmarks/conv_layers.py --batch 8

For each (channels in, channels out, plane) the same float32 convolution (3x3, stride 1, padding 1, with
the fused ReLU) and its input gradient (with a ReLU gate) run once through the direct kernels
(``cpu_winograd.MIN_CHANNELS`` raised out of reach: shift GEMM or im2col, as ``kernels/cpu.py`` chooses)
and once through Winograd (thresholds at 1), alternating, best of --reps. The ratio direct / Winograd is
the speed-up; below 1, Winograd is slower there, which is what its thresholds (MIN_CHANNELS, MIN_TILES)
were read from (and FOLD_MAX_CHANNELS and FOLD_MAX_OUTPUTS, under which the direct forward is the folded
shift GEMM). The last column says which one the default rules pick (the same both ways). The
weights here are hot (in cache); inside a model they come from memory, which favours the direct kernels: on
14x14 at batch 1 Winograd can win here while the default's direct kernels won inside the batch-1 passes
(``kernels/cpu.py``, FOLD_MAX_OUTPUTS).

    python benchmarks/conv_layers.py --schedules --batch 8

times Winograd's two schedules instead (``cpu_winograd``: each step on all threads, or whole chunks per
thread): the ratio is all-threads / by-thread, above 1 where the by-thread schedule is faster, and the last
column says which one the default rule (BY_THREAD_MAX_CHANNELS, 4 chunks per thread) picks.
"""
import argparse
import time

import numba
import numpy as np

from minixai.kernels import cpu, cpu_winograd

SHAPES = [(64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56), (256, 512, 28),
          (512, 512, 28), (512, 512, 14), (64, 64, 56), (128, 128, 28), (256, 256, 14), (512, 512, 7),
          (32, 32, 56), (16, 16, 56)]


def best_time(f, reps):
    f()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def layer_times(rng, C, K, H, args, configure, settings):
    """{setting: (forward ms, input-gradient ms)} of one 3x3 layer C -> K on H x H, the fused ReLU forward and
    the gated input gradient, after configure(setting) for each setting in turn."""
    x = rng.standard_normal((args.batch, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
    b = np.zeros(K, np.float32)
    dout, gate = rng.standard_normal((2, args.batch, K, H, H)).astype(np.float32)
    times = {}
    for setting in settings:
        configure(setting)
        times[setting] = (
            best_time(lambda: cpu.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), relu=True), args.reps),
            best_time(lambda: cpu.conv2d_backward_input(dout, w, x.shape, (1, 1), (1, 1), (1, 1), gate=gate),
                      args.reps))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--schedules", action="store_true", help="Winograd's two schedules against each other")
    args = parser.parse_args()
    if args.schedules:
        return schedules(args)
    defaults = cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES
    folds = cpu.FOLD_MAX_CHANNELS, cpu.FOLD_MAX_OUTPUTS
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, float32, best of {args.reps}, ms; ratio = direct / Winograd")
    print("| C -> K | plane | forward direct | Winograd | ratio | input grad direct | Winograd | ratio | default |")
    print("|---|---|---|---|---|---|---|---|---|")

    def thresholds(name):
        cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES = (10 ** 9, 10 ** 9) if name == "direct" else (1, 1)
        # "winograd": no folded forward, and Winograd for the gradient with few outputs too
        cpu.FOLD_MAX_CHANNELS, cpu.FOLD_MAX_OUTPUTS = folds if name == "direct" else (0, 0)

    for C, K, H in SHAPES:
        times = layer_times(rng, C, K, H, args, thresholds, ("direct", "winograd"))
        cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES = defaults
        cpu.FOLD_MAX_CHANNELS, cpu.FOLD_MAX_OUTPUTS = folds
        # narrow layers (kernels/cpu.py) take the shift GEMM both ways; with few outputs the forward folds its
        # taps and the input gradient runs by col2im
        chosen = (cpu_winograd.applies((3, 3), (1, 1), (1, 1), (1, 1), min(C, K), (args.batch, H, H))
                  and not cpu._narrow((1, 1), (3, 3), C, K, H * H)
                  and not cpu._folds_few_outputs((1, 1), (3, 3), min(C, K), args.batch, H * H))
        (fd, bd), (fw, bw) = times["direct"], times["winograd"]
        print(f"| {C} -> {K} | {H}x{H} | {fd:.2f} | {fw:.2f} | {fd / fw:.2f} | {bd:.2f} | {bw:.2f} | {bd / bw:.2f} "
              f"| {'Winograd' if chosen else 'direct'} |", flush=True)


def schedules(args):
    rng = np.random.default_rng(0)
    saved = cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES, cpu.FOLD_MAX_CHANNELS, cpu.FOLD_MAX_OUTPUTS
    cpu_winograd.MIN_CHANNELS = cpu_winograd.MIN_TILES = 1
    cpu.FOLD_MAX_CHANNELS = cpu.FOLD_MAX_OUTPUTS = 0    # every layer by Winograd, both ways, whatever its plane
    print(f"batch {args.batch}, float32, best of {args.reps}, ms; ratio = all threads / by thread")
    print("| C -> K | plane | forward all | by thread | ratio | input grad all | by thread | ratio | default |")
    print("|---|---|---|---|---|---|---|---|---|")

    def force(by_thread):
        cpu_winograd.BY_THREAD = by_thread

    for C, K, H in SHAPES:
        times = layer_times(rng, C, K, H, args, force, (False, True))
        cpu_winograd.BY_THREAD = None
        (fa, ba), (ft, bt) = times[False], times[True]
        picked = "by thread" if cpu_winograd.schedule(C, K, (args.batch, H, H), 4, numba.get_num_threads())[0] \
            else "all threads"
        print(f"| {C} -> {K} | {H}x{H} | {fa:.2f} | {ft:.2f} | {fa / ft:.2f} | {ba:.2f} | {bt:.2f} | {ba / bt:.2f} "
              f"| {picked} |", flush=True)
    cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES, cpu.FOLD_MAX_CHANNELS, cpu.FOLD_MAX_OUTPUTS = saved


if __name__ == "__main__":
    main()
