"""Class activation maps from the gradient at a layer, Grad-CAM's relatives.

With A (N, K, h, w) the layer's output and g = dy^c / dA its gradient (``cam.layer_gradient``: one pass,
cut at the layer when it is on the main path), each method weights A and keeps the positive part:

    Grad-CAM     L = ReLU(sum_k alpha_k A_k),   alpha_k = mean_ij g_kij                    (cam.gradcam)
    Grad-CAM++   w_k = sum_ij a_kij ReLU(g_kij), a = g^2 / (2 g^2 + sum_ab A_kab g^3)    Chattopadhay 2018
    XGradCAM     w_k = sum_ij g_kij A_kij / sum_ab A_kab                                   Fu 2020
    HiResCAM     L = ReLU(sum_k g_k * A_k)       (element-wise: no averaging of g)         Draelos 2020
    LayerCAM     L = ReLU(sum_k ReLU(g_k) * A_k)                                           Jiang 2021

When the layer is followed only by global average pooling and one linear layer (ResNet's layer4, Inception's
Mixed_7c), g is constant over each map, and Grad-CAM, XGradCAM and HiResCAM give the same map; they differ on
any deeper layer. The constants are pytorch-grad-cam's (its classes of the same names compute these maps, then
rescale them: see ``_cam``), so the maps agree with its unscaled ones to rounding (tests/test_parity_cam.py).
"""
import numpy as np

from ._cam import finish, setup, spatial, weighted_sum
from ._common import returns_like_input
from .cam import layer_gradient


def _maps_and_gradients(model, x, target, layer, method):
    """(x, A, g) for the CAMs below: g = d score / dA, A and g of shape (N, K, h, w)."""
    x, targets, layer = setup(model, x, target, layer, method)
    A, g = layer_gradient(model, x, targets, layer)
    return x, spatial(A, layer, method), g


@returns_like_input
def gradcam_plus_plus(model, x, target, layer=None, upsample=True):
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the ReLU of eq. 7): map (N, H, W), (N, h, w) with
    upsample=False. The second and third derivatives of exp(score) are written with the first, as the paper
    does: a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3 + 1e-6). As pytorch-grad-cam: the 1e-6 in the denominator,
    a = 0 where g = 0, and the weights sum a * ReLU(g)."""
    x, A, g = _maps_and_gradients(model, x, target, layer, "Grad-CAM++")
    g2 = g * g
    total = A.sum(axis=(2, 3), keepdims=True)                          # sum_ab A_kab, (N, K, 1, 1)
    alpha = g2 / (2 * g2 + total * g2 * g + 1e-6)
    alpha = np.where(g != 0, alpha, 0)
    weights = (alpha * np.maximum(g, 0)).sum(axis=(2, 3))             # (N, K)
    return finish(weighted_sum(weights, A), x, upsample)


@returns_like_input
def xgradcam(model, x, target, layer=None, upsample=True):
    """XGradCAM (Fu et al. 2020, eq. 11): w_k = sum_ij (A_kij / (sum_ab A_kab + 1e-7)) g_kij, the gradient
    averaged with the activations as weights. Map (N, H, W), (N, h, w) with upsample=False. The 1e-7 is
    pytorch-grad-cam's (the paper has none); a map with sum_ab A_kab = -1e-7 divides by zero, as there."""
    x, A, g = _maps_and_gradients(model, x, target, layer, "XGradCAM")
    weights = (g * A).sum(axis=(2, 3)) / (A.sum(axis=(2, 3)) + 1e-7)
    return finish(weighted_sum(weights, A), x, upsample)


@returns_like_input
def hirescam(model, x, target, layer=None, upsample=True):
    """HiResCAM (Draelos & Carin 2020): L = ReLU(sum_k g_k * A_k), the gradient kept at each position, so that
    for a layer followed by one dense layer the map is exactly the score's contribution per position.
    Map (N, H, W), (N, h, w) with upsample=False."""
    x, A, g = _maps_and_gradients(model, x, target, layer, "HiResCAM")
    return finish((g * A).sum(axis=1), x, upsample)


@returns_like_input
def layercam(model, x, target, layer=None, upsample=True):
    """LayerCAM (Jiang et al. 2021, eq. 5-6): L = ReLU(sum_k ReLU(g_k) * A_k), a position's activation
    weighted by its own positive gradient; meant for shallow layers too. Map (N, H, W), (N, h, w) with
    upsample=False."""
    x, A, g = _maps_and_gradients(model, x, target, layer, "LayerCAM")
    return finish((np.maximum(g, 0) * A).sum(axis=1), x, upsample)
