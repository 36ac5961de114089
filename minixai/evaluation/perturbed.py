"""Scoring many perturbed copies of a batch: the loop every faithfulness metric shares.

A curve metric needs the model's output for K perturbed versions of each of N images (K = steps + 1 for
deletion). `perturbed_logits` builds them chunk by chunk, batch_size images per forward pass, so memory
holds one chunk of perturbed images and its activations, never all N * K of them.
"""
import numpy as np
from tqdm.auto import tqdm

from ..baselines import NAMES, make_baseline
from ..validate import check_positive

BASELINES = (*NAMES, "minimum")
SCORES = ("probability", "logit")


def reference(baseline, x, spec=None, seed=0):
    """The values removed pixels take, shaped like x (N, C, H, W): a baseline of minixai.baselines
    ("black" is black on screen, (0 - mean) / std), "minimum" (each image's smallest value in every channel:
    what Quantus calls "black"), or an array broadcastable to x."""
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; valid: {', '.join(BASELINES)} or an array")
    if isinstance(baseline, str) and baseline == "minimum":
        return np.broadcast_to(x.min(axis=(1, 2, 3), keepdims=True), x.shape).copy()
    return make_baseline(baseline, x, spec, seed)


def perturbed_logits(model, build, n_images, n_points, batch_size=32, progress=True, desc="perturbed inputs"):
    """Logits (N, K, classes) of build(n, k) for every image n < N and point k < K.

    build(n, k): index arrays (B,) -> the B perturbed images (B, C, H, W) of images n at points k.
    batch_size: images per forward pass (None: all N * K in one pass)."""
    total = n_images * n_points
    size = total if batch_size is None else check_positive(batch_size, "batch_size")
    starts = range(0, total, size)
    out = None
    for start in tqdm(starts, desc=desc, disable=not progress or len(starts) < 2):
        n, k = np.divmod(np.arange(start, min(start + size, total)), n_points)   # pair i = (i // K, i % K)
        logits = model.record(build(n, k)).output
        if out is None:
            out = np.empty((total, logits.shape[1]), logits.dtype)
        out[start:start + len(n)] = logits
    return out.reshape(n_images, n_points, -1)


def target_scores(logits, targets, score="probability"):
    """(N, K) the score of each image's target class in logits (N, K, classes): its softmax probability or
    its logit."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    picked = np.take_along_axis(logits, targets[:, None, None], axis=2)[..., 0]
    if score == "logit":
        return picked
    z = logits - logits.max(axis=2, keepdims=True)              # shift for a stable log-sum-exp
    return np.exp(picked - logits.max(axis=2)) / np.exp(z).sum(axis=2)
