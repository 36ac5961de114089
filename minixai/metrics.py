"""How well an explanation localises the object: scores against ground-truth masks.

- pointing game (Zhang et al. 2016): is the single most relevant pixel inside the object's mask?
- relevance mass (Arras et al. 2022): the share of all positive relevance that falls inside the mask.

Maps are reduced to one value per pixel first (`pixel_map`): methods whose sign means "for / against
the class" (gradient x input, IG, LRP, DeepLIFT) keep the positive part of the channel sum; gradient
methods, whose sign only says which way a pixel would move the score, take max_k |a_k| (seed 000,
Algorithm 1); Grad-CAM maps are already one value per pixel.
"""
import numpy as np

SIGNED = ("gxi", "ig", "lrp", "deeplift")


def pixel_map(a, method):
    """(N, C, H, W) attribution or (N, H, W) map -> (N, H, W) non-negative relevance per pixel."""
    if a.ndim == 3:
        return np.maximum(a, 0)
    if method in SIGNED:
        return np.maximum(a.sum(axis=1), 0)
    return np.abs(a).max(axis=1)


def pointing_game(maps, masks):
    """(N,) bool: the arg-max pixel of each map lies in its mask (maps (N, H, W), masks (N, H, W) bool)."""
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    flat = maps.reshape(len(maps), -1)
    hit = np.take_along_axis(masks.reshape(len(masks), -1), flat.argmax(axis=1)[:, None], axis=1)[:, 0]
    return hit & (flat.max(axis=1) > 0)            # an all-zero map points nowhere


def relevance_mass(maps, masks):
    """(N,) share of the positive relevance inside the mask (0 when a map has no positive relevance)."""
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    positive = np.maximum(maps, 0)
    total = positive.sum(axis=(1, 2))
    inside = (positive * masks).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.where(total > 0, total, 1), 0.0)
