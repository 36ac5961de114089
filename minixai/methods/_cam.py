"""What the class activation maps share: the layer (chosen or checked), its activations, the explained
score, and the last two steps, ReLU and upsampling.

Every CAM is f(model, x, target, layer=None, upsample=True) -> (N, H, W) (input size, bilinear with half-pixel
centres) or (N, h, w) (the layer's size) with upsample=False, as NumPy or GPU array as x is (the arrays in
between live where the model does). layer=None picks the last convolutional stage, ``cam.default_layer``:
layer4 for the ResNets, features.29 for VGG-16, features.11 for AlexNet, Mixed_7c for Inception v3,
features.10 for the shapes CNN. The maps are not rescaled: pytorch-grad-cam divides each one by its maximum
(after subtracting its minimum, ``/(max + 1e-7)``) and resizes it in float32, which ``viz`` does for display.
"""
import numpy as np

from ..backend import array_module
from ..images import resize_bilinear
from ..validate import check_layer_name
from ._common import prepare
from .cam import default_layer, refuse_output_layer


def setup(model, x, target, layer, method):
    """(x, targets (N,) or None, layer name) checked: `layer` None means default_layer(model); a wrong name
    raises a ValueError listing the valid ones, and so does the output layer (it has no maps)."""
    x, targets = prepare(model, x, target)
    layer = default_layer(model) if layer is None else check_layer_name(layer, model.layer_names())
    refuse_output_layer(model, layer, method)
    return x, targets, layer


def activations(model, x, layer, method):
    """A (N, K, h, w), the output of `layer` for x. A layer on the main path cuts the network there: only
    the part below it runs."""
    if layer in model.path_names():
        A = model.submodel(end=layer).record(x).output
    else:
        A = model.record(x, capture=[layer]).outputs[layer]
    return spatial(A, layer, method)


def spatial(A, layer, method):
    """A itself if it is a stack of maps (N, K, h, w); else a ValueError naming the layer and its shape."""
    if A.ndim != 4:
        raise ValueError(f"{method} needs a layer with spatial maps (N, K, h, w); {layer!r} outputs {A.shape}")
    return A


def weighted_sum(weights, A):
    """sum_k w_k A_k: weights (N, K) and A (N, K, h, w) -> (N, h, w)."""
    return array_module(A).einsum("nk,nkij->nij", weights, A)


def finish(cam, x, upsample):
    """ReLU of the map (N, h, w) (only evidence for the class is kept), then bilinear upsampling to x's size."""
    cam = np.maximum(cam, 0)
    return resize_bilinear(cam, x.shape[2:]) if upsample else cam


def explained_scores(logits, targets):
    """The explained score per row: the target logit (targets (B,)), or the sum of the logits (None)."""
    if targets is None:
        return logits.sum(axis=1)
    xp = array_module(logits)
    return logits[xp.arange(len(targets)), xp.asarray(targets)]
