"""Reference inputs x' for Integrated Gradients and DeepLIFT.

Named baselines are pictures in pixel space, mapped through the model's normalisation, so "black" is
black on screen: x' = (0 - mean) / std. "zeros" is the zero tensor in input space (Captum's default).
"""
import numpy as np

from .backend import array_module, to_device

NAMES = ("black", "white", "gray", "zeros", "blur", "uniform")


def make_baseline(baseline, x, spec=None, seed=0, blur_sigma=5.0):
    """The baseline for inputs x (N, C, H, W): a name from NAMES or an array broadcastable to x."""
    if isinstance(baseline, str):
        if baseline not in NAMES:
            raise ValueError(f"unknown baseline {baseline!r}; valid: {', '.join(NAMES)} or an array")
        if baseline == "zeros":
            return array_module(x).zeros_like(x)
        if baseline == "blur":
            return gaussian_blur(x, blur_sigma)
        if spec is None:
            raise ValueError(f"baseline {baseline!r} is defined in pixel space and needs the model's input spec; "
                             "this model has none (pass baseline='zeros' or an array)")
        if baseline == "uniform":
            pixels = np.random.default_rng(seed).uniform(0, 1, size=x.shape)
        else:
            pixels = np.full(x.shape, {"black": 0.0, "white": 1.0, "gray": 0.5}[baseline])
        return to_device(spec.normalize(pixels.astype(x.dtype)), like=x)       # made here, copied to x's device
    if baseline is None:
        raise TypeError(f"baseline must be one of {', '.join(NAMES)} or an array, got None")
    if not hasattr(baseline, "shape"):
        baseline = np.asarray(baseline)
    if baseline.dtype.kind not in "biuf":
        raise TypeError(f"baseline must be one of {', '.join(NAMES)} or an array of real numbers, "
                        f"got an array of dtype {baseline.dtype}")
    xp = array_module(x)
    baseline = to_device(baseline if hasattr(baseline, "shape") else np.asarray(baseline), like=x)
    try:
        reference = xp.ascontiguousarray(xp.broadcast_to(baseline, x.shape), dtype=x.dtype)
    except ValueError:
        raise ValueError(f"baseline of shape {baseline.shape} does not fit the input of shape {x.shape}") from None
    if not bool(xp.isfinite(reference).all()):
        raise ValueError("baseline contains NaN or infinite values")
    return reference


def gaussian_blur(x, sigma, truncate=4.0):
    """Each image plane of x (N, C, H, W) blurred with a Gaussian of `sigma` pixels, as
    scipy.ndimage.gaussian_filter(x, (0, 0, sigma, sigma)) computes it (kernel radius int(truncate sigma + 0.5),
    borders mirrored 'd c b a | a b c d'), in x's array module: the same code on the CPU and on a GPU."""
    xp = array_module(x)
    radius = int(truncate * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = taps / taps.sum()
    out = x.astype(np.float64)
    for axis in (2, 3):                                   # separable: rows, then columns
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = xp.pad(out, pad, mode="symmetric")
        size = x.shape[axis]
        out = sum(float(w) * xp.take(padded, xp.arange(k, k + size), axis=axis) for k, w in enumerate(taps))
    return out.astype(x.dtype)
