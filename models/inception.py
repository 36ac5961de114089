"""Inception v3 (Szegedy et al. 2016, "Rethinking the Inception architecture for computer vision", Table 1).

Layout and names as torchvision's ``Inception3`` (blocks in ``minixai.inception_blocks``):

    transform_input        only with transform_input=True: x -> (pixels - 0.5) / 0.5   engine-only name
    Conv2d_1a_3x3 .. 4a    BasicConv2d (conv, bn with eps 0.001, relu): 3x3/2, 3x3, 3x3 pad 1, then maxpool1
                           (3x3/2), 1x1, 3x3, maxpool2 (3x3/2); 299 px -> 35x35x192
    Mixed_5b, 5c, 5d       InceptionA (35x35; 256, 288, 288 channels)
    Mixed_6a               InceptionB, reduction to 17x17x768
    Mixed_6b .. 6e         InceptionC (17x17x768; channels_7x7 128, 160, 160, 192)
    AuxLogits              InceptionAux: weights kept, head skipped (passes Mixed_6e's output on)
    Mixed_7a               InceptionD, reduction to 8x8x1280
    Mixed_7b, 7c           InceptionE (8x8x2048): Grad-CAM's default layer is Mixed_7c
    avgpool                AdaptiveAvgPool2d(1)
    flatten                (N, 2048, 1, 1) -> (N, 2048)                            engine-only name
    dropout                Dropout(0.5), identity when explaining (torchvision drops before it flattens;
                           dropout acts on each value alone, so the order changes nothing)
    fc                     Linear(2048, classes)

Inputs: 299x299 for the ImageNet weights (the spec's size; torchvision resizes to 342 and crops 299); any
size >= 75x75 runs. The Google weights expect ``transform_input=True``, which ``weights="imagenet"`` turns
on by default, as torchvision does.

Random initialisation: He-normal convolutions and PyTorch's uniform default for the dense layers, as the
other architectures here (``minixai.models.initialisation``). torchvision draws every convolution and
dense weight of Inception3 from N(0, 0.1^2) instead (truncated at +-2, i.e. at 20 standard deviations),
which with batch norm at its initial statistics makes random logits of order 1e3; He-normal keeps them
of order 1. ``models.from_torchvision`` copies a torchvision model's own weights either way.
"""
from minixai.inception_blocks import (BasicConv2d, InceptionA, InceptionAux, InceptionB, InceptionC, InceptionD,
                                      InceptionE, InputTransform)
from minixai.layers import AdaptiveAvgPool2d, Dropout, Flatten, Linear, MaxPool2d, Sequential

from .common import build, imagenet_spec

INPUT_SIZE = 299


def stem():
    """Table 1's first rows: five convolutions and two max-pools, (3, 299, 299) -> (192, 35, 35)."""
    return {
        "Conv2d_1a_3x3": BasicConv2d(3, 32, 3, stride=2),
        "Conv2d_2a_3x3": BasicConv2d(32, 32, 3),
        "Conv2d_2b_3x3": BasicConv2d(32, 64, 3, padding=1),
        "maxpool1": MaxPool2d(3, stride=2),
        "Conv2d_3b_1x1": BasicConv2d(64, 80, 1),
        "Conv2d_4a_3x3": BasicConv2d(80, 192, 3),
        "maxpool2": MaxPool2d(3, stride=2),
    }


def mixed(num_classes, aux_logits):
    """The Inception blocks (and the auxiliary head after Mixed_6e), (192, 35, 35) -> (2048, 8, 8)."""
    blocks = {
        "Mixed_5b": InceptionA(192, pool_features=32),
        "Mixed_5c": InceptionA(256, pool_features=64),
        "Mixed_5d": InceptionA(288, pool_features=64),
        "Mixed_6a": InceptionB(288),
        "Mixed_6b": InceptionC(768, channels_7x7=128),
        "Mixed_6c": InceptionC(768, channels_7x7=160),
        "Mixed_6d": InceptionC(768, channels_7x7=160),
        "Mixed_6e": InceptionC(768, channels_7x7=192),
    }
    if aux_logits:
        blocks["AuxLogits"] = InceptionAux(768, num_classes)
    blocks.update({"Mixed_7a": InceptionD(768), "Mixed_7b": InceptionE(1280), "Mixed_7c": InceptionE(2048)})
    return blocks


def inception_v3(weights=None, seed=0, transform_input=None, num_classes=1000, aux_logits=True, dropout=0.5,
                 device="cpu"):
    """Inception v3 with torchvision's layer names.

    weights: None (seeded random init), a {torchvision key: array} dict, a .npz/.pth path, or "imagenet"
    (torchvision's IMAGENET1K_V1, ported from TensorFlow; see ``minixai.models.common``).
    transform_input: put ``InputTransform`` first (see ``minixai.inception_blocks``); None means True for
    weights="imagenet" and False otherwise, as torchvision's builder. aux_logits: keep the auxiliary head's
    weights (``AuxLogits.*``; torchvision's checkpoint has them). seed: random init and dropout masks.
    device: "cpu" (NumPy) or "cuda"/"cuda:N" (CuPy), see Model.to.
    """
    if transform_input is None:
        transform_input = isinstance(weights, str) and weights == "imagenet"
    layers = {"transform_input": InputTransform()} if transform_input else {}
    layers.update(stem())
    layers.update(mixed(num_classes, aux_logits))
    layers.update({"avgpool": AdaptiveAvgPool2d(1), "flatten": Flatten(),
                   "dropout": Dropout(dropout, seed=[seed, 0]), "fc": Linear(2048, num_classes)})
    root = Sequential(*layers.values(), names=list(layers))
    model = build(root, "inception_v3", weights, seed, num_classes, linear_init="uniform")
    if model.spec.size == imagenet_spec().size:        # the generic default, not a converted file's own size
        model.spec.size = (INPUT_SIZE, INPUT_SIZE)
    return model if device == "cpu" else model.to(device)
