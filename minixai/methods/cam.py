"""Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017; seed 002).

    alpha_k^c = 1/Z sum_ij dy^c / dA^k_ij          (spatial mean of the gradient at the layer)
    L^c       = ReLU(sum_k alpha_k^c A^k)          (coarse map at the layer's resolution)
"""
import numpy as np

from ..backend import array_module
from ..images import resize_bilinear
from ..layers import AdaptiveAvgPool2d, AvgPool2d, Flatten, MaxPool2d
from ..validate import check_layer_name
from ..rules import Gradient, GuidedBackprop
from ._common import input_gradient, output_seed, prepare, returns_like_input
from .backprop import guided_backprop


def default_layer(model):
    """The last layer before the final pooling and flattening: layer4 for ResNets, features.29 for VGG16."""
    path = model._path
    i = next(k for k, (_, layer) in enumerate(path) if isinstance(layer, Flatten))
    while i > 0 and isinstance(path[i - 1][1], (MaxPool2d, AvgPool2d, AdaptiveAvgPool2d)):
        i -= 1
    name = path[i - 1][0]
    if "." not in name:
        return name                                   # a top-level layer of a flat model
    parent = name.rsplit(".", 1)[0]
    siblings = [n for n, _ in path if n.startswith(parent + ".")]
    top_level = parent in model.root.children() and parent not in ("features", "classifier")
    return parent if top_level and siblings[-1] == name else name


def layer_gradient(model, x, targets, layer):
    """(A, dy/dA): the layer's output and the gradient of the explained score with respect to it.
    For a layer on the model's main path the network is cut there: the part below the layer runs forward
    only, the part above runs forward and backward on A (no gradient down to the input is needed)."""
    if layer not in model.path_names():
        _, tape = input_gradient(model, x, targets, capture=[layer])
        return tape.outputs[layer], tape.grads[layer]
    A = model.submodel(end=layer).record(x).output
    head = model.submodel(start=layer)
    return A, input_gradient(head, A, targets)[0]


def refuse_output_layer(model, layer, method):
    """A ValueError if `layer` is (or holds) the output layer: its output (N, classes) has no maps."""
    last = model.layer_names()[-1]                       # forward order: the output layer comes last
    if layer == last or last.startswith(layer + "."):
        raise ValueError(f"{method} needs a layer with spatial maps (N, K, h, w); {layer!r} gives the model's "
                         f"output (N, {model.num_outputs}): choose one before it, e.g. {default_layer(model)!r}")


@returns_like_input
def gradcam(model, x, target, layer=None, upsample=True, relu=True):
    """Class activation map (N, H, W) of the input size (upsample=True, bilinear) or (N, h, w) of the layer's.
    layer: a layer name (default: `default_layer(model)`); relu=False keeps the negative evidence."""
    x, targets = prepare(model, x, target)
    layer = default_layer(model) if layer is None else check_layer_name(layer, model.layer_names())
    refuse_output_layer(model, layer, "Grad-CAM")
    A, dA = layer_gradient(model, x, targets, layer)
    cam = class_activation_map(A, dA, layer, relu)
    return resize_bilinear(cam, x.shape[2:]) if upsample else cam


def class_activation_map(A, dA, layer, relu=True):
    """L = [ReLU](sum_k alpha_k A^k), alpha_k the spatial mean of dA^k: (N, h, w)."""
    if A.ndim != 4:
        raise ValueError(f"Grad-CAM needs a layer with spatial maps (N, K, h, w); {layer!r} outputs {A.shape}")
    alpha = dA.mean(axis=(2, 3))                                  # (N, K)
    cam = array_module(A).einsum("nk,nkij->nij", alpha, A)
    return np.maximum(cam, 0) if relu else cam


@returns_like_input
def guided_gradcam(model, x, target, layer=None):
    """Guided backprop times the upsampled Grad-CAM map, shape (N, C, H, W).

    One forward pass serves both when the layer is on the main path: the network is cut there, and the
    upper part's tape goes back twice, with the plain gradient (Grad-CAM's weights) and with guided
    backprop's rule, which then carries on through the lower part to the input."""
    x, targets = prepare(model, x, target)
    layer = default_layer(model) if layer is None else check_layer_name(layer, model.layer_names())
    refuse_output_layer(model, layer, "Guided Grad-CAM")
    if layer not in model.path_names():                           # inside a block: two passes
        return guided_backprop(model, x, target) * gradcam(model, x, target, layer)[:, None]
    body, head = model.submodel(end=layer), model.submodel(start=layer)
    body_tape = body.record(x)
    head_tape = head.record(body_tape.output)
    seed = output_seed(head_tape.output, targets)
    cam = class_activation_map(body_tape.output, head.backward(seed, Gradient(), head_tape), layer)
    guided = body.backward(head.backward(seed, GuidedBackprop(), head_tape), GuidedBackprop(), body_tape)
    return guided * resize_bilinear(cam, x.shape[2:])[:, None]
