"""Winograd's F(2x2, 3x3) against the direct CPU kernels, layer by layer (minixai only, no PyTorch).

    python benchmarks/conv_layers.py                 # VGG-16's and ResNet's 3x3 layer shapes, batch 1
    python benchmarks/conv_layers.py --batch 8

For each (channels in, channels out, plane) the same float32 convolution (3x3, stride 1, padding 1, with
the fused ReLU) and its input gradient (with a ReLU gate) run once through the direct kernels
(``cpu_winograd.MIN_CHANNELS`` raised out of reach: shift GEMM or im2col, as ``kernels/cpu.py`` chooses)
and once through Winograd (thresholds at 1), alternating, best of --reps. The ratio direct / Winograd is
the speed-up; below 1, Winograd is slower there, which is what its thresholds (MIN_CHANNELS, MIN_TILES)
were read from. The last column says which one the default thresholds pick.
"""
import argparse
import time

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    defaults = cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, float32, best of {args.reps}, ms; ratio = direct / Winograd")
    print("| C -> K | plane | forward direct | Winograd | ratio | input grad direct | Winograd | ratio | default |")
    print("|---|---|---|---|---|---|---|---|---|")
    for C, K, H in SHAPES:
        x = rng.standard_normal((args.batch, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
        b = np.zeros(K, np.float32)
        dout, gate = rng.standard_normal((2, args.batch, K, H, H)).astype(np.float32)
        times = {}
        for name, thresholds in (("direct", (10 ** 9, 10 ** 9)), ("winograd", (1, 1))):
            cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES = thresholds
            times[name] = (
                best_time(lambda: cpu.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), relu=True), args.reps),
                best_time(lambda: cpu.conv2d_backward_input(dout, w, x.shape, (1, 1), (1, 1), (1, 1), gate=gate),
                          args.reps))
        cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES = defaults
        chosen = cpu_winograd.applies((3, 3), (1, 1), (1, 1), (1, 1), min(C, K), (args.batch, H, H))
        (fd, bd), (fw, bw) = times["direct"], times["winograd"]
        print(f"| {C} -> {K} | {H}x{H} | {fd:.2f} | {fw:.2f} | {fd / fw:.2f} | {bd:.2f} | {bw:.2f} | {bd / bw:.2f} "
              f"| {'Winograd' if chosen else 'direct'} |", flush=True)


if __name__ == "__main__":
    main()
