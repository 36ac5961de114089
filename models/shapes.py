"""The small CNN of the shapes world (minixai.data.shapes), the embedded default model.

features: four 3x3 conv + ReLU stages (16, 32, 64, 64 channels), max-pooling after the first three
(64 -> 32 -> 16 -> 8 px); then a global max-pool over the 8x8 map ("is this pattern anywhere?") and a
two-layer classifier. Global max-pooling trained markedly faster than global averaging here: a shape
fills a small part of the image, and averaging dilutes its evidence 64 times. The last conv stage keeps
an 8x8 map, fine enough for Grad-CAM on 64x64 images. The weights that ship in
``weights/shapes.npz`` were trained with minixai alone (``python -m minixai.train_shapes``).
"""
from minixai.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minixai.model import Model

WIDTHS = (16, 32, 64, 64)


def shapes_cnn(num_classes=5, spec=None):
    """The architecture with zero weights (load or initialise them afterwards)."""
    layers, channels = [], 3
    for stage, width in enumerate(WIDTHS):
        layers += [Conv2d(channels, width, 3, padding=1), ReLU()]
        if stage < len(WIDTHS) - 1:
            layers.append(MaxPool2d(2))
        channels = width
    root = Sequential(Sequential(*layers), MaxPool2d(8), Flatten(),
                      Sequential(Linear(channels, 64), ReLU(), Linear(64, num_classes)),
                      names=["features", "pool", "flatten", "classifier"])
    return Model(root, spec, "shapes")


def _shipped_weights():
    from pathlib import Path

    import minixai.weights
    return Path(minixai.weights.__file__).with_name("shapes.npz")


SHAPES_WEIGHTS = _shipped_weights()


def shapes(weights=None, seed=0, device="cpu"):
    """The shapes CNN with the shapes world's input spec; weights as for the other builders
    (models.load("shapes") passes the shipped file)."""
    from minixai.data.shapes import CLASS_NAMES, SPEC

    from .common import read_weights
    from .initialisation import initialise
    model = shapes_cnn(len(CLASS_NAMES), SPEC)
    if weights is not None and str(weights) == str(SHAPES_WEIGHTS) and not SHAPES_WEIGHTS.is_file():
        raise FileNotFoundError(f"the shipped shapes weights are missing ({SHAPES_WEIGHTS}); "
                                "recreate them with: python -m minixai.train_shapes")
    state, meta = read_weights(weights, "shapes")
    if state is None:
        return initialise(model, seed, linear="uniform").to(device)
    if meta.get("architecture", "shapes") != "shapes":
        raise ValueError(f"these weights are for {meta['architecture']!r}, not the shapes CNN")
    return model.load_state_dict(state).to(device)
