"""Draw the README's trace figures (written to examples/figures/).

    python examples/trace_figures.py

1. trace_shapes.png   LRP epsilon-plus-flat through the shapes model, layer by layer, on a held-out image
2. trace_vgg16.png    the same through VGG-16 with seeded random weights (no download), at 224 x 224

and prints both tables.
"""
from pathlib import Path

import numpy as np

import minixai as mx
from minixai import images, models, viz
from minixai.data import shapes
from minixai.train_shapes import TEST_SEED

OUT = Path(__file__).resolve().parent / "figures"
RULE = "epsilon_plus_flat"


def main():
    OUT.mkdir(exist_ok=True)
    model = models.load("shapes")
    batch = shapes.generate(1, seed=TEST_SEED)
    target = int(batch.labels[0])
    t = mx.trace(model, batch.images, target, rule=RULE)
    print(t.table(class_names=batch.class_names))
    title = f"shapes model, LRP {RULE}: relevance below each layer (class '{batch.class_names[target]}')"
    viz.save(t.plot(title=title), OUT / "trace_shapes.png")

    vgg = models.vgg16(weights=None, seed=0)
    pixels = images.resize_bilinear(batch.pixels.transpose(0, 3, 1, 2), vgg.spec.size)
    x = vgg.spec.normalize(np.clip(pixels, 0, 1)).astype(np.float32)      # the same picture, at 224 x 224
    c = int(vgg(x)[0].argmax())
    t = mx.trace(vgg, x, c, rule=RULE)
    print(t.table())
    title = f"VGG-16 (random weights), LRP {RULE}: relevance below each layer (class {c})"
    viz.save(t.plot(maps=["features.0", "features.10", "features.17", "features.28"], title=title),
             OUT / "trace_vgg16.png")
    print(f"wrote trace_shapes.png and trace_vgg16.png to {OUT}")


if __name__ == "__main__":
    main()
