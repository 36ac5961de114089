"""How much does gradient ascent (seed 004: 30 steps of length 10 from U(-0.125, 0.125)) raise a filter's
mean activation? gain = a(final) / |a(start)| per filter, for the shapes model and random-weight VGG-16 and
ResNet-50 at small input sizes.

    python benchmarks/features.py            # 16 filters per layer
    python benchmarks/features.py --filters 64
"""
import argparse
import time
import warnings

import numpy as np

import minixai as mx
from minixai import models

CASES = [("shapes", "features.6", None), ("shapes", "features.9", None),
         ("vgg16", "features.10", 32), ("resnet50", "layer2", 64)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=16)
    args = parser.parse_args()
    print(f"{'model':<10}{'layer':<13}{'size':>5}{'active':>8}{'gain >= 10':>12}{'median gain':>13}{'seconds':>9}")
    for name, layer, size in CASES:
        model = models.load("shapes") if name == "shapes" else models.load(name, weights=None)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)          # inactive filters are counted below
            results = mx.maximize_filters(model, layer, range(args.filters), size=size)
        seconds = time.perf_counter() - start
        active = [r for r in results if np.any(r.history != 0)]
        gains = np.array([r.gain for r in active])
        print(f"{name:<10}{layer:<13}{size or model.spec.size[0]:>5}{len(active):>5}/{len(results):<2}"
              f"{(gains >= 10).mean():>12.0%}{np.median(gains):>13.1f}{seconds:>9.1f}")


if __name__ == "__main__":
    main()
