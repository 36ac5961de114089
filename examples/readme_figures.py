"""Regenerate every figure of the README (written to examples/figures/).

    python examples/readme_figures.py

1. demo.png       every method on one held-out shapes image (what `minixai demo` writes)
2. ig_seed.png    the IG exercises of seed 003: black / white / grey baselines, 10 vs 100 steps
3. gallery.png    Grad-CAM overlays on a row of held-out images, one per class
4. counterfactual.png   a circle turned into a square, with the saliency of both (seed 003)
5. filters.png    the 64 filters of the last conv stage, maximised by gradient ascent (seed 004)
6. summit.png     the SUMMIT attribution graph of three layers over 32 images (seed 000, section 4)
"""
from pathlib import Path

import numpy as np

import minixai as mx
from minixai import models, viz
from minixai.cli.common import DEMO_METHODS, explain
from minixai.data import shapes
from minixai.train_shapes import TEST_SEED

OUT = Path(__file__).resolve().parent / "figures"


def main():
    OUT.mkdir(exist_ok=True)
    model = models.load("shapes")
    data = shapes.generate(20, seed=TEST_SEED)
    names = data.class_names

    x, label = data.images[0:1], int(data.labels[0])
    maps = explain(model, x, DEMO_METHODS.split(","), label, progress=False)
    viz.save(viz.panel(x, maps, spec=model.spec, title=f"shapes:0, class '{names[label]}': every method"),
             OUT / "demo.png")

    runs = {f"IG {b}": mx.integrated_gradients(model, x, label, baseline=b, progress=False)
            for b in ("black", "white", "gray")}
    runs.update({f"IG {s} steps": mx.integrated_gradients(model, x, label, steps=s, progress=False)
                 for s in (10, 100)})
    viz.save(viz.panel(x, runs, spec=model.spec, title="Integrated Gradients: baselines and steps (seed 003)"),
             OUT / "ig_seed.png")

    picks = [int(np.flatnonzero(data.labels == c)[0]) for c in range(len(names))]
    cams = mx.gradcam(model, data.images[picks], data.labels[picks])
    tiles = [viz.overlay(data.images[i:i + 1], cams[k:k + 1], spec=model.spec, alpha=0.5) for k, i in enumerate(picks)]
    viz.save(viz.grid(tiles, titles=[names[c] for c in data.labels[picks]], ncols=len(picks),
                      title="Grad-CAM of the true class"), OUT / "gallery.png")
    result = mx.counterfactual(model, x, (label + 1) % len(names), progress=False)
    from minixai.counterfactual import compare_figure
    viz.save(compare_figure(model, result), OUT / "counterfactual.png")

    filters = mx.maximize_filters(model, "features.9", filters=range(64), progress=False)
    viz.save(viz.filter_grid(filters, title="features.9: images that maximise each filter"), OUT / "filters.png")

    many = shapes.generate(32, seed=TEST_SEED)
    graph = mx.summit(model, many.images, ["features.4", "features.7", "features.10"], clusters=8, steps=16,
                      progress=False)
    viz.save(graph.prune(top_k=40).plot().figure, OUT / "summit.png")

    print(f"wrote {', '.join(p.name for p in sorted(OUT.glob('*.png')))} to {OUT}")


if __name__ == "__main__":
    main()
