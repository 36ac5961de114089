"""Canonizers: rewrite a model into an equivalent one on which LRP rules behave (Zennit's term).

``merge_batchnorm`` folds each BatchNorm2d into the convolution before it (w' = w * scale,
b' = b * scale + shift) and puts an identity in its place: the function is unchanged, but the
batch-norm shift now sits in a bias that the LRP rules see.
"""
import copy

import numpy as np

from .layers import BatchNorm2d, Conv2d, Layer, Sequential
from .model import Model


class Identity(Layer):
    """out = x (stands where a folded batch norm was)."""

    def forward(self, ctx, x):
        return x

    def grad(self, ctx, dout):
        return dout


def fold_batchnorm(conv, bn):
    """A Conv2d computing bn(conv(x)) in one step: w' = w * scale, b' = b * scale + shift."""
    scale, shift = bn.scale_shift(np.float64)
    folded = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation)
    folded.weight = (conv.weight * scale[:, None, None, None]).astype(conv.weight.dtype)
    bias = conv.bias if conv.bias is not None else 0.0
    folded.bias = (bias * scale + shift).astype(conv.weight.dtype)
    folded.name = conv.name
    return folded


def _replace(container, key, new):
    if isinstance(container, Sequential):
        container.layers[key] = new
    else:
        setattr(container, key, new)


def _fold_children(container):
    children = list(container.children().items())
    for (key, layer), (next_key, follower) in zip(children, children[1:]):
        if isinstance(layer, Conv2d) and isinstance(follower, BatchNorm2d):
            _replace(container, key, fold_batchnorm(layer, follower))
            identity = Identity()
            identity.name = follower.name
            _replace(container, next_key, identity)
    for _, child in container.children().items():
        if child.children():
            _fold_children(child)


def merge_batchnorm(model):
    """A copy of `model` with every Conv2d -> BatchNorm2d pair folded into one Conv2d."""
    if not any(isinstance(layer, BatchNorm2d) for _, layer in model.named_layers()):
        return model
    # copy the layer tree, not the weights: the folded convolutions get new arrays, every other array is shared
    shared = {id(array): array for array in model.state_dict().values()}
    root = copy.deepcopy(model.root, memo=shared)
    _fold_children(root)
    return Model(root, model.spec, model.arch + "+bn-folded")
