"""Architectures with torchvision's layer names: VGG-11/16, AlexNet, ResNet-18/34/50, Inception v3.

    model = models.resnet50(weights=None, seed=0)     # seeded random init
    model = models.vgg16(weights="imagenet")          # converted torchvision weights from the local cache
    model = models.load("resnet18")                   # by name, with its pretrained weights
    model = models.from_torchvision(net)              # a live torchvision model (torch installed)
"""
from .alexnet import alexnet
from .common import imagenet_classes, imagenet_spec
from .convert import from_torchvision
from .inception import inception_v3
from .resnet import resnet18, resnet34, resnet50
from .shapes import SHAPES_WEIGHTS, shapes
from .vgg import vgg11, vgg16

# name -> builder(weights=None, seed=0, ...). The embedded "shapes" CNN joins both dicts once its
# builder and shipped weights exist (PRETRAINED["shapes"] will name the shipped file).
ARCHITECTURES = {
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "inception_v3": inception_v3,
    "shapes": shapes,
}
# what load(name) uses for weights="pretrained"
PRETRAINED = {name: "imagenet" for name in ARCHITECTURES}
PRETRAINED["shapes"] = SHAPES_WEIGHTS


def load(name, weights="pretrained", seed=0, device="cpu"):
    """The model `name` (one of ARCHITECTURES) with `weights`.

    weights="pretrained": its standard trained weights (torchvision's ImageNet weights for the torchvision
    architectures, from the local cache or downloaded; the shipped file for "shapes"). Anything else is
    passed to the builder: None (seeded random init), a dict, a .npz/.pth path, "imagenet".
    device: "cpu" (NumPy arrays) or "cuda" / "cuda:N" (CuPy arrays on that GPU), see Model.to.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(ARCHITECTURES)}")
    if isinstance(weights, str) and weights == "pretrained":
        weights = PRETRAINED[name]
    return ARCHITECTURES[name](weights=weights, seed=seed, device=device)


__all__ = ["shapes", "vgg11", "vgg16", "alexnet", "resnet18", "resnet34", "resnet50", "inception_v3",
           "from_torchvision", "load", "ARCHITECTURES", "PRETRAINED", "imagenet_classes", "imagenet_spec"]
