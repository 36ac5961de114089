"""Where do the explanations of the shapes model put their relevance? Pointing game and relevance mass
inside the ground-truth mask, for every method, over a seeded held-out set of the shapes world.

    python benchmarks/localisation.py            # 200 held-out images (seed 2), about a minute
    python benchmarks/localisation.py -n 500 --markdown
    python benchmarks/localisation.py --methods occlusion rise     # some methods only

The explained class is the true class. Methods explain in batches; SmoothGrad and IG use their defaults
(n=50, 50 steps), the perturbation methods the budgets in OPTIONS (fewer model evaluations than their
defaults, so that the table takes minutes: RISE 500 masks, LIME and KernelSHAP 300 coalitions of about 50
SLIC superpixels, sampled; GradientSHAP 50 samples and DeepLiftShap over mx's default background of the
black picture and 7 of noise). A random map scores the mask's area fraction on relevance mass: that row is
the floor.
"""
import argparse
import time

import numpy as np

import minixai as mx
from minixai import models
from minixai.data import shapes
from minixai.metrics import pixel_map, pointing_game, relevance_mass
from minixai.train_shapes import TEST_SEED

OPTIONS = {"smoothgrad": {"progress": False}, "ig": {"progress": False}, "occlusion": {"progress": False},
           "rise": {"n": 500, "progress": False}, "lime": {"n": 300, "progress": False},
           "kernel_shap": {"n": 300, "progress": False}, "gradient_shap": {"progress": False},
           "deeplift_shap": {"progress": False}, "scorecam": {"progress": False}, "ablationcam": {"progress": False}}
# attributions whose sign means for / against the class, reduced like gradient x input (positive part of the
# channel sum); minixai.evaluation.maps.SIGNED does not list them yet
SIGNED_PERTURBATION = ("occlusion", "lime", "kernel_shap", "gradient_shap", "deeplift_shap")


def relevance(a, name):
    """One non-negative value per pixel (N, H, W), as minixai.metrics.pixel_map makes it."""
    return np.maximum(a.sum(axis=1), 0) if name in SIGNED_PERTURBATION else pixel_map(a, name)


def scores(n=200, batch=50, methods=None):
    model = models.load("shapes")
    data = shapes.generate(n, seed=TEST_SEED)
    rows = []
    rng = np.random.default_rng(0)
    random_maps = rng.random(data.masks.shape)
    rows.append(("random map", pointing_game(random_maps, data.masks).mean(),
                 relevance_mass(random_maps, data.masks).mean(), 0.0))
    for name in methods or mx.METHODS:
        start = time.perf_counter()
        maps = []
        for i in range(0, n, batch):
            x, y = data.images[i:i + batch], data.labels[i:i + batch]
            maps.append(relevance(mx.METHODS[name](model, x, y, **OPTIONS.get(name, {})), name))
        maps = np.concatenate(maps)
        rows.append((name, pointing_game(maps, data.masks).mean(), relevance_mass(maps, data.masks).mean(),
                     time.perf_counter() - start))
    return rows, data.masks.mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    parser.add_argument("--methods", nargs="+", choices=list(mx.METHODS), help="names from mx.METHODS (default: all)")
    args = parser.parse_args()
    rows, area = scores(args.n, methods=args.methods)
    if args.markdown:
        print("| method | pointing game | relevance mass in mask |")
        print("|---|---|---|")
        for name, pg, mass, _ in rows:
            print(f"| {name} | {pg:.1%} | {mass:.1%} |")
    else:
        print(f"{args.n} held-out shapes images (seed {TEST_SEED}); masks cover {area:.1%} of the pixels")
        print(f"{'method':<16}{'pointing game':>15}{'mass in mask':>15}{'seconds':>10}")
        for name, pg, mass, seconds in rows:
            print(f"{name:<16}{pg:>15.1%}{mass:>15.1%}{seconds:>10.1f}")


if __name__ == "__main__":
    main()
