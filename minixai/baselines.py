"""Reference inputs x' for Integrated Gradients and DeepLIFT.

Named baselines are pictures in pixel space, mapped through the model's normalisation, so "black" is
black on screen: x' = (0 - mean) / std. "zeros" is the zero tensor in input space (Captum's default).
"""
import numpy as np
from scipy.ndimage import gaussian_filter

NAMES = ("black", "white", "gray", "zeros", "blur", "uniform")


def make_baseline(baseline, x, spec=None, seed=0, blur_sigma=5.0):
    """The baseline for inputs x (N, C, H, W): a name from NAMES or an array broadcastable to x."""
    if isinstance(baseline, str):
        if baseline not in NAMES:
            raise ValueError(f"unknown baseline {baseline!r}; valid: {', '.join(NAMES)} or an array")
        if baseline == "zeros":
            return np.zeros_like(x)
        if baseline == "blur":
            return gaussian_filter(x, sigma=(0, 0, blur_sigma, blur_sigma)).astype(x.dtype)
        if spec is None:
            raise ValueError(f"baseline {baseline!r} is defined in pixel space and needs the model's input spec; "
                             "this model has none (pass baseline='zeros' or an array)")
        if baseline == "uniform":
            pixels = np.random.default_rng(seed).uniform(0, 1, size=x.shape)
        else:
            pixels = np.full(x.shape, {"black": 0.0, "white": 1.0, "gray": 0.5}[baseline])
        return spec.normalize(pixels.astype(x.dtype))
    baseline = np.asarray(baseline)
    try:
        reference = np.ascontiguousarray(np.broadcast_to(baseline, x.shape), dtype=x.dtype)
    except ValueError:
        raise ValueError(f"baseline of shape {baseline.shape} does not fit the input of shape {x.shape}") from None
    if not np.isfinite(reference).all():
        raise ValueError("baseline contains NaN or infinite values")
    return reference
