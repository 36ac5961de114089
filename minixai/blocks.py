"""The two residual blocks of ResNet, built from the layers of ``minixai.layers``.

Child names match torchvision's (conv1, bn1, conv2, bn2, conv3, bn3, downsample, relu). torchvision calls
one ReLU module several times per block; here each call site has its own layer (a layer runs once per
pass, so its context on the tape is unambiguous): ``relu1`` (and ``relu2`` in the bottleneck) inside the
block, ``relu`` after the join, and the join itself is the layer ``add``.
"""
from .layers import Add, BatchNorm2d, Conv2d, Layer, ReLU, Sequential


class _Residual(Layer):
    """out = relu(main(x) + shortcut(x)), with shortcut = downsample(x) or x."""
    main_path = ()

    def children(self):
        names = [*self.main_path, "downsample", "add", "relu"]
        return {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}

    def forward(self, ctx, x):
        out = x
        for name in self.main_path:
            out = ctx.forward(getattr(self, name), out)
        identity = x if self.downsample is None else ctx.forward(self.downsample, x)
        return ctx.forward(self.relu, ctx.forward(self.add, out, identity))

    def backward(self, ctx, dout, rule):
        d_main, d_identity = ctx.backward(self.add, ctx.backward(self.relu, dout, rule), rule)
        for name in reversed(self.main_path):
            d_main = ctx.backward(getattr(self, name), d_main, rule)
        if self.downsample is not None:
            d_identity = ctx.backward(self.downsample, d_identity, rule)
        return d_main + d_identity


def _downsample(inplanes, outplanes, stride):
    if stride == 1 and inplanes == outplanes:
        return None
    return Sequential(Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), BatchNorm2d(outplanes))


class BasicBlock(_Residual):
    """Two 3x3 convolutions (ResNet-18/34)."""
    expansion = 1
    main_path = ("conv1", "bn1", "relu1", "conv2", "bn2")

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1, self.relu1 = BatchNorm2d(planes), ReLU()
        self.conv2 = Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = _downsample(inplanes, planes, stride)
        self.add, self.relu = Add(), ReLU()


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's V1.5), 1x1 expand (ResNet-50)."""
    expansion = 4
    main_path = ("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3")

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 1, bias=False)
        self.bn1, self.relu1 = BatchNorm2d(planes), ReLU()
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2, self.relu2 = BatchNorm2d(planes), ReLU()
        self.conv3 = Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = BatchNorm2d(planes * 4)
        self.downsample = _downsample(inplanes, planes * 4, stride)
        self.add, self.relu = Add(), ReLU()
