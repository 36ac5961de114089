"""What the course notebooks share: the model, the image and the layers they work on.

Every notebook sets MODEL in its first code cell. "shapes" (the default) is the small CNN that ships with
minixai and runs offline. "vgg16", "resnet50" and "inception_v3" need torchvision's ImageNet weights in
minixai's cache first (`minixai weights fetch resnet50`); they explain PHOTO, a path to a picture, or, when
PHOTO is None, the shapes image scaled up to their input size (which an ImageNet model sees as clutter, but
every step still runs).
"""
import numpy as np

from minixai import images, models
from minixai.data import shapes
from minixai.train_shapes import TEST_SEED

MODELS = ("shapes", "vgg16", "resnet50", "inception_v3")

# per model: Grad-CAM's layer (the last conv stage); an early and a late layer for activation maps; a shallow and
# a late layer for filter visualisation (names model.submodel accepts; convolutions before their ReLU, so that no
# filter starts inactive); three layers for a SUMMIT graph
LAYERS = {
    "shapes": {"cam": "features.10", "early": "features.1", "late": "features.9", "shallow": "features.3",
               "summit": ["features.4", "features.7", "features.10"]},
    "vgg16": {"cam": "features.29", "early": "features.3", "late": "features.28", "shallow": "features.10",
              "summit": ["features.16", "features.23", "features.30"]},
    "resnet50": {"cam": "layer4", "early": "layer1", "late": "layer2", "shallow": "layer1",
                 "summit": ["layer2", "layer3", "layer4"]},
    "inception_v3": {"cam": "Mixed_7c", "early": "Conv2d_2b_3x3", "late": "Mixed_5d", "shallow": "Conv2d_4a_3x3",
                     "summit": ["Mixed_5d", "Mixed_6e", "Mixed_7c"]},
}


def load(name):
    """The model: the shipped shapes CNN, or an ImageNet model with its weights from the cache (an offline
    machine without them gets a message naming the file to fetch)."""
    if name not in MODELS:
        raise ValueError(f"MODEL must be one of {', '.join(MODELS)}, got {name!r}")
    return models.load(name)


def held_out(model, n, start=0, photo=None):
    """(x (n, C, H, W) for `model`, the shapes batch they come from): held-out shapes images, or for an
    ImageNet model `photo` (n = 1) or the shapes pictures resized and normalised for it."""
    batch = shapes.generate(n, seed=TEST_SEED, start=start)
    if model.arch == "shapes":
        return batch.images, batch
    if photo is not None:
        return images.load(photo, spec=model.spec), batch
    pixels = images.resize_bilinear(batch.pixels.transpose(0, 3, 1, 2), model.spec.size)
    return model.spec.normalize(np.clip(pixels, 0, 1)).astype(np.float32), batch


def masks_for(model, batch):
    """The batch's object masks (n, H, W) at the model's input size (nearest pixel)."""
    if model.arch == "shapes":
        return batch.masks
    return images.resize_bilinear(batch.masks.astype(np.float32), model.spec.size) > 0.5
