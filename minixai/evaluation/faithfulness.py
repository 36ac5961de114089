"""Faithfulness: when the pixels an explanation calls relevant are removed, does the model's output fall?

- deletion (Petsiuk et al. 2018, "RISE", Sec. 4.1): remove the most relevant pixels first (set them to the
  baseline, black by default); score = softmax probability of the target. Low area under the curve: faithful.
- insertion (ibid.): start from the baseline (a blurred copy by default) and put the most relevant pixels of
  x back first. High area: faithful.
- pixel flipping (Bach et al. 2015, Sec. 5.1; Samek et al. 2017, MoRF and LeRF): as deletion, scored on the
  target's logit (the classifier output f(x) of the papers), most (MoRF) or least (LeRF) relevant first.

Step k of K = steps perturbs the first n_k = round(k H W / steps) pixels of `maps.pixel_order` (a stable
sort of the pixel map, ties by flat index), in every channel. The curve has K + 1 points (k = 0 is x itself,
or the baseline for insertion); the AUC is the trapezoid rule over the fraction k / K in [0, 1].

Compared with Quantus 0.6's PixelFlipping (tests/test_evaluation_quantus.py checks equality):
Quantus scores the softmax probability unless called with softmax=False; its perturb_baseline="black" is
each image's minimum value over all channels (here baseline="minimum"; "black" here is black on screen);
it divides the map by its maximum |value| (the ranking stays) and, like this module, takes no absolute
value (abs=False); it ranks the flattened (C, H, W) map with an unstable sort and perturbs features_in_step
values per step (whole pixels when the map is the same in every channel and the step is a multiple of C);
its curve has no unperturbed first point: it is curve[:, 1:] here.
"""
from dataclasses import dataclass

import numpy as np

from ..methods._common import prepare
from ..validate import check_positive
from .maps import check_attributions, pixel_map, pixel_ranks
from .perturbed import perturbed_logits, reference, target_scores


@dataclass(frozen=True)
class Curve:
    """curve (N, K): the score at each point; fractions (K,): the share of pixels perturbed there."""
    curve: np.ndarray
    fractions: np.ndarray

    @property
    def auc(self):
        """(N,) area under each curve over the fractions (trapezoid rule)."""
        return np.trapezoid(self.curve, self.fractions, axis=1)


def deletion(model, x, target, attributions, steps=20, baseline="black", method=None, batch_size=32, seed=0,
             progress=True):
    """Softmax probability of the target while the most relevant pixels are removed (Petsiuk et al. 2018).

    x (N, C, H, W); attributions shaped like x or (N, H, W); method: the name in mx.METHODS that made them
    (decides `pixel_map`; None: max_k |a_k|). baseline: see `perturbed.reference` ("blur", "gray", "zeros",
    "minimum", an array, ...); seed: for baseline="uniform". batch_size: images per forward pass.
    Returns a Curve: .curve (N, steps + 1), .auc (N,)."""
    return _pixel_curve(model, x, target, attributions, steps, baseline, method, batch_size, seed, progress,
                        order="morf", insert=False, score="probability", desc="deletion")


def insertion(model, x, target, attributions, steps=20, baseline="blur", method=None, batch_size=32, seed=0,
              progress=True):
    """Softmax probability of the target while the most relevant pixels of x are put back into the baseline
    (Petsiuk et al. 2018); arguments as for `deletion`."""
    return _pixel_curve(model, x, target, attributions, steps, baseline, method, batch_size, seed, progress,
                        order="morf", insert=True, score="probability", desc="insertion")


def pixel_flipping(model, x, target, attributions, steps=20, order="morf", baseline="black", method=None,
                   batch_size=32, seed=0, progress=True):
    """The target's logit while pixels are flipped to the baseline, most ("morf") or least ("lerf") relevant
    first (Bach et al. 2015; Samek et al. 2017); steps=H*W flips one pixel per step. Arguments as for
    `deletion`; see the module docstring for the settings that reproduce Quantus's PixelFlipping."""
    return _pixel_curve(model, x, target, attributions, steps, baseline, method, batch_size, seed, progress,
                        order=order, insert=False, score="logit", desc=f"pixel flipping ({order})")


def _pixel_curve(model, x, target, attributions, steps, baseline, method, batch_size, seed, progress, order,
                 insert, score, desc):
    x, targets = prepare(model, x, target)
    steps = check_positive(steps, "steps")
    ranks = pixel_ranks(pixel_map(check_attributions(attributions, x), method), order)     # (N, H*W)
    N, _, H, W = x.shape
    counts = np.round(np.arange(steps + 1) * (H * W) / steps).astype(np.int64)   # n_k pixels at step k
    ref = reference(baseline, x, model.spec, seed)
    start, visited_from = (ref, x) if insert else (x, ref)

    def build(n, k):
        visited = (ranks[n] < counts[k][:, None]).reshape(len(n), 1, H, W)    # the first n_k pixels
        return np.where(visited, visited_from[n], start[n])

    logits = perturbed_logits(model, build, N, steps + 1, batch_size, progress, desc)
    return Curve(target_scores(logits, targets, score), np.arange(steps + 1) / steps)
