"""Infidelity and max-sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations").

- infidelity (Def. 2.1): how well the attribution a predicts what a perturbation I does to the model,
      INFD(a, f, x) = E_I [ (I . a - (f(x) - f(x - I)))^2 ],
  f the target's logit, I . a = sum over every input value. Lower: more faithful. Estimated by the mean
  over n perturbations, all through the engine in batches. With normalize=True the attribution is first
  scaled by the best factor beta = E[(I . a) df] / E[(I . a)^2] (Yeh et al., Sec. 2.3; Captum's normalize),
  so that the score does not depend on the map's units.
- max-sensitivity (Def. 3.1): how much the explanation moves when the input moves a little,
      SENS_max(Phi, f, x, r) = max_{||d||_inf <= r} || Phi(f, x + d) - Phi(f, x) ||_2,
  estimated by the maximum over n draws d ~ U[-r, r]^d. relative=True divides by ||Phi(f, x)||_2.

Compared with Quantus 0.6 (tests/test_evaluation_quantus.py checks equality on the same perturbations):
- Quantus's Infidelity does not draw random perturbations: it replaces patch x patch squares with the
  image's minimum in raster order, each on top of the ones before (`patch_perturbations` builds that set),
  for n_perturb_samples identical repetitions; it scores logits (softmax=False) and does not normalise.
- Quantus's MaxSensitivity draws d ~ U[-0.2, 0.2] from NumPy's global generator and divides by
  ||Phi(f, x)||_2 by default (relative=True here); Yeh's definition is relative=False.
"""
import numpy as np
from tqdm.auto import tqdm

from ..methods._common import prepare
from ..validate import check_positive
from .explainers import explainer
from .maps import check_attributions
from .perturbed import perturbed_logits, reference, target_scores

PERTURBATIONS = ("gaussian",)


def infidelity(model, x, target, attributions, perturbation="gaussian", n=50, sigma=0.1, normalize=False,
               seed=0, batch_size=32, progress=True):
    """(N,) infidelity of attributions (shaped like x, or (N, H, W): one value for every channel).

    perturbation: "gaussian", I ~ N(0, sigma^2) for every input value (drawn from `seed`), or an array of
    n perturbations (n, N, C, H, W) (e.g. `patch_perturbations(x)`). batch_size: images per forward pass."""
    x, targets = prepare(model, x, target)
    a = check_attributions(attributions, x)
    a = a[:, None] if a.ndim == 3 else a
    draw, n = _perturbations(perturbation, x, n, sigma, seed)
    products = np.empty((len(x), n))                                     # I . a per image and draw

    def build(i, k):
        delta = np.stack([draw(image, sample) for image, sample in zip(i, k)])     # the perturbations I
        products[i, k] = (delta * a[i]).sum(axis=(1, 2, 3))
        return x[i] - delta

    f_x = target_scores(model.record(x).output[:, None], targets, "logit")           # (N, 1)
    f_perturbed = target_scores(perturbed_logits(model, build, len(x), n, batch_size, progress, "infidelity"),
                                targets, "logit")
    drop = f_x - f_perturbed                                                          # f(x) - f(x - I)
    if normalize:
        beta = (products * drop).mean(axis=1, keepdims=True) / (products ** 2).mean(axis=1, keepdims=True)
        products = beta * products
    return ((products - drop) ** 2).mean(axis=1)


def patch_perturbations(x, patch=4, baseline="minimum", spec=None):
    """(K, N, C, H, W) the perturbations I = x - x_k of Quantus's Infidelity: x_k has the first k squares of
    patch x patch pixels (raster order, K = (H / patch) (W / patch)) set to the baseline in every channel.
    H and W must be multiples of patch."""
    H, W = x.shape[2:]
    patch = check_positive(patch, "patch")
    if H % patch or W % patch:
        raise ValueError(f"patch {patch} must divide the image size {H}x{W}")
    ref = reference(baseline, x, spec)
    out, current = [], x.copy()
    for r in range(0, H, patch):
        for c in range(0, W, patch):
            current[:, :, r:r + patch, c:c + patch] = ref[:, :, r:r + patch, c:c + patch]
            out.append(x - current)
    return np.stack(out)


def max_sensitivity(model, x, target, method, radius=0.2, n=10, relative=True, options=None, seed=0,
                    batch_size=32, progress=True):
    """(N,) max-sensitivity of `method` (a name of mx.METHODS or f(model, x, target)) at x (N, C, H, W).

    radius: r of the L-infinity ball (in the model's input units); n: draws d ~ U[-r, r]^d, the k-th for
    all images at once (`sensitivity_noise`); options: keyword arguments of the method; batch_size: images
    per call of the method (None: all n * N at once)."""
    x, targets = prepare(model, x, target)
    n = check_positive(n, "n")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    explain, _ = explainer(method, options)
    a = np.asarray(explain(model, x, targets)).reshape(len(x), -1)
    worst = np.zeros(len(x))
    total = n * len(x)
    size = total if batch_size is None else check_positive(batch_size, "batch_size")
    for start in tqdm(range(0, total, size), desc="max-sensitivity", disable=not progress or size >= total):
        k, i = np.divmod(np.arange(start, min(start + size, total)), len(x))          # draw k, image i
        noise = {d: sensitivity_noise(x, radius, seed, d) for d in np.unique(k)}
        moved = np.stack([x[j] + noise[d][j] for d, j in zip(k, i)])
        a_moved = np.asarray(explain(model, moved, targets[i])).reshape(len(i), -1)
        np.maximum.at(worst, i, np.linalg.norm(a_moved - a[i], axis=1))            # ||Phi(x + d) - Phi(x)||
    return worst / np.linalg.norm(a, axis=1) if relative else worst


def sensitivity_noise(x, radius, seed, k):
    """The k-th draw d ~ U[-radius, radius] for every value of x (N, C, H, W): its own generator per draw,
    so any batching gives the same draws."""
    return np.random.default_rng([seed, k]).uniform(-radius, radius, size=x.shape).astype(x.dtype)


def _perturbations(perturbation, x, n, sigma, seed):
    """(draw(image, k) -> perturbation I of that image (C, H, W), number of perturbations)."""
    if isinstance(perturbation, str):
        if perturbation not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {perturbation!r}; valid: {', '.join(PERTURBATIONS)} or "
                             "an array (n, N, C, H, W)")
        n = check_positive(n, "n")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")

        def gaussian(image, k):                    # one generator per (image, draw): any batching, same I
            rng = np.random.default_rng([seed, image, k])
            return (sigma * rng.standard_normal(x.shape[1:])).astype(x.dtype)
        return gaussian, n
    given = np.asarray(perturbation)
    if given.ndim != 5 or given.shape[1:] != x.shape:
        raise ValueError(f"perturbation array must have shape (n, {', '.join(map(str, x.shape))}), "
                         f"got {given.shape}")

    def from_array(image, k):
        return given[k, image]
    return from_array, len(given)
