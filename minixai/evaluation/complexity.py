"""Complexity: is the explanation concentrated on a few pixels, or spread over the image?

Both scores read the pixel map m = |maps.pixel_map(a, method)| of each image as a distribution of relevance.

- sparseness (Chalasani et al. 2020, Sec. 5, after Hurley & Rickard 2009): the Gini index of the sorted
  values c_(1) <= ... <= c_(n),  G = sum_k (2k - n - 1) c_(k) / (n sum_k c_(k)),
  0 for a uniform map, (n - 1) / n for a single relevant pixel. Higher: sparser.
- complexity (Bhatt et al. 2020, Sec. 3.3): the entropy of p_i = c_i / sum_j c_j,  H = -sum_i p_i log p_i
  (0 log 0 = 0), 0 for a single pixel, log n for a uniform map. Lower: simpler.

A map without any relevance (all zeros) has neither: both return NaN for it.

Compared with Quantus 0.6 (tests/test_evaluation_quantus.py): its Sparseness adds 1e-7 to every value
before sorting and its Complexity takes log(p + 1e-12); here the formulas are exact. Both take |a| and
divide a by its maximum over the whole batch first by default (abs=True, normalise=True; the scale changes
neither score, apart from Quantus's 1e-7).
"""
import numpy as np

from .maps import pixel_map


def sparseness(a, method=None):
    """(N,) Gini index of the pixel map of a ((N, C, H, W) or (N, H, W)); method as for maps.pixel_map."""
    c = np.sort(_relevance(a, method), axis=1)                          # c_(1) <= ... <= c_(n)
    n = c.shape[1]
    k = np.arange(1, n + 1, dtype=c.dtype)
    total = c.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, ((2 * k - n - 1) * c).sum(axis=1) / (n * total), np.nan)


def complexity(a, method=None):
    """(N,) entropy of the normalised pixel map of a; method as for maps.pixel_map."""
    c = _relevance(a, method)
    total = c.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = c / total
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0)    # 0 log 0 = 0
    return np.where(total[:, 0] > 0, -terms.sum(axis=1), np.nan)


def _relevance(a, method):
    """(N, H*W) |pixel map| as floats (float64 stays float64)."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        raise TypeError(f"attributions must be a float array, got {a.dtype}")
    m = np.abs(pixel_map(a, method))
    return m.reshape(len(m), -1)
