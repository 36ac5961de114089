"""The two residual blocks of ResNet, built from the layers of ``minixai.layers``.

Child names match torchvision's (conv1, bn1, conv2, bn2, conv3, bn3, downsample, relu). torchvision calls
one ReLU module several times per block; here each call site has its own layer because a layer caches
its mask: ``relu1`` (and ``relu2`` in the bottleneck) inside the block, ``relu`` after the join, and the
join itself is the layer ``add``.
"""
from .layers import Add, BatchNorm2d, Conv2d, Layer, ReLU, Sequential, backward_chain, forward_chain


class _Residual(Layer):
    """out = relu(main(x) + shortcut(x)), with shortcut = downsample(x) or x."""
    main_path = ()

    def children(self):
        names = [*self.main_path, "downsample", "add", "relu"]
        return {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}

    def forward(self, x):
        out = forward_chain([getattr(self, name) for name in self.main_path], x)
        identity = self.downsample(x) if self.downsample is not None else x
        if self.add.capture or self.relu.keep_input or self.relu.training:
            return self.relu(self.add(out, identity))
        return self.relu.take_fused(self.add.forward_relu(out, identity))     # one pass, same numbers

    def backward(self, dout, rule=None):
        if self.capture:
            self.captured_grad = dout
        d_main, d_identity = self.add.backward(self.relu.backward(dout, rule), rule)
        d_main = backward_chain([getattr(self, name) for name in self.main_path], d_main, rule)
        if self.downsample is not None:
            d_identity = self.downsample.backward(d_identity, rule)
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
