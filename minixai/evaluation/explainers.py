"""The explanations under test, and two controls that any metric must tell apart from them.

A metric needs to call an explanation method again (on randomised models, perturbed inputs, another
class): `explainer` turns a name of mx.METHODS or any callable f(model, x, target) into one.

Controls (Adebayo et al. 2018 make the same point with an edge detector, Fig. 1):
- `random_map`: uniform noise per pixel, independent of model, image and class. Every score it reaches is
  what chance gives.
- `edge_map`: the Sobel gradient magnitude of the image's grey values, independent of the model. It looks
  like an explanation (it outlines the shape) but passes no model-dependent test: a randomisation test
  must call it identical on the trained and the randomised network.
"""
from functools import partial

import numpy as np
from scipy.ndimage import sobel

SILENT = ("smoothgrad", "ig")          # methods with a progress bar of their own, turned off inside metrics


def explainer(method, options=None):
    """(f(model, x, target) -> attributions, name or None) for a name in mx.METHODS or a callable.
    options: keyword arguments for the method (SmoothGrad's and IG's own progress bars are off)."""
    from ..methods import METHODS
    options = dict(options or {})
    if callable(method):
        return partial(method, **options), None
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)} or a callable "
                         "f(model, x, target)")
    if method in SILENT:
        options.setdefault("progress", False)
    return partial(METHODS[method], **options), method


def random_map(model, x, target, seed=0):
    """(N, H, W) uniform noise in [0, 1): the chance control (model and target are ignored)."""
    N, _, H, W = x.shape
    return np.random.default_rng(seed).random((N, H, W)).astype(x.dtype)


def edge_map(model, x, target):
    """(N, H, W) Sobel gradient magnitude of the channel mean of x (model and target are ignored):
    |G| = sqrt((S_x * g)^2 + (S_y * g)^2), g the grey image, S the 3x3 Sobel kernels."""
    grey = x.mean(axis=1)
    gy = sobel(grey, axis=1, mode="nearest")
    gx = sobel(grey, axis=2, mode="nearest")
    return np.hypot(gx, gy).astype(x.dtype)


CONTROLS = {"random": random_map, "edges": edge_map}
