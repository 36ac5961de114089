"""The gradient estimators of SHAP values with a distribution of baselines (Lundberg & Lee 2017, section 4
and the shap package's GradientExplainer / DeepExplainer), as Captum computes them.

GradientSHAP: Integrated Gradients in expectation over baselines b ~ B, path points alpha ~ U(0, 1) and
(SmoothGrad-like) input noise eps ~ N(0, stdev^2):

    A(x) = E_{b, alpha, eps} [ (x~ - b) * dF(b + alpha (x~ - b)) / dx ],      x~ = x + eps

estimated with n samples, each with its own baseline, alpha and noise. With stdev = 0 and one baseline
its expectation is IG against that baseline; with several, the mean of their IGs, so the expected
attributions sum to F(x) - mean_b F(b) (completeness against the mean baseline).

DeepLiftShap: the same average with DeepLIFT in place of IG, exactly (no sampling):

    A(x) = 1/B sum_b DeepLIFT(x; b),     sum(A) = F(x) - 1/B sum_b F(b) on ReLU / max-pool networks.
"""
import numpy as np

from ..backend import array_module, to_device
from ..baselines import make_baseline
from ..validate import check_images, check_positive
from ._common import input_gradient, prepare, returns_like_input, sample_chunks
from .relevance import deeplift


@returns_like_input
def gradient_shap(model, x, target, baselines=None, n=50, stdev=0.0, seed=0, batch_size=None, progress=True):
    """GradientSHAP attributions (N, C, H, W): the mean over n samples of (x~ - b) * grad F(b + alpha (x~ - b)).

    baselines: (B, C, H, W), the distribution each sample draws its baseline from (uniformly), or the name
    of one picture ("black", "white", "gray", "uniform", "zeros" = 0 in the normalised input space);
    None: `background(x, model.spec)`, the black picture and 7 of uniform noise. stdev: standard deviation of
    the Gaussian noise added to x (in input units, as Captum's `stdevs`). The explained score is the target's
    logit (target=None: the sum of all logits). batch_size: images per pass (None: all n samples at once).
    Draws come from `seed` and do not depend on batch_size."""
    x, targets = prepare(model, x, target)
    n = check_positive(n, "n")
    if not stdev >= 0:
        raise ValueError(f"stdev must be >= 0, got {stdev}")
    baselines = check_baselines(baselines, x, model.spec, at_least=1)
    xp, rng, N = array_module(x), np.random.default_rng(seed), x.shape[0]
    pick = xp.asarray(rng.integers(len(baselines), size=(n, N)))            # which baseline each sample uses
    alpha = xp.asarray(rng.random((n, N)), dtype=x.dtype)                   # where on the path from b to x~
    noise_rng = np.random.default_rng([seed, 1])             # the noise stream, drawn chunk by chunk
    total = xp.zeros_like(x)
    for chunk in sample_chunks(n, N, batch_size, "gradient shap", progress):
        k = chunk.stop - chunk.start
        noisy = x[None]                                                              # x~ = x + eps
        if stdev > 0:
            noisy = noisy + to_device((noise_rng.standard_normal((k, *x.shape)) * stdev).astype(x.dtype), like=x)
        b = baselines[pick[chunk]]                                                   # (k, N, C, H, W)
        points = b + alpha[chunk][:, :, None, None, None] * (noisy - b)
        grads = input_gradient(model, points.reshape(k * N, *x.shape[1:]),
                               None if targets is None else np.tile(targets, k))[0]
        total += ((noisy - b) * grads.reshape(k, *x.shape)).sum(axis=0)
    return total / n


@returns_like_input
def deeplift_shap(model, x, target, baselines=None, batch_size=None, progress=True, return_delta=False):
    """DeepLiftShap attributions (N, C, H, W): DeepLIFT-Rescale (mx.deeplift) against each of the B >= 2
    baselines (B, C, H, W), averaged (Captum's DeepLiftShap); baselines=None: `background(x, model.spec)`.
    With return_delta also delta (N,) = sum(A) - (F(x) - mean_b F(b)), zero up to rounding on ReLU / max-pool networks.
    The explained score is the target's logit (target=None: the sum of all logits). batch_size: images
    per DeepLIFT pass, counting each (image, baseline) pair once (None: all B * N pairs at once)."""
    x, targets = prepare(model, x, target)
    baselines = check_baselines(baselines, x, model.spec, at_least=2)
    xp, N, B = array_module(x), x.shape[0], len(baselines)
    total, delta = xp.zeros_like(x), xp.zeros(N, dtype=x.dtype)
    for chunk in sample_chunks(B, N, batch_size, "deeplift shap", progress):
        k = chunk.stop - chunk.start
        pairs = xp.broadcast_to(x[None], (k, *x.shape)).reshape(k * N, *x.shape[1:])   # x_i against b_j
        references = xp.repeat(baselines[chunk], N, axis=0)
        a, d = deeplift(model, pairs, None if targets is None else np.tile(targets, k), baseline=references,
                        return_delta=True)
        total += a.reshape(k, *x.shape).sum(axis=0)
        delta += d.reshape(k, N).sum(axis=0)
    return (total / B, delta / B) if return_delta else total / B


def check_baselines(baselines, x, spec, at_least):
    """baselines (B, C, H, W) with B >= at_least matching x's (C, H, W), in x's dtype; a name from
    minixai.baselines gives B = 1, None the default `background`."""
    if baselines is None:
        if spec is None:
            raise ValueError("the default baselines are pictures and need the model's input spec; this model "
                             "has none: pass baselines (B, C, H, W)")
        baselines = background(x, spec)
    if isinstance(baselines, str):
        if baselines == "blur":
            raise ValueError("the 'blur' baseline is one per image; pass baselines as an array (B, C, H, W)")
        baselines = make_baseline(baselines, x[:1], spec)
    if not hasattr(baselines, "shape") or baselines.ndim != 4:
        raise ValueError(f"baselines must be an array (B, C, H, W) of B reference images, got "
                         f"{getattr(baselines, 'shape', type(baselines).__name__)}")
    baselines = check_images(to_device(baselines, like=x), name="baselines").astype(x.dtype, copy=False)
    if baselines.shape[1:] != x.shape[1:]:
        raise ValueError(f"baselines have shape {baselines.shape[1:]} per image, the inputs {x.shape[1:]}")
    if len(baselines) < at_least:
        raise ValueError(f"needs at least {at_least} baselines (B, C, H, W), got {len(baselines)}"
                         + ("; with one baseline use mx.deeplift" if at_least == 2 else ""))
    return baselines


def background(x, spec, count=8, seed=0):
    """A default baseline distribution (count, C, H, W) for GradientSHAP and DeepLiftShap when no data set is
    at hand: the black picture and count - 1 pictures of uniform noise in pixel space (seeded), normalised
    with the model's spec."""
    count = check_positive(count, "count")
    one = x[:1]
    pictures = [make_baseline("black", one, spec)]
    pictures += [make_baseline("uniform", one, spec, seed=seed + k) for k in range(count - 1)]
    return array_module(x).concatenate(pictures)
