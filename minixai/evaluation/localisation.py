"""Localisation: does the explanation point at the object? Scores against ground-truth masks.

maps (N, H, W) come from `maps.pixel_map` (non-negative relevance per pixel); masks (N, H, W) are boolean.

- pointing game (Zhang et al. 2016): is the single most relevant pixel inside the mask?
- relevance mass (Arras et al. 2022, eq. 3): the share of all positive relevance that falls inside the mask.
- relevance rank (Arras et al. 2022, eq. 4): with K the mask's size in pixels, the share of the K most
  relevant pixels that lie inside the mask.
- top-k intersection (Theiner et al. 2021): the share of the k most relevant pixels inside the mask.

"Most relevant" ranks with `maps.pixel_order` (a stable sort: ties by flat index).
"""
import numpy as np

from .maps import pixel_order


def pointing_game(maps, masks):
    """(N,) bool: the arg-max pixel of each map lies in its mask (an all-zero map points nowhere)."""
    _check(maps, masks)
    flat = maps.reshape(len(maps), -1)
    hit = np.take_along_axis(masks.reshape(len(masks), -1), flat.argmax(axis=1)[:, None], axis=1)[:, 0]
    return hit & (flat.max(axis=1) > 0)


def relevance_mass(maps, masks):
    """(N,) share of the positive relevance inside the mask (0 when a map has no positive relevance)."""
    _check(maps, masks)
    positive = np.maximum(maps, 0)
    total = positive.sum(axis=(1, 2))
    inside = (positive * masks).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.where(total > 0, total, 1), 0.0)


def relevance_rank(maps, masks):
    """(N,) share of the K most relevant pixels that lie in the mask, K = the mask's size (NaN: empty mask)."""
    _check(maps, masks)
    sizes = masks.reshape(len(masks), -1).sum(axis=1)
    found = np.cumsum(_top_inside(maps, masks), axis=1)       # found[n, j]: mask pixels among the top j + 1
    hits = np.take_along_axis(found, np.maximum(sizes - 1, 0)[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes > 0, hits / sizes, np.nan)


def top_k_intersection(maps, masks, k=100):
    """(N,) share of the k most relevant pixels that lie in the mask."""
    _check(maps, masks)
    n_pixels = maps[0].size
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k <= n_pixels:
        raise ValueError(f"k must be an integer in [1, {n_pixels}] (the number of pixels), got {k!r}")
    return _top_inside(maps, masks)[:, :k].mean(axis=1)


def _top_inside(maps, masks):
    """(N, H*W) bool: is the j-th most relevant pixel inside the mask?"""
    return np.take_along_axis(masks.reshape(len(masks), -1), pixel_order(maps, "morf"), axis=1)


def _check(maps, masks):
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    if maps.ndim != 3:
        raise ValueError(f"maps and masks must have shape (N, H, W), got {maps.shape}")
