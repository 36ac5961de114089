"""AlexNet (Krizhevsky et al. 2012), in the one-GPU variant of Krizhevsky 2014 that torchvision ships.

Layout and names as torchvision's ``AlexNet``:

    features.0-12  Conv 11x11/4 pad 2 (64), ReLU, MaxPool 3/2, Conv 5x5 pad 2 (192), ReLU, MaxPool 3/2,
                   Conv 3x3 pad 1 (384), ReLU, Conv 3x3 pad 1 (256), ReLU, Conv 3x3 pad 1 (256), ReLU, MaxPool 3/2
    avgpool        AdaptiveAvgPool2d((6, 6))             any input size >= 63 works
    flatten        (N, 256, 6, 6) -> (N, 9216)           engine-only name: torchvision flattens in forward()
    classifier.0-6 Dropout, Linear 9216->4096, ReLU, Dropout, Linear 4096->4096, ReLU, Linear 4096->classes
"""
from minixai.layers import AdaptiveAvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential

from .common import build


def alexnet(weights=None, seed=0, num_classes=1000, device="cpu"):
    """AlexNet. weights: None (seeded random init), a {torchvision key: array} dict, a .npz/.pth path,
    or "imagenet" (see ``minixai.models.common``). seed: random init and dropout masks (training only)."""
    features = Sequential(
        Conv2d(3, 64, 11, stride=4, padding=2), ReLU(), MaxPool2d(3, stride=2),
        Conv2d(64, 192, 5, padding=2), ReLU(), MaxPool2d(3, stride=2),
        Conv2d(192, 384, 3, padding=1), ReLU(),
        Conv2d(384, 256, 3, padding=1), ReLU(),
        Conv2d(256, 256, 3, padding=1), ReLU(), MaxPool2d(3, stride=2))
    classifier = Sequential(
        Dropout(0.5, seed=[seed, 0]), Linear(256 * 6 * 6, 4096), ReLU(),
        Dropout(0.5, seed=[seed, 3]), Linear(4096, 4096), ReLU(),
        Linear(4096, num_classes))
    root = Sequential(features, AdaptiveAvgPool2d((6, 6)), Flatten(), classifier,
                      names=["features", "avgpool", "flatten", "classifier"])
    return build(root, "alexnet", weights, seed, num_classes, linear_init="uniform", device=device)
