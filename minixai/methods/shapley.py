"""KernelSHAP (Lundberg & Lee 2017, Theorem 2): Shapley values of the segments by weighted linear regression.

The players are the K segments; a coalition z in {0, 1}^K shows the image in its segments and the baseline
elsewhere, and is worth v(z) = F(x~(z)). The Shapley values phi solve

    min_phi  sum_z pi(z) * (v(z) - v(0) - z . phi)^2     subject to  sum_k phi_k = v(1) - v(0)
    pi(z) = (K - 1) / (C(K, |z|) * |z| * (K - |z|))     (the Shapley kernel; infinite for |z| = 0 and K,
                                                          which is the constraint)

Over all 2^K coalitions the solution is exactly the Shapley values
    phi_k = sum_{S not containing k} |S|! (K - |S| - 1)! / K! * (v(S + k) - v(S)),
so with K <= 12 all coalitions are enumerated (exact mode). Otherwise n coalitions are sampled with the
kernel as their distribution (size k with probability proportional to (K - 1) / (k (K - k)), then the
segments uniformly) and the least squares, with equal weights, keeps the constraint exactly (efficiency).
"""
import numpy as np

from ..backend import to_device
from ..baselines import make_baseline
from ..validate import check_positive
from ._common import prepare, returns_like_input
from ._perturb import DEFAULT_BATCH, chunks, coalition_scores, progress_bar, spread_over_segments
from .segments import resolve_segments

MAX_EXACT = 12          # 2^12 = 4096 forward passes per image


@returns_like_input
def kernel_shap(model, x, target, segments=None, n=None, baseline="zeros", seed=0, batch_size=DEFAULT_BATCH,
                progress=True, return_values=False):
    """KernelSHAP attributions (N, C, H, W): each segment's Shapley value phi_k spread evenly over its
    C * |S_k| entries, so the attributions of a segment sum to phi_k and all of them to F(x) - F(x')
    (efficiency). With return_values also the list of phi (K_i,) per image.

    The explained score F is the target's logit (not a probability; target=None: the sum of all logits).
    segments: (N, H, W) or (H, W) ids 0..K-1 (default: SLIC superpixels with the model's spec, at most 12
    per image for n=None (`coarse_segments`), about 50 otherwise (`mx.segments(x, 50)`)).
    n=None: exact Shapley values from all 2^K coalitions (needs K <= 12); n: that many coalitions sampled
    with the Shapley kernel, plus the empty and the full one (n + 2 forward passes per image).
    baseline: what an absent segment shows: "zeros" (0 in the model's normalised input space, as elsewhere
    in minixai), "black", "blur", ... or an array. batch_size: images per forward pass."""
    x, targets = prepare(model, x, target)
    n = None if n is None else check_positive(n, "n")
    reference = make_baseline(baseline, x, model.spec, seed)
    segments = resolve_segments(segments, x, model.spec, at_most=MAX_EXACT if n is None else None)
    sizes = [int(s.max()) + 1 for s in segments]
    if n is None and max(sizes) > MAX_EXACT:
        raise ValueError(f"exact KernelSHAP (n=None) enumerates all 2^K coalitions and needs K <= {MAX_EXACT} "
                         f"segments; got K = {max(sizes)}: pass n (coalitions to sample, e.g. n=1000) or fewer "
                         "segments (mx.segments(x, n=...))")
    rng = np.random.default_rng(seed)
    passes = sum(len(chunks(2 ** K if n is None else n + 2, batch_size)) for K in sizes)
    bar = progress_bar(passes, "kernel shap", progress)
    attributions, values = np.empty(x.shape, dtype=x.dtype), []           # on the host, with the scores
    for i, K in enumerate(sizes):
        z, weights = all_coalitions(K) if n is None else sampled_coalitions(rng, n, K)
        v = coalition_scores(model, x[i], reference[i], segments[i], z, None if targets is None else targets[i],
                             batch_size, bar)
        values.append(constrained_fit(z[2:], v[2:] - v[0], weights, v[1] - v[0]))
        attributions[i] = spread_over_segments(values[-1], segments[i], x.shape[1], x.dtype)
    bar.close()
    attributions = to_device(attributions, like=x)
    return (attributions, values) if return_values else attributions


def shapley_kernel(K, size):
    """pi = (K - 1) / (C(K, |z|) |z| (K - |z|)) for coalition sizes 0 < |z| < K."""
    from scipy.special import comb
    size = np.asarray(size)
    return (K - 1) / (comb(K, size) * size * (K - size))


def all_coalitions(K):
    """Every coalition of K players, the empty and the full one first: z (2^K, K) and the kernel weights
    of the other 2^K - 2."""
    bits = np.arange(2 ** K)[:, None] >> np.arange(K) & 1
    z = np.concatenate([bits[[0, -1]], bits[1:-1]]).astype(np.int8)
    return z, shapley_kernel(K, z[2:].sum(axis=1))


def sampled_coalitions(rng, n, K):
    """The empty and the full coalition, then n drawn from the Shapley kernel: a size k in 1..K-1 with
    probability proportional to (K - 1) / (k (K - k)) (the kernel summed over the C(K, k) coalitions of that
    size), then k segments uniformly. Returns z (n + 2, K) and equal weights for the n drawn ones."""
    z = np.zeros((n + 2, K), dtype=np.int8)
    z[1] = 1
    if K > 1:
        k = np.arange(1, K)
        size_probability = (K - 1) / (k * (K - k))
        for row, size in zip(z[2:], rng.choice(k, size=n, p=size_probability / size_probability.sum())):
            row[rng.choice(K, size=size, replace=False)] = 1
    return z, np.ones(n)


def constrained_fit(z, y, weights, total):
    """phi (K,) minimising sum_j w_j (y_j - z_j . phi)^2 subject to sum(phi) = total. The constraint
    eliminates phi_K = total - sum_{k<K} phi_k, which leaves an unconstrained least squares in K - 1
    unknowns: y_j - z_jK total = sum_{k<K} (z_jk - z_jK) phi_k."""
    if z.shape[1] == 1:
        return np.array([total])                       # one player gets everything
    design = (z[:, :-1] - z[:, -1:]) * np.sqrt(weights)[:, None]
    head = np.linalg.lstsq(design, (y - z[:, -1] * total) * np.sqrt(weights), rcond=None)[0]
    return np.append(head, total - head.sum())
