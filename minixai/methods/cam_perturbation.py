"""Class activation maps without gradients: each channel's weight is measured by running the network again.

    Score-CAM     w_k = softmax_k( y^c(x * M_k) ),  M_k = A_k upsampled to x's size, scaled to [0, 1]  Wang 2020
    Ablation-CAM  w_k = (y^c - y^c_k) / y^c,        y^c_k: the score with channel k of A set to 0    Desai 2020
    L = ReLU(sum_k w_k A_k)

Score-CAM needs one pass of the whole network per channel and image (a masked input each); Ablation-CAM one
pass of the part above the layer per channel and image. Both run these passes in batches of `batch_size`
(a progress bar over the batches with progress=True). The conventions are pytorch-grad-cam's, whose ScoreCAM
and AblationCAM classes compute these weights (tests/test_parity_cam.py); where they differ from the papers
or from that library, the function's docstring says so.
"""
import numpy as np
from tqdm.auto import tqdm

from ..backend import array_module
from ..validate import check_positive
from ._cam import activations, explained_scores, finish, setup, weighted_sum
from ._common import returns_like_input


def _batches(n_images, channels, batch_size, desc, progress):
    """(image n, channel slice) pairs covering every channel of every image, at most batch_size per slice."""
    check_positive(batch_size, "batch_size")
    work = [(n, slice(k, min(k + batch_size, channels))) for n in range(n_images)
            for k in range(0, channels, batch_size)]
    return tqdm(work, desc=desc, disable=not progress or len(work) < 2)


def upsample_align_corners(maps, size):
    """Bilinear resize (..., h, w) -> (..., H, W) with the corner pixels of both grids aligned (torch's
    UpsamplingBilinear2d, align_corners=True): output pixel i samples the input at i (h - 1) / (H - 1)."""
    def weights(n_in, n_out):                          # (n_out, n_in): each row two neighbours' shares
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = src - lo
        R = np.zeros((n_out, n_in))
        np.add.at(R, (np.arange(n_out), lo), 1 - frac)
        np.add.at(R, (np.arange(n_out), hi), frac)
        return array_module(maps).asarray(R.astype(maps.dtype))          # made here, copied where maps are

    rows, cols = weights(maps.shape[-2], size[0]), weights(maps.shape[-1], size[1])
    return rows @ maps @ cols.T                        # sum_ab R_ia A_ab C_jb


def score_masks(A_n, size):
    """Score-CAM's masks for one image: each channel A_k (K, h, w) upsampled to `size` (align_corners=True)
    and scaled to [0, 1] by (M - min) / (max - min + 1e-8); a constant channel gives a zero mask."""
    M = upsample_align_corners(A_n, size)
    low = M.min(axis=(1, 2), keepdims=True)
    high = M.max(axis=(1, 2), keepdims=True)
    return (M - low) / (high - low + 1e-8)


def softmax(scores):
    """softmax over the last axis, shifted by the maximum so that no exp overflows."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@returns_like_input
def scorecam(model, x, target, layer=None, upsample=True, batch_size=32, progress=True):
    """Score-CAM (Wang et al. 2020, Algorithm 1): map (N, H, W), (N, h, w) with upsample=False.

    For each channel k of the layer, the input is masked by that channel's activation map (upsampled and
    scaled to [0, 1]) and the network scores it; the scores, through a softmax over the channels, weight the
    maps. Conventions (pytorch-grad-cam's; the paper's differ): the score is the raw target logit y^c(x * M_k)
    (the paper: the softmax probability minus that of a baseline image, its "increase of confidence"), and the
    weights are the softmax of these logits over the channels. The upsampling aligns corners (its
    UpsamplingBilinear2d). pytorch-grad-cam keeps the scores in float32; here they keep x's dtype.
    batch_size: masked images per pass (pytorch-grad-cam: 16)."""
    x, targets, layer = setup(model, x, target, layer, "Score-CAM")
    A = activations(model, x, layer, "Score-CAM")
    N, K = A.shape[:2]
    scores = array_module(A).zeros((N, K), dtype=A.dtype)
    for n, ks in _batches(N, K, batch_size, "score-cam", progress):
        masked = x[n][None] * score_masks(A[n, ks], x.shape[2:])[:, None]      # (k, C, H, W): x * M_k
        t = None if targets is None else np.full(ks.stop - ks.start, targets[n])
        scores[n, ks] = explained_scores(model.record(masked).output, t)
    return finish(weighted_sum(softmax(scores), A), x, upsample)


@returns_like_input
def ablationcam(model, x, target, layer=None, upsample=True, value=0.0, batch_size=32, progress=True):
    """Ablation-CAM (Desai & Ramaswamy 2020, eq. 2-3): map (N, H, W), (N, h, w) with upsample=False.

    w_k = (y^c - y^c_k) / y^c, the share of the score lost when channel k of the layer is set to `value`
    (0, as in the paper). Only the part of the network above the layer runs again (the layer must be on the
    main path: model.path_names()). pytorch-grad-cam sets the channel to 0 when the layer's output for that
    image holds an exact 0 (any layer after a ReLU) and otherwise, on a layer before its ReLU, to its minimum
    minus 1e7, a value far outside what the layer gives, where ours keeps 0: there the maps differ
    (pass value= to choose; pytorch-grad-cam also lowers that value by another 1e7 for each ablation earlier
    in its batch). batch_size: ablated copies per pass (pytorch-grad-cam: 32)."""
    x, targets, layer = setup(model, x, target, layer, "Ablation-CAM")
    if layer not in model.path_names():
        raise ValueError(f"Ablation-CAM reruns the network from its layer, which must be on the main path; "
                         f"{layer!r} is inside a block. Valid: {', '.join(model.path_names())}")
    A = activations(model, x, layer, "Ablation-CAM")
    head = model.submodel(start=layer)
    base = explained_scores(head.record(A).output, targets)            # y^c, (N,)
    N, K = A.shape[:2]
    xp = array_module(A)
    ablated = xp.zeros((N, K), dtype=A.dtype)
    for n, ks in _batches(N, K, batch_size, "ablation-cam", progress):
        copies = xp.repeat(A[n][None], ks.stop - ks.start, axis=0)                  # (k, K, h, w)
        copies[xp.arange(len(copies)), xp.arange(ks.start, ks.stop)] = value        # channel k of copy k
        t = None if targets is None else np.full(len(copies), targets[n])
        ablated[n, ks] = explained_scores(head.record(copies).output, t)
    weights = (base[:, None] - ablated) / base[:, None]
    return finish(weighted_sum(weights, A), x, upsample)
