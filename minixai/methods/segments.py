"""Superpixels: the interpretable features of LIME and KernelSHAP on images.

SLIC (Achanta et al. 2012, through scikit-image) clusters pixels by colour and position into about n
compact regions. LIME and KernelSHAP then switch whole segments on (the image's pixels) and off (the
baseline's) instead of single pixels.
"""
import numpy as np

from ..backend import to_host
from ..validate import check_images, check_positive


def segments(x, n=50, compactness=10.0, sigma=1.0, spec=None):
    """SLIC superpixels of each image: (N, H, W) int64 segment ids 0..K_i-1 (K_i about n, per image).

    x: (N, C, H, W) model inputs. SLIC works on pixels in [0, 1]: with the model's `spec` the inputs are
    mapped back exactly (spec.denormalize, clipped); without it each channel of each image is stretched to
    [0, 1] by its own minimum and maximum. compactness: colour against position (higher: squarer segments);
    sigma: Gaussian smoothing before clustering, in pixels."""
    from skimage.segmentation import slic
    x = to_host(check_images(x))                          # SLIC runs on the CPU
    n = check_positive(n, "n")
    if compactness <= 0 or sigma < 0:
        raise ValueError(f"compactness must be > 0 and sigma >= 0, got compactness={compactness}, sigma={sigma}")
    pixels = _unit_range(x, spec)
    out = np.empty((x.shape[0], *x.shape[2:]), dtype=np.int64)
    for i, image in enumerate(pixels):
        labels = slic(image.transpose(1, 2, 0), n_segments=n, compactness=compactness, sigma=sigma,
                      start_label=0, channel_axis=-1, convert2lab=x.shape[1] == 3)
        out[i] = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)    # ids 0..K-1, no gaps
    return out


def coarse_segments(x, at_most=12, spec=None):
    """SLIC superpixels with at most `at_most` segments per image (N, H, W): SLIC is asked for `at_most`
    and, for an image where it returns more (it only aims at the number), for one fewer until it fits.
    KernelSHAP's default for exact Shapley values (2^K coalitions)."""
    at_most = check_positive(at_most, "at_most")
    out = segments(x, n=at_most, spec=spec)
    for i in range(len(out)):
        asked = at_most
        while out[i].max() + 1 > at_most:
            asked -= 1
            out[i] = segments(x[i:i + 1], n=asked, spec=spec)[0]
    return out


def check_segments(segments, x):
    """segments (N, H, W) or (H, W) (one map for every image) of non-negative int ids, numbered without
    gaps 0..K-1 per image (as `segments` makes them); returns (N, H, W) int64."""
    segments = np.asarray(segments)
    if segments.dtype.kind not in "iu":
        raise TypeError(f"segments must be integer ids, got dtype {segments.dtype}")
    if segments.shape == x.shape[2:]:
        segments = np.broadcast_to(segments, (x.shape[0], *x.shape[2:]))
    if segments.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"segments must have shape {(x.shape[0], *x.shape[2:])} (N, H, W) or {x.shape[2:]}, "
                         f"got {segments.shape}")
    for i, s in enumerate(segments):
        ids = np.unique(s)
        if ids[0] != 0 or ids[-1] != len(ids) - 1:
            raise ValueError(f"segments of image {i} must be numbered 0..K-1 without gaps, got ids {ids[:10]}...")
    return segments.astype(np.int64)


def _unit_range(x, spec):
    """x (N, C, H, W) as pixels in [0, 1]: the spec's inverse normalisation, or a per-channel stretch."""
    if spec is not None:
        return np.clip(spec.denormalize(x.astype(np.float64)), 0, 1)
    low = x.min(axis=(2, 3), keepdims=True)
    span = x.max(axis=(2, 3), keepdims=True) - low
    return (x - low) / np.where(span > 0, span, 1)


def resolve_segments(segments_or_none, x, spec, at_most=None):
    """The segments a method works with: the given ones checked, or SLIC's (about 50 per image, or at most
    `at_most`), from pixels recovered with the model's spec."""
    if segments_or_none is not None:
        return check_segments(segments_or_none, x)
    return segments(x, n=50, spec=spec) if at_most is None else coarse_segments(x, at_most, spec)
