"""How often does `mx.counterfactual` reach the target class on the shapes model, how fast, and how far
does it move the image? Seed 003's learning rates 0.01 and 0.1, with every other option at its default.

    python benchmarks/counterfactual.py              # 50 held-out images (seed 2), target = (label + 1) % 5
    python benchmarks/counterfactual.py -n 200 --lr 0.01 0.1 0.5

Distances are in pixel space (pixels in [0, 1]): L1 = mean |p - p0|, L2 = sqrt(mean (p - p0)^2).
"""
import argparse
import time

import numpy as np

import minixai as mx
from minixai import models
from minixai.data import shapes
from minixai.train_shapes import TEST_SEED


def run(n=50, lr=0.01, seed=TEST_SEED):
    model = models.load("shapes")
    data = shapes.generate(n, seed=seed)
    rows = []
    for i in range(n):
        target = (int(data.labels[i]) + 1) % len(data.class_names)
        start = time.perf_counter()
        cf = mx.counterfactual(model, data.images[i:i + 1], target, lr=lr, progress=False)
        rows.append((cf.success, cf.steps, cf.distance["l1"], cf.distance["l2"], time.perf_counter() - start))
    return np.array(rows, dtype=float)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="number of held-out images")
    parser.add_argument("--lr", type=float, nargs="+", default=[0.01, 0.1])
    args = parser.parse_args()
    print(f"{args.n} held-out shapes images (seed {TEST_SEED}), target = (label + 1) % 5, backend "
          f"{mx.get_backend()}; steps <= 500, threshold 0.9")
    print(f"{'lr':>6}{'reached':>9}{'steps median':>14}{'steps max':>11}{'L1 median':>11}{'L2 median':>11}"
          f"{'seconds':>9}")
    for lr in args.lr:
        r = run(args.n, lr)
        print(f"{lr:>6g}{r[:, 0].mean():>9.0%}{np.median(r[:, 1]):>14.0f}{r[:, 1].max():>11.0f}"
              f"{np.median(r[:, 2]):>11.4f}{np.median(r[:, 3]):>11.4f}{r[:, 4].sum():>9.1f}")


if __name__ == "__main__":
    main()
