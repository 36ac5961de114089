"""Shared by the axiom tests (tests/test_axioms.py, tests/test_axioms_ig.py): an independent NumPy forward
pass, hypothesis strategies for small random float64 ReLU CNNs and their helpers, the hypothesis settings."""
import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from minixai.blocks import BasicBlock
from minixai.layers import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU,
                            Sequential)
from minixai.model import Model

FEW = settings(max_examples=10, deadline=None)
SOME = settings(max_examples=25, deadline=None)


# ---- an independent forward pass -------------------------------------------------------------------
def _conv(x, w, b, stride, padding, dilation):
    """out[n,k,i,j] = b[k] + sum_{c,r,s} w[k,c,r,s] xpad[n, c, i*S + r*D, j*S + s*D]."""
    (ph, pw), (dh, dw) = padding, dilation
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    K, C, R, S = w.shape
    windows = sliding_window_view(xpad, ((R - 1) * dh + 1, (S - 1) * dw + 1), axis=(2, 3))
    windows = windows[:, :, ::stride[0], ::stride[1], ::dh, ::dw]                  # n c i j r s
    out = np.einsum("ncijrs,kcrs->nkij", windows, w)
    return out if b is None else out + b[None, :, None, None]


def _maxpool(x, kernel, stride, padding):
    (ph, pw) = padding
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    return sliding_window_view(xpad, kernel, axis=(2, 3))[:, :, ::stride[0], ::stride[1]].max(axis=(4, 5))


def _adaptive_avg(x, size):
    (H, W), (h, w) = x.shape[2:], size
    out = np.empty((*x.shape[:2], h, w))
    for i in range(h):
        for j in range(w):
            out[:, :, i, j] = x[:, :, i * H // h:-(-(i + 1) * H // h), j * W // w:-(-(j + 1) * W // w)].mean((2, 3))
    return out


def reference_forward(layer, x):
    """The network's output computed from the layers' parameters with plain NumPy (no minixai kernels)."""
    if isinstance(layer, Model):
        return reference_forward(layer.root, x)
    if isinstance(layer, Sequential):
        for child in layer.layers.values():
            x = reference_forward(child, x)
        return x
    if isinstance(layer, BasicBlock):
        out = x
        for name in layer.main_path:
            out = reference_forward(getattr(layer, name), out)
        shortcut = x if layer.downsample is None else reference_forward(layer.downsample, x)
        return np.maximum(out + shortcut, 0)
    if isinstance(layer, Conv2d):
        return _conv(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation)
    if isinstance(layer, Linear):
        return x @ layer.weight.T + (0 if layer.bias is None else layer.bias)
    if isinstance(layer, ReLU):
        return np.maximum(x, 0)
    if isinstance(layer, MaxPool2d):
        return _maxpool(x, layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, AdaptiveAvgPool2d):
        return _adaptive_avg(x, layer.output_size)
    if isinstance(layer, AvgPool2d) and layer.kernel_size == layer.stride and layer.padding == (0, 0):
        (r, s), (N, C, H, W) = layer.kernel_size, x.shape                      # non-overlapping windows
        return x[:, :, :H // r * r, :W // s * s].reshape(N, C, H // r, r, W // s, s).mean(axis=(3, 5))
    if isinstance(layer, Flatten):
        return x.reshape(len(x), -1)
    if isinstance(layer, BatchNorm2d):
        scale = layer.weight / np.sqrt(layer.running_var + layer.eps)
        return ((x - layer.running_mean[:, None, None]) * scale[:, None, None] + layer.bias[:, None, None])
    raise TypeError(f"reference_forward does not know {type(layer).__name__}")


def score(model, x, target):
    """F(x): the target logit per sample (target=None: the sum of all logits)."""
    logits = reference_forward(model, x)
    return logits.sum(axis=1) if target is None else logits[np.arange(len(x)), np.broadcast_to(target, len(x))]


# ---- random networks -------------------------------------------------------------------------------
def randomize(model, rng, bias=True):
    """He-scaled float64 weights; small random biases (or none); random batch-norm statistics."""
    for _, layer in model.named_layers():
        if isinstance(layer, (Conv2d, Linear)):
            fan_in = layer.weight[0].size
            layer.weight = rng.standard_normal(layer.weight.shape) * np.sqrt(2 / fan_in)
            layer.bias = rng.normal(0, 0.1, layer.bias.shape) if bias and layer.bias is not None else None
        if isinstance(layer, BatchNorm2d):
            layer.weight = rng.uniform(0.5, 1.5, layer.num_features)
            layer.bias = rng.normal(0, 0.2, layer.num_features)
            layer.running_mean = rng.normal(0, 0.2, layer.num_features)
            layer.running_var = rng.uniform(0.5, 2.0, layer.num_features)
    return model


def sequential_model(named_layers):
    return Model(Sequential(*[layer for _, layer in named_layers], names=[name for name, _ in named_layers]))


@st.composite
def relu_cnns(draw, bias=True, outputs=None, pool=None, gap=None, hidden=None):
    """(model, rng, input shape): conv-relu-[maxpool]-conv-relu-avgpool-flatten-[linear-relu]-linear."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c_in, c1, c2 = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = draw(st.integers(4, 8)), draw(st.integers(4, 8))
    k1, stride1 = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    layers = [("conv1", Conv2d(c_in, c1, k1, stride=stride1, padding=k1 // 2)), ("relu1", ReLU())]
    h = (H + 2 * (k1 // 2) - k1) // stride1 + 1
    w = (W + 2 * (k1 // 2) - k1) // stride1 + 1
    if (draw(st.booleans()) if pool is None else pool) and min(h, w) >= 2:
        layers.append(("pool", MaxPool2d(2)))
    layers += [("conv2", Conv2d(c1, c2, 3, padding=1)), ("relu2", ReLU())]
    g = draw(st.integers(1, 2)) if gap is None else gap
    layers += [("gap", AdaptiveAvgPool2d(g)), ("flatten", Flatten())]
    features = c2 * g * g
    hidden = draw(st.sampled_from([0, 3, 6])) if hidden is None else hidden
    if hidden:
        layers += [("fc1", Linear(features, hidden)), ("relu3", ReLU())]
        features = hidden
    n_out = draw(st.integers(1, 4)) if outputs is None else outputs
    layers.append(("fc", Linear(features, n_out)))
    return randomize(sequential_model(layers), rng, bias), rng, (c_in, H, W)


@st.composite
def residual_cnns(draw, bias=True):
    """conv-bn-relu-BasicBlock(-BasicBlock)-avgpool-flatten-linear, with or without a downsample."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c_in, c1, c2 = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 2))
    layers = [("conv1", Conv2d(c_in, c1, 3, padding=1, bias=bias)), ("bn1", BatchNorm2d(c1)), ("relu", ReLU()),
              ("layer1", BasicBlock(c1, c1)), ("layer2", BasicBlock(c1, c2, stride=stride)),
              ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("fc", Linear(c2, 3))]
    size = draw(st.integers(3, 6))
    return randomize(sequential_model(layers), rng, bias), rng, (c_in, size, size)


def inputs(rng, shape, n=2, positive=False):
    x = rng.standard_normal((n, *shape))
    return np.abs(x) + 0.1 if positive else x

