"""How long does a SUMMIT attribution graph of the shapes model take, and how does the time grow?

    python benchmarks/summit.py              # the reference graph, then images, clusters and steps varied
    python benchmarks/summit.py --markdown   # the table as Markdown

Reference: layers features.4, features.7, features.10; 8 clusters; 16 Gauss-Legendre steps; 32 held-out shapes
images (target: under a minute). Each row changes one of images, clusters, steps. The attribution part costs
one forward per chunk of path points and one backward per target cluster, so it grows linearly in images and
steps and (backward only) in clusters; "gap" is the largest completeness gap |sum_u w(u, v) - (E[T_v] - T_v(0))|
over the target clusters, relative to the largest |E[T_v] - T_v(0)|.
"""
import argparse
import time

import minixai as mx
from minixai import models
from minixai.data import shapes
from minixai.train_shapes import TEST_SEED

LAYERS = ["features.4", "features.7", "features.10"]
REFERENCE = dict(images=32, clusters=8, steps=16)
VARIED = [("images", (8, 16, 32, 64)), ("clusters", (2, 4, 8, 16)), ("steps", (4, 8, 16, 32))]


def run(model, images, clusters, steps):
    x = shapes.generate(images, seed=TEST_SEED).images
    start = time.perf_counter()
    graph = mx.summit(model, x, LAYERS, clusters=clusters, steps=steps, progress=False)
    seconds = time.perf_counter() - start
    targets = [n for n in graph.nodes if n.delta is not None]
    total = max(abs(sum(e.weight for e in graph.edges if e.target == n.id) - n.delta) for n in targets)
    return seconds, max(abs(n.delta) for n in targets) / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    model = models.load("shapes")
    run(model, 2, 2, 2)                                              # compile the kernels first
    rows = [("reference", REFERENCE, *run(model, **REFERENCE))]
    for name, values in VARIED:
        for value in values:
            if value != REFERENCE[name]:
                config = dict(REFERENCE, **{name: value})
                rows.append((name, config, *run(model, **config)))
    print(f"backend {mx.get_backend()}, layers {', '.join(LAYERS)}")
    if args.markdown:
        print("| varied | images | clusters | steps | seconds | completeness gap |")
        print("|---|---|---|---|---|---|")
        for name, c, seconds, gap in rows:
            print(f"| {name} | {c['images']} | {c['clusters']} | {c['steps']} | {seconds:.1f} | {gap:.1e} |")
        return
    print(f"{'varied':<10}{'images':>8}{'clusters':>10}{'steps':>7}{'seconds':>10}{'gap':>10}")
    for name, c, seconds, gap in rows:
        print(f"{name:<10}{c['images']:>8}{c['clusters']:>10}{c['steps']:>7}{seconds:>10.1f}{gap:>10.1e}")


if __name__ == "__main__":
    main()
