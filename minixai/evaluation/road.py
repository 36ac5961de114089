"""ROAD: RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", Sec. 4).

Removing pixels by setting them to black leaks information: the shape of the removed region tells the
model where the evidence was. ROAD fills each removed pixel instead with its noisy linear imputation, the
weighted mean of its neighbours plus Gaussian noise (minixai.evaluation.imputation).

For each percentage p the first int(H W p / 100) pixels of `maps.pixel_order` (most relevant first:
"morf"; least: "lerf") are imputed; the score is the target's softmax probability and whether the model
still predicts the target (Rong et al. report that accuracy over a data set).

Compared with Quantus 0.6's ROAD (tests/test_evaluation_quantus.py checks equality with noise=0): the same
imputation and pixel counts; Quantus draws its noise from NumPy's global generator (here `seed`), returns
only the accuracy averaged over the images of its first batch, divides the map by its maximum first (the
ranking stays) and ranks with an unstable sort. It indexes pixels by the flattened (C, H, W) map, so with a
map shared by three colour channels it fails (IndexError); it runs on one-channel images.
"""
from dataclasses import dataclass

import numpy as np

from ..methods._common import prepare
from .faithfulness import Curve
from .imputation import noisy_linear_imputation
from .maps import ORDERS, check_attributions, pixel_map, pixel_ranks
from .perturbed import perturbed_logits, target_scores

PERCENTAGES = tuple(range(10, 100, 10))


@dataclass(frozen=True)
class RoadCurve(Curve):
    """curve (N, P): the target's softmax probability after removing each percentage; correct (N, P): the
    model still predicts the target; fractions (P,): percentages / 100."""
    correct: np.ndarray = None


def road(model, x, target, attributions, percentages=PERCENTAGES, order="morf", noise=0.01, method=None,
         seed=0, batch_size=32, progress=True):
    """ROAD curves (Rong et al. 2022) for x (N, C, H, W) and attributions shaped like x or (N, H, W).

    percentages: shares of the pixels to impute, each in [0, 100); order: "morf" or "lerf"; noise: standard
    deviation of the Gaussian noise added to the imputed values (in the model's input units); seed: that
    noise's generator. Returns a RoadCurve: .curve and .correct (N, P), .auc over the fractions."""
    x, targets = prepare(model, x, target)
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    fractions = _check_percentages(percentages) / 100
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    ranks = pixel_ranks(pixel_map(check_attributions(attributions, x), method), order)
    N, _, H, W = x.shape
    counts = (H * W * fractions).astype(np.int64)                    # int(H W p / 100), as Quantus
    rng = np.random.default_rng(seed)

    def build(n, k):
        removed = (ranks[n] < counts[k][:, None]).reshape(len(n), H, W)
        return np.stack([noisy_linear_imputation(x[i], m, noise, rng) for i, m in zip(n, removed)])

    logits = perturbed_logits(model, build, N, len(counts), batch_size, progress, f"ROAD ({order})")
    correct = logits.argmax(axis=2) == targets[:, None]
    return RoadCurve(target_scores(logits, targets, "probability"), fractions, correct)


def _check_percentages(percentages):
    p = np.asarray(percentages, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or not ((p >= 0) & (p < 100)).all():
        raise ValueError(f"percentages must be a non-empty sequence of numbers in [0, 100), got {percentages!r}")
    return p
