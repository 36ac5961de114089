"""LIME: Local Interpretable Model-agnostic Explanations (Ribeiro, Singh & Guestrin 2016, eq. 1-2).

A linear model g(z) = c_0 + sum_k c_k z_k over the K segments (z_k = 1: segment k shows the image, 0: the
baseline) is fitted to the network's score near the image:

    xi(x) = argmin_g  L(f, g, pi_x) + Omega(g)                                        (eq. 1)
    L     = sum_z pi_x(z) * (f(z) - g(z))^2,      pi_x(z) = exp(-D(z)^2 / sigma^2)    (eq. 2)

D(z) is the cosine distance between z and the all-ones coalition (the image itself), 1 - sqrt(|z| / K), as
the lime package measures it for images. Coalitions are drawn as in the paper: their size uniform in
1..K, then which segments uniformly; the first one is the image itself. Here Omega = 0: the weighted least
squares is solved exactly (the paper's K-Lasso feature selection is not done; the lime package fits
Ridge(alpha=1) on probabilities, Captum's Lime fits Lasso(alpha=0.01), so their coefficients shrink).
"""
import numpy as np

from ..backend import to_device
from ..baselines import make_baseline
from ..validate import check_positive
from ._common import prepare, returns_like_input
from ._perturb import DEFAULT_BATCH, chunks, coalition_scores, progress_bar, spread_over_segments
from .segments import resolve_segments


@returns_like_input
def lime(model, x, target, segments=None, n=1000, kernel_width=0.25, seed=0, baseline="zeros",
         batch_size=DEFAULT_BATCH, progress=True, return_values=False):
    """LIME attributions (N, C, H, W): the coefficient c_k of each segment spread evenly over its C * |S_k|
    entries (so a segment's entries sum to c_k); with return_values also the list of c (K_i,) per image.

    The explained score f is the target's logit (not a probability, unlike the lime package; target=None:
    the sum of all logits). segments: (N, H, W) or (H, W) ids 0..K-1 (default: `mx.segments(x, 50)` with
    the model's spec). n: coalitions, i.e. forward passes per image. kernel_width: sigma of pi_x.
    baseline: what an absent segment shows: "zeros" (0 in the model's normalised input space, as elsewhere
    in minixai), "black", "blur", ... or an array. batch_size: images per forward pass."""
    x, targets = prepare(model, x, target)
    n = check_positive(n, "n")
    if not kernel_width > 0:
        raise ValueError(f"kernel_width must be > 0, got {kernel_width}")
    reference = make_baseline(baseline, x, model.spec, seed)
    segments = resolve_segments(segments, x, model.spec)
    rng = np.random.default_rng(seed)
    bar = progress_bar(x.shape[0] * len(chunks(n, batch_size)), "lime", progress)
    attributions, values = np.empty(x.shape, dtype=x.dtype), []           # on the host, with the scores
    for i in range(x.shape[0]):
        K = int(segments[i].max()) + 1
        z = sample_coalitions(rng, n, K)
        f = coalition_scores(model, x[i], reference[i], segments[i], z, None if targets is None else targets[i],
                             batch_size, bar)
        values.append(weighted_linear_fit(z, f, lime_kernel(z, kernel_width))[1])
        attributions[i] = spread_over_segments(values[-1], segments[i], x.shape[1], x.dtype)
    bar.close()
    attributions = to_device(attributions, like=x)
    return (attributions, values) if return_values else attributions


def sample_coalitions(rng, n, K):
    """n coalitions (n, K) of 0/1: the image itself (all ones), then n - 1 with a size drawn uniformly
    from 1..K and the segments drawn uniformly without replacement."""
    z = np.zeros((n, K), dtype=np.int8)
    z[0] = 1
    for row, size in zip(z[1:], rng.integers(1, K + 1, size=n - 1)):
        row[rng.choice(K, size=size, replace=False)] = 1
    return z


def lime_kernel(z, kernel_width):
    """pi_x(z) = exp(-D(z)^2 / sigma^2), D(z) = 1 - cos(z, 1) = 1 - sqrt(|z| / K) (eq. 2)."""
    distance = 1 - np.sqrt(z.sum(axis=1) / z.shape[1])
    return np.exp(-distance ** 2 / kernel_width ** 2)


def weighted_linear_fit(z, f, weights):
    """(c_0, c) minimising sum_j w_j (f_j - c_0 - z_j . c)^2 (eq. 2 with Omega = 0): least squares on the
    rows scaled by sqrt(w_j). When the coalitions do not determine c (n too small), the least-norm c."""
    design = np.hstack([np.ones((len(z), 1)), z]) * np.sqrt(weights)[:, None]
    coef = np.linalg.lstsq(design, f * np.sqrt(weights), rcond=None)[0]
    return coef[0], coef[1:]
