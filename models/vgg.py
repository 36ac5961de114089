"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks", Table 1, configurations A and D).

Layout and names as torchvision's ``VGG``:

    features.N     3x3 convolutions (padding 1) each followed by ReLU, a 2x2 max-pool after each stage
    avgpool        AdaptiveAvgPool2d((7, 7))             any input size >= 32 works
    flatten        (N, 512, 7, 7) -> (N, 25088)          engine-only name: torchvision flattens in forward()
    classifier.0-6 Linear 25088->4096, ReLU, Dropout, Linear 4096->4096, ReLU, Dropout, Linear 4096->classes
"""
from minixai.layers import AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential

from .common import build

# output channels of each convolution; "M" is a 2x2 max-pool
CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


def make_features(config, in_channels=3):
    layers = []
    for v in config:
        if v == "M":
            layers.append(MaxPool2d(2, stride=2))
        else:
            layers += [Conv2d(in_channels, v, 3, padding=1), ReLU()]
            in_channels = v
    return Sequential(*layers)


def vgg(arch, weights=None, seed=0, num_classes=1000, device="cpu"):
    """VGG by configuration name ("vgg11", "vgg16"); see `vgg16` for the arguments."""
    classifier = Sequential(
        Linear(512 * 7 * 7, 4096), ReLU(), Dropout(0.5, seed=[seed, 2]),
        Linear(4096, 4096), ReLU(), Dropout(0.5, seed=[seed, 5]),
        Linear(4096, num_classes))
    root = Sequential(make_features(CONFIGS[arch]), AdaptiveAvgPool2d((7, 7)), Flatten(), classifier,
                      names=["features", "avgpool", "flatten", "classifier"])
    return build(root, arch, weights, seed, num_classes, linear_init="normal", device=device)


def vgg11(weights=None, seed=0, num_classes=1000, device="cpu"):
    """VGG-11 (configuration A, 8 convolutions). Arguments as `vgg16`."""
    return vgg("vgg11", weights, seed, num_classes, device)


def vgg16(weights=None, seed=0, num_classes=1000, device="cpu"):
    """VGG-16 (configuration D, 13 convolutions).

    weights: None (seeded random init), a {torchvision key: array} dict, a .npz/.pth path, or "imagenet"
    (see ``minixai.models.common``). seed: random init and dropout masks (training only).
    num_classes: outputs of ``classifier.6``. device: "cpu" (NumPy) or "cuda"/"cuda:N" (CuPy), see Model.to.
    """
    return vgg("vgg16", weights, seed, num_classes, device)
