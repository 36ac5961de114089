"""How alike are two explanations? The three similarities of Adebayo et al. 2018 (Sec. 3), per image.

All take maps a, b of shape (N, H, W) and return (N,) values, 1 for identical maps:
- spearman: Spearman's rank correlation of the pixel values (Pearson's r of their ranks, ties averaged);
- ssim: the structural similarity index of Wang et al. 2004 (eq. 13), 7x7 uniform windows, K1 = 0.01,
  K2 = 0.03, data range = max - min over both maps (Quantus's choice), averaged over the windows that fit;
- hog: Pearson's r of the histograms of oriented gradients (Dalal & Triggs 2005) of the two maps.
A constant map has no ranks or structure to compare: its Spearman and HOG similarity are NaN.
"""
from functools import partial

import numpy as np
from scipy.ndimage import uniform_filter
from scipy.stats import rankdata

SIMILARITIES = ("spearman", "ssim", "hog")


def similarity(a, b, kind="spearman"):
    """(N,) similarity `kind` of the maps a and b (N, H, W)."""
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; valid: {', '.join(SIMILARITIES)}")
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"maps must have the same shape (N, H, W), got {a.shape} and {b.shape}")
    return {"spearman": spearman, "ssim": ssim, "hog": hog_similarity}[kind](a, b)


def pearson(u, v):
    """(N,) Pearson's r of the rows of u and v (N, D); NaN where a row is constant."""
    u = u - u.mean(axis=1, keepdims=True)
    v = v - v.mean(axis=1, keepdims=True)
    norm = np.sqrt((u * u).sum(axis=1) * (v * v).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (u * v).sum(axis=1) / norm, np.nan)


def spearman(a, b):
    """(N,) Spearman's rho: Pearson's r of the pixel ranks (ties get their average rank)."""
    flat = [rankdata(m.reshape(len(m), -1), axis=1) for m in (a, b)]
    return pearson(*flat)


def ssim(a, b, window=7, k1=0.01, k2=0.03):
    """(N,) mean structural similarity (Wang et al. 2004, eq. 13) over the windows inside the maps:
    SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2)), C_i = (K_i L)^2,
    with window means mu and unbiased (co)variances s; L = max - min over both maps."""
    out = np.empty(len(a))
    pad, n = (window - 1) // 2, window * window
    for i, (u, v) in enumerate(zip(a.astype(np.float64), b.astype(np.float64))):
        L = max(u.max(), v.max()) - min(u.min(), v.min())
        c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
        mean = partial(uniform_filter, size=window)             # the mean over each window
        mu_u, mu_v = mean(u), mean(v)
        unbiased = n / (n - 1)                                  # sample (co)variance in each window
        var_u = unbiased * (mean(u * u) - mu_u * mu_u)
        var_v = unbiased * (mean(v * v) - mu_v * mu_v)
        cov = unbiased * (mean(u * v) - mu_u * mu_v)
        s = ((2 * mu_u * mu_v + c1) * (2 * cov + c2)) / ((mu_u ** 2 + mu_v ** 2 + c1) * (var_u + var_v + c2))
        out[i] = s[pad:s.shape[0] - pad, pad:s.shape[1] - pad].mean()
    return out


def hog(m, orientations=9, cell=8, block=3):
    """(N, D) HOG descriptors of maps m (N, H, W) (Dalal & Triggs 2005, as scikit-image's `hog` with its
    defaults): central-difference gradients; per cell x cell pixels, the mean gradient magnitude in each
    of `orientations` unsigned orientation bins over [0, 180) degrees; blocks of block x block cells, each
    normalised with L2-Hys (L2 norm, clip at 0.2, L2 norm again)."""
    m = m.astype(np.float64)
    g_row, g_col = np.zeros_like(m), np.zeros_like(m)
    g_row[:, 1:-1] = m[:, 2:] - m[:, :-2]                        # central differences, 0 at the border
    g_col[:, :, 1:-1] = m[:, :, 2:] - m[:, :, :-2]
    magnitude = np.hypot(g_row, g_col)
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    N, H, W = m.shape
    rows, cols = H // cell, W // cell
    width = 180 / orientations
    cells = np.empty((N, rows, cols, orientations))
    for k in range(orientations):                              # bin k: angles in [k width, (k + 1) width)
        in_bin = (angle >= k * width) & (angle < (k + 1) * width)
        part = (magnitude * in_bin)[:, :rows * cell, :cols * cell]
        cells[..., k] = part.reshape(N, rows, cell, cols, cell).mean(axis=(2, 4))
    blocks = [cells[:, r:r + block, c:c + block].reshape(N, -1)
              for r in range(rows - block + 1) for c in range(cols - block + 1)]
    return np.concatenate([_l2_hys(v) for v in blocks], axis=1)


def hog_similarity(a, b):
    """(N,) Pearson's r of the HOG descriptors of a and b."""
    return pearson(hog(a), hog(b))


def _l2_hys(v, eps=1e-5, clip=0.2):
    v = v / np.sqrt((v * v).sum(axis=1, keepdims=True) + eps ** 2)
    v = np.minimum(v, clip)
    return v / np.sqrt((v * v).sum(axis=1, keepdims=True) + eps ** 2)
