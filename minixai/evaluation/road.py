"""ROAD: RemOve And Debias (Rong et al. 2022, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", Sec. 4).

Removing pixels by setting them to black leaks information: the shape of the removed region tells the
model where the evidence was. ROAD fills each removed pixel instead with its noisy linear imputation,
the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct, 1/12 for the 4 diagonal ones; only
neighbours inside the image count, their weights renormalised), where neighbours that were removed too
are unknowns of the same linear system:

    sum_j w_ij v_j - (sum_j w_ij) v_i = 0    for every removed pixel i (j: its neighbours in the image),

solved for every channel at once (sparse LU), then v_i + noise * N(0, 1) in every channel.

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
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve

from ..methods._common import prepare
from .faithfulness import Curve
from .maps import ORDERS, check_attributions, pixel_map, pixel_ranks
from .perturbed import perturbed_logits, target_scores

PERCENTAGES = tuple(range(10, 100, 10))
# (row offset, column offset) -> weight of that neighbour
NEIGHBOURS = {(0, 1): 1 / 6, (0, -1): 1 / 6, (1, 0): 1 / 6, (-1, 0): 1 / 6,
              (1, 1): 1 / 12, (1, -1): 1 / 12, (-1, 1): 1 / 12, (-1, -1): 1 / 12}


@dataclass(frozen=True)
class RoadCurve(Curve):
    """curve (N, P): the target's softmax probability after removing each percentage; correct (N, P): the
    model still predicts the target; fractions (P,): percentages / 100."""
    correct: np.ndarray = None


def road(model, x, target, attributions, percentages=PERCENTAGES, order="morf", noise=0.01, method=None,
         seed=0, batch_size=64, progress=True):
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


def noisy_linear_imputation(image, removed, noise=0.0, rng=None):
    """image (C, H, W) with the pixels where removed (H, W) is True replaced by their linear imputation
    (the module docstring's system) plus noise * N(0, 1) per value (rng: a numpy Generator)."""
    C, H, W = image.shape
    unknown = np.flatnonzero(removed)                    # flat pixel ids of the unknowns v_i
    out = image.copy()
    if len(unknown) == 0:
        return out
    A, b = imputation_system(image.reshape(C, H * W), unknown, H, W)
    values = spsolve(A, b).reshape(len(unknown), C)
    if noise:
        values = values + noise * rng.standard_normal(values.shape)
    out.reshape(C, H * W)[:, unknown] = values.T
    return out


def imputation_system(flat, unknown, H, W):
    """The sparse system A v = b of the imputation: flat (C, H*W) image, unknown (U,) flat pixel ids.
    Row i: (sum_j w_ij) v_i - sum_{j unknown} w_ij v_j = sum_{j known} w_ij x_j."""
    U = len(unknown)
    variable = np.full(H * W, -1)
    variable[unknown] = np.arange(U)                     # pixel id -> index of its unknown (-1: known)
    r, c = np.divmod(unknown, W)
    diagonal = np.zeros(U)
    b = np.zeros((U, flat.shape[0]))
    rows, cols, weights = [np.arange(U)], [np.arange(U)], []
    for (dr, dc), w in NEIGHBOURS.items():
        inside = (0 <= r + dr) & (r + dr < H) & (0 <= c + dc) & (c + dc < W)
        i = np.flatnonzero(inside)                       # unknowns that have this neighbour
        j = (r[inside] + dr) * W + (c[inside] + dc)      # the neighbour's pixel id
        diagonal[i] += w
        known = variable[j] < 0
        b[i[known]] += w * flat[:, j[known]].T           # known neighbours go to the right-hand side
        rows.append(i[~known])
        cols.append(variable[j[~known]])
        weights.append(np.full((~known).sum(), -w))
    A = csc_matrix((np.concatenate([diagonal, *weights]), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(U, U))
    return A, b


def _check_percentages(percentages):
    p = np.asarray(percentages, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or not ((p >= 0) & (p < 100)).all():
        raise ValueError(f"percentages must be a non-empty sequence of numbers in [0, 100), got {percentages!r}")
    return p
