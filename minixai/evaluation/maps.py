"""From attributions to one value per pixel, and the order in which the metrics visit the pixels.

Every metric here reads a map (N, H, W): the explanation's relevance of each pixel. `pixel_map` makes it:

- a method whose sign means "for / against the class" (gradient x input, IG, LRP, DeepLIFT, occlusion and
  the Shapley-value estimates: `SIGNED`) keeps the positive part of the channel sum, max(sum_k a_k, 0);
- any other 4-D attribution (the gradient methods, whose sign only says which way a pixel would move the
  score, and attributions given without a method name) takes max_k |a_k| (seed 000, Algorithm 1);
- a 3-D map (Grad-CAM and the controls) is one value per pixel already; negative values become 0.

`pixel_order` ranks the pixels with a stable sort on the negated map, argsort(-m, kind="stable"): equal
values keep their flat-index order. (Reversing an ascending sort would reverse the ties as well, and
gradient x input maps are mostly zeros, so the tie order decides many of the removed pixels.)
"""
import numpy as np

SIGNED = ("gxi", "ig", "lrp", "deeplift", "occlusion", "lime", "kernel_shap", "gradient_shap", "deeplift_shap")
ORDERS = ("morf", "lerf")          # most / least relevant first


def check_attributions(a, x):
    """a must be a finite float array shaped like x (N, C, H, W) or like one map per image (N, H, W)."""
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"attributions must be a numpy array, got {type(a).__name__}")
    a = np.asarray(a)
    N, _, H, W = x.shape
    if a.shape != x.shape and a.shape != (N, H, W):
        raise ValueError(f"attributions of shape {a.shape} do not fit x of shape {x.shape}: expected "
                         f"{x.shape} or one map per image {(N, H, W)}")
    if a.dtype.kind != "f":
        raise TypeError(f"attributions must be a float array, got {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError("attributions contain NaN or infinite values")
    return a


def pixel_map(a, method=None):
    """(N, C, H, W) attribution or (N, H, W) map -> (N, H, W) non-negative relevance per pixel (see the
    module docstring). method: the name in mx.METHODS that made `a`, or None."""
    if method is not None and method not in _method_names():
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(_method_names())} or None")
    if a.ndim == 3:
        return np.maximum(a, 0)
    if a.ndim != 4:
        raise ValueError(f"attributions must have shape (N, C, H, W) or (N, H, W), got {a.shape}")
    if method in SIGNED:
        return np.maximum(a.sum(axis=1), 0)
    return np.abs(a).max(axis=1)


def pixel_order(m, order="morf"):
    """(N, H*W) flat pixel indices of the maps m (N, H, W), most relevant first ("morf") or least relevant
    first ("lerf"); ties in flat-index order either way (a stable sort)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    flat = m.reshape(len(m), -1)
    return np.argsort(-flat if order == "morf" else flat, axis=1, kind="stable")


def pixel_ranks(m, order="morf"):
    """(N, H*W) the position of every pixel in `pixel_order` (0: visited first): the inverse permutation."""
    visit = pixel_order(m, order)
    ranks = np.empty_like(visit)
    np.put_along_axis(ranks, visit, np.arange(visit.shape[1])[None], axis=1)
    return ranks


def signed_map(a):
    """(N, H, W): the channel sum of a 4-D attribution, a 3-D map as it is (the sign kept)."""
    return a if a.ndim == 3 else a.sum(axis=1)


def _method_names():
    from ..methods import METHODS
    return list(METHODS)
