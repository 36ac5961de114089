"""Concat: branches that read the same input side by side, their outputs stacked along channels.

This is the join of Inception's blocks (Szegedy et al. 2015, "Going deeper with convolutions", fig. 2):

    out = cat([branch_1(x), ..., branch_B(x)], axis=1)          each branch a list of layers run in order
    dx  = sum_b branch_b^T(dout[:, C_1 + ... + C_(b-1) : C_1 + ... + C_b])

The backward splits dout by channels (branch b produced C_b of them), sends each part back through its own
branch, and adds the input gradients: x feeds every branch, so its gradient is the sum over the branches
(the multivariate chain rule). Any rule passes through unchanged: concatenation only routes values, so
relevance (LRP) and DeepLIFT's multipliers split by channel in the same way, and what each branch conserves
the sum conserves.
"""
import itertools

from .backend import array_module
from .layers import Layer


def split_channels(dout, channels):
    """dout (N, C_1 + ... + C_B, h, w) -> [dout_1 (N, C_1, h, w), ..., dout_B]: the part of each branch."""
    bounds = list(itertools.accumulate(channels))[:-1]            # C_1, C_1 + C_2, ...: where each part ends
    return array_module(dout).split(dout, bounds, axis=1)


class Concat(Layer):
    """out = cat([branch(x) for branch in branches], channels). branches: lists of layers, each run in order
    on the same input x (N, C, H, W); every branch must give the same (h, w)."""

    def __init__(self, *branches):
        super().__init__()
        if not branches or any(len(branch) == 0 for branch in branches):
            raise ValueError("Concat needs at least one branch, and every branch at least one layer")
        self.branches = [list(branch) for branch in branches]

    def children(self):
        """The branches' layers numbered in order ("0", "1", ...); Inception's blocks name them as torchvision."""
        return {str(i): layer for i, layer in enumerate(layer for branch in self.branches for layer in branch)}

    def forward(self, ctx, x):
        outs = []
        for branch in self.branches:
            out = x
            for layer in branch:
                out = ctx.forward(layer, out)
            outs.append(out)
        sizes = {out.shape[2:] for out in outs}
        if len(sizes) > 1:
            raise ValueError(f"{self.name or 'Concat'}: the branches give maps of different sizes {sorted(sizes)}")
        ctx.channels = [out.shape[1] for out in outs]            # C_b: where dout is split in the backward
        return array_module(x).concatenate(outs, axis=1)

    def backward(self, ctx, dout, rule):
        dx = None
        for branch, d in zip(self.branches, split_channels(dout, ctx.channels)):
            for layer in reversed(branch):
                d = ctx.backward(layer, d, rule)
            dx = d if dx is None else dx + d                      # x fed every branch: the gradients add
        return dx

    def branch_channels(self, in_channels):
        """[(first, stop)] channel range of each branch in the output, for an input of `in_channels` channels
        (known from the layers: no pass needed)."""
        ranges, start = [], 0
        for branch in self.branches:
            stop = start + channels_after(branch, in_channels)
            ranges.append((start, stop))
            start = stop
        return ranges

    def __repr__(self):
        inner = "\n".join(f"  branch {i}: " + " -> ".join(repr(layer).replace("\n", "\n  ") for layer in branch)
                          for i, branch in enumerate(self.branches))
        return f"{type(self).__name__}(\n{inner}\n)"


def channels_after(layers, channels):
    """Channels out of `layers` run in order on an input with `channels` (pooling and activations keep them)."""
    for layer in layers:
        if isinstance(layer, Concat):
            channels = layer.branch_channels(channels)[-1][1]
        elif hasattr(layer, "out_channels"):
            channels = layer.out_channels
        elif layer.children():
            channels = channels_after(layer.children().values(), channels)
    return channels
