"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko 2018, eq. 6 and section 3.2).

The saliency of pixel lambda is the expected score of the target when lambda is visible, estimated with n
random masks M_i:

    S(lambda) = 1 / (E[M] * n) * sum_i f_c(x' + M_i * (x - x')) * M_i(lambda),      E[M] = p

f_c is the target's softmax probability (as in the paper) and x' the baseline (the paper multiplies the image
by the mask: x' = 0). The masks are smooth (section 3.2): a random binary grid of s x s cells, each on with
probability p, is upsampled bilinearly to (s + 1) * C_H x (s + 1) * C_W (cell size C = ceil(H / s)) and
cropped to H x W at a random shift in [0, C_H) x [0, C_W), so that the cell borders fall anywhere.
"""
import math

import numpy as np

from ..backend import to_device
from ..baselines import make_baseline
from ..images import resize_bilinear
from ..validate import check_positive
from ._common import prepare, returns_like_input
from ._perturb import DEFAULT_BATCH, chunks, progress_bar, scores


@returns_like_input
def rise(model, x, target, n=2000, cell=8, p=0.5, seed=0, baseline="zeros", batch_size=DEFAULT_BATCH,
         progress=True):
    """RISE saliency maps (N, H, W): the softmax probability of `target` (required) averaged over n random
    masks, weighted by each mask, divided by p.

    cell: the masks' grid has cell x cell cells (the paper's s; the default 8 gives 8-pixel cells on the
    64 x 64 shapes images, 28-pixel cells at 224 px). p: probability that a cell is visible. baseline: what a
    hidden pixel shows: "zeros" (0 in the model's normalised input space, the paper's x * M), "black",
    "blur", ... or an array. The same n masks (drawn from `seed`) serve every image of the batch.
    batch_size: masked images per forward pass (None: all n at once)."""
    x, targets = prepare(model, x, target)
    if targets is None:
        raise ValueError("rise needs a target class: it weights each mask with the target's softmax probability")
    n, cell = check_positive(n, "n"), check_positive(cell, "cell")
    if not 0 < p < 1:
        raise ValueError(f"p (the probability that a cell is visible) must be in (0, 1), got {p}")
    reference = make_baseline(baseline, x, model.spec, seed)
    grids, shifts = draw_masks(n, cell, p, seed)
    slices = chunks(n, batch_size)
    bar = progress_bar(x.shape[0] * len(slices), "rise", progress)
    saliency = np.zeros((x.shape[0], *x.shape[2:]), dtype=x.dtype)
    for part in slices:
        masks = upsample_masks(grids[part], shifts[part], x.shape[2:]).astype(x.dtype)      # (k, H, W)
        on_device = to_device(masks, like=x)
        for i in range(x.shape[0]):
            masked = reference[i][None] + on_device[:, None] * (x[i] - reference[i])[None]
            weights = scores(model, masked, targets[i], probability=True)                   # f_c per mask
            saliency[i] += np.tensordot(weights, masks, axes=1)                             # sum_i f_c M_i
            bar.update()
    bar.close()
    return to_device(saliency / (p * n), like=x)


def draw_masks(n, cell, p, seed):
    """The random part of n masks: binary grids (n, cell, cell) (True with probability p) and shifts (n, 2)
    in units of a cell, uniform in [0, 1). Drawn at once, so the masks do not depend on batch_size."""
    rng = np.random.default_rng(seed)
    return rng.random((n, cell, cell)) < p, rng.random((n, 2))


def upsample_masks(grids, shifts, size):
    """Smooth masks (k, H, W) in [0, 1]: each grid (s x s) upsampled bilinearly to (s + 1) * C per side
    (C = ceil(H / s), the cell size in pixels), then cropped to H x W at its shift (in pixels, shift * C)."""
    (H, W), s = size, grids.shape[1]
    ch, cw = math.ceil(H / s), math.ceil(W / s)
    big = resize_bilinear(grids.astype(np.float64), ((s + 1) * ch, (s + 1) * cw))
    dy, dx = (shifts[:, 0] * ch).astype(int), (shifts[:, 1] * cw).astype(int)
    return np.stack([m[y:y + H, x:x + W] for m, y, x in zip(big, dy, dx)])
