"""ResNet (He et al. 2016, "Deep residual learning", Table 1), torchvision's V1.5 (stride in the 3x3 conv).

Layout and names as torchvision's ``ResNet``:

    conv1, bn1, relu, maxpool   7x7/2 conv (pad 3, no bias), batch norm, ReLU, 3x3/2 max-pool (pad 1)
    layer1 .. layer4            stages of residual blocks (``minixai.blocks``), 64/128/256/512 planes,
                                stride 2 in the first block of layer2..4; block children are torchvision's
                                (conv1, bn1, ..., downsample.0, downsample.1) plus engine-only relu1/relu2/add
    avgpool                     AdaptiveAvgPool2d(1)
    flatten                     (N, C, 1, 1) -> (N, C)    engine-only name: torchvision flattens in forward()
    fc                          Linear(512 * expansion, classes)
"""
from minixai.blocks import BasicBlock, Bottleneck
from minixai.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential

from .common import build

# block type and number of blocks in layer1..layer4
DEPTHS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def make_stage(block, inplanes, planes, blocks, stride):
    """One stage: the first block changes resolution/width (and gets a downsample), the rest keep it."""
    layers = [block(inplanes, planes, stride)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return Sequential(*layers)


def resnet(arch, weights=None, seed=0, num_classes=1000, device="cpu"):
    """ResNet by name ("resnet18", "resnet34", "resnet50"); see `resnet50` for the arguments."""
    block, blocks = DEPTHS[arch]
    layers, names = [Conv2d(3, 64, 7, stride=2, padding=3, bias=False), BatchNorm2d(64), ReLU(),
                     MaxPool2d(3, stride=2, padding=1)], ["conv1", "bn1", "relu", "maxpool"]
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        layers.append(make_stage(block, inplanes, planes, n, stride=1 if i == 0 else 2))
        names.append(f"layer{i + 1}")
        inplanes = planes * block.expansion
    layers += [AdaptiveAvgPool2d(1), Flatten(), Linear(inplanes, num_classes)]
    names += ["avgpool", "flatten", "fc"]
    return build(Sequential(*layers, names=names), arch, weights, seed, num_classes, linear_init="uniform",
                 device=device)


def resnet18(weights=None, seed=0, num_classes=1000, device="cpu"):
    """ResNet-18 (BasicBlock, 2-2-2-2). Arguments as `resnet50`."""
    return resnet("resnet18", weights, seed, num_classes, device)


def resnet34(weights=None, seed=0, num_classes=1000, device="cpu"):
    """ResNet-34 (BasicBlock, 3-4-6-3). Arguments as `resnet50`."""
    return resnet("resnet34", weights, seed, num_classes, device)


def resnet50(weights=None, seed=0, num_classes=1000, device="cpu"):
    """ResNet-50 (Bottleneck, 3-4-6-3).

    weights: None (seeded random init), a {torchvision key: array} dict, a .npz/.pth path, or "imagenet"
    (see ``minixai.models.common``). seed: random init. num_classes: outputs of ``fc``.
    device: "cpu" (NumPy) or "cuda"/"cuda:N" (CuPy), see Model.to.
    """
    return resnet("resnet50", weights, seed, num_classes, device)
