"""The blocks of Inception v3 (Szegedy et al. 2016, "Rethinking the Inception architecture", fig. 5-7 and
Table 1), built from the layers of ``minixai.layers`` and the branch join ``minixai.concat.Concat``.

Child names match torchvision's (``branch1x1``, ``branch5x5_1``, ..., ``branch_pool``, ``conv``, ``bn``).
Where torchvision calls a function instead of a module, each call site here has a layer of its own, with an
engine-only name (as ResNet's ``relu1``/``relu2``/``add`` in ``minixai.blocks``):
- ``relu`` in every BasicConv2d (torchvision's ``F.relu``);
- ``pool`` in every block: the 3x3 average pool (stride 1, padding 1, zeros counted in the mean, PyTorch's
  ``count_include_pad=True``, not TensorFlow's mean over the real pixels) in front of ``branch_pool`` in
  blocks A, C and E, and the 3x3 stride-2 max-pool branch of the reductions B and D;
- ``transform_input`` (``InputTransform``), the first layer of a model whose ``transform_input`` is on.
Block E's branches end in two convolutions side by side (1x3 and 3x1), joined by a Concat inside the branch;
that inner join has no name (torchvision concatenates with ``torch.cat``) and its layers are the block's.
"""
import numpy as np

from .backend import array_module
from .concat import Concat, channels_after
from .layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU,
                     Sequential)
from .spec import IMAGENET_MEAN, IMAGENET_STD


class BasicConv2d(Sequential):
    """conv (no bias) -> bn (BatchNorm2d, eps 0.001) -> relu: every convolution of Inception v3."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
                         BatchNorm2d(out_channels, eps=0.001), ReLU(), names=["conv", "bn", "relu"])

    def __repr__(self):
        return f"BasicConv2d({self['conv']!r})"


class _Inception(Concat):
    """A block of branches side by side (a Concat) whose layers are attributes with torchvision's names.
    Subclasses set their layers, then call ``super().__init__(in_channels, *branches)``."""

    def __init__(self, in_channels, *branches):
        super().__init__(*branches)
        self.in_channels = in_channels

    def children(self):
        return {name: value for name, value in vars(self).items() if isinstance(value, Layer)}

    def channels_of(self):
        """{name: (first, stop)}: which output channels each branch gives, under the name of the branch's last
        layer (block E's split branches each count as one). A filter of ``Mixed_6b.branch7x7dbl_5`` is the
        channel first + k of ``Mixed_6b``, which filter visualisation and SUMMIT can use."""
        names = {id(layer): name for name, layer in self.children().items()}
        found = {}
        for branch, (start, _) in zip(self.branches, self.branch_channels(self.in_channels)):
            last = branch[-1]
            if not isinstance(last, Concat):
                found[names[id(last)]] = (start, start + channels_after(branch, self.in_channels))
                continue
            inner = last.branch_channels(channels_after(branch[:-1], self.in_channels))
            for sub, (first, stop) in zip(last.branches, inner):
                found[names[id(sub[-1])]] = (start + first, start + stop)
        return found


class InceptionA(_Inception):
    """35x35 grid (fig. 5): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1. 224 + pool_features channels."""

    def __init__(self, in_channels, pool_features):
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.pool = AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)
        super().__init__(in_channels, [self.branch1x1], [self.branch5x5_1, self.branch5x5_2],
                         [self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3],
                         [self.pool, self.branch_pool])


class InceptionB(_Inception):
    """Grid reduction 35 -> 17 (fig. 10): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max-pool 3x3/2. 480 + in channels."""

    def __init__(self, in_channels):
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)
        self.pool = MaxPool2d(3, stride=2)
        super().__init__(in_channels, [self.branch3x3],
                         [self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3], [self.pool])


class InceptionC(_Inception):
    """17x17 grid (fig. 6), n = 7: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg-pool -> 1x1.
    768 channels; channels_7x7 is the width inside the factorised 7x7 branches."""

    def __init__(self, in_channels, channels_7x7):
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.pool = AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)
        super().__init__(in_channels, [self.branch1x1], [self.branch7x7_1, self.branch7x7_2, self.branch7x7_3],
                         [self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                          self.branch7x7dbl_5],
                         [self.pool, self.branch_pool])


class InceptionD(_Inception):
    """Grid reduction 17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max-pool 3x3/2. 512 + in channels."""

    def __init__(self, in_channels):
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)
        self.pool = MaxPool2d(3, stride=2)
        super().__init__(in_channels, [self.branch3x3_1, self.branch3x3_2],
                         [self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4],
                         [self.pool])


class InceptionE(_Inception):
    """8x8 grid (fig. 7), the widest: 1x1 | 1x1 -> (1x3 | 3x1) | 1x1 -> 3x3 -> (1x3 | 3x1) | avg-pool -> 1x1.
    2048 channels: 320 + 2 x 384 + 2 x 384 + 192."""

    def __init__(self, in_channels):
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.pool = AvgPool2d(3, stride=1, padding=1)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)
        split = Concat([self.branch3x3_2a], [self.branch3x3_2b])
        split_dbl = Concat([self.branch3x3dbl_3a], [self.branch3x3dbl_3b])
        super().__init__(in_channels, [self.branch1x1], [self.branch3x3_1, split],
                         [self.branch3x3dbl_1, self.branch3x3dbl_2, split_dbl], [self.pool, self.branch_pool])


class InceptionAux(Layer):
    """The auxiliary classifier after Mixed_6e (sec. 4 of the paper), used only in training. Its weights are
    kept (torchvision's ``AuxLogits.*`` keys load and save), but the head does not run: in a pass through the
    model this layer hands its input on unchanged, as torchvision's forward skips the head in eval mode.
    Training with the auxiliary loss is not supported. ``logits(x)`` computes the head for x (N, 768, 17, 17):
    avg-pool 5x5/3 -> conv0 (1x1, 128) -> conv1 (5x5, 768) -> global average -> fc."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)
        self.fc = Linear(768, num_classes)

    def children(self):
        return {"conv0": self.conv0, "conv1": self.conv1, "fc": self.fc}

    def forward(self, ctx, x):
        return x                                          # skipped: the main path goes on from Mixed_6e

    def grad(self, ctx, dout):
        return dout

    def logits(self, x):
        """The auxiliary logits (N, classes) for Mixed_6e's output x (N, 768, 17, 17), on a throwaway tape."""
        head = Sequential(AvgPool2d(5, stride=3), self.conv0, self.conv1, AdaptiveAvgPool2d(1), Flatten(), self.fc)
        return head(x)


class InputTransform(Layer):
    """torchvision's ``transform_input`` for the Google weights of Inception v3, which were trained on pixels
    scaled to [-1, 1]: an input normalised with ImageNet's mean and std is mapped to (pixels - 0.5) / 0.5,
        out_c = x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5,      dx_c = dout_c * std_c / 0.5."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.scale = np.asarray(std, np.float64) / 0.5
        self.shift = (np.asarray(mean, np.float64) - 0.5) / 0.5

    def _per_channel(self, values, like):
        return array_module(like).asarray(values, dtype=like.dtype)[:, None, None]

    def forward(self, ctx, x):
        return x * self._per_channel(self.scale, x) + self._per_channel(self.shift, x)

    def grad(self, ctx, dout):
        return dout * self._per_channel(self.scale, dout)

    def __repr__(self):
        return f"InputTransform(scale={self.scale.round(4).tolist()}, shift={self.shift.round(4).tolist()})"
