"""What the perturbation methods (occlusion, RISE, LIME, KernelSHAP) share: the explained score of a batch
of perturbed copies of an image, forward passes of at most `batch_size` images, and one progress bar.

None of them needs a gradient: they ask the model F about inputs x~ that mix the image x and a baseline x',
    x~ = x' + m * (x - x')           (m = 1: the image's value, m = 0: the baseline's)
and read one number per input: the target's logit (occlusion, LIME, KernelSHAP) or its softmax probability
(RISE). The perturbed inputs are made where the model lives (NumPy or a GPU's array module); the scores, a
few numbers per pass, come back to the host, where the methods do their bookkeeping.
"""
import numpy as np
from tqdm.auto import tqdm

from ..backend import array_module, to_device, to_host
from ..validate import check_positive
from ._common import batches

DEFAULT_BATCH = 32          # perturbed images per forward pass: VGG-16 at 224 px needs ~3 GB for 32


def chunks(count, batch_size):
    """Slices of range(count) of at most batch_size (None: one slice of everything)."""
    if batch_size is not None:
        check_positive(batch_size, "batch_size")
    return batches(count, batch_size)


def progress_bar(total, desc, progress):
    """A bar over `total` forward passes, hidden when progress=False or there is only one."""
    return tqdm(total=total, desc=desc, disable=not progress or total < 2)


def explained_score(logits, target):
    """The explained score of each row of logits (k, outputs): the target's logit, or the sum of all logits
    (target None), as in the gradient methods."""
    return logits.sum(axis=1) if target is None else logits[:, target]


def target_probability(logits, target):
    """softmax(logits)[target] per row (k,): the score RISE weights its masks with."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p[:, target] / p.sum(axis=1)


def scores(model, inputs, target, probability=False):
    """One forward pass of inputs (k, C, H, W): the target's logit (or softmax probability) per input, (k,)
    on the host."""
    logits = to_host(model.record(inputs).output)
    return target_probability(logits, target) if probability else explained_score(logits, target)


def keep_segments(x, baseline, segments, z):
    """Inputs for coalitions z (k, K) of the K segments: pixel (h, w) keeps the image's value where its
    segment is in the coalition and takes the baseline's elsewhere, in every channel.
    x, baseline: (C, H, W); segments: (H, W) ids in [0, K); returns (k, C, H, W)."""
    keep = to_device(z.astype(bool)[:, segments], like=x)    # (k, H, W): is pixel (h, w)'s segment present?
    return array_module(x).where(keep[:, None], x[None], baseline[None])


def spread_over_segments(values, segments, channels, dtype):
    """Each segment's value divided evenly over its C * |S_k| entries: (C, H, W) attributions whose sum over
    a segment is the segment's value (and whose total is the sum of the values)."""
    sizes = np.bincount(segments.ravel(), minlength=len(values)) * channels
    per_entry = (values / sizes)[segments]
    return np.broadcast_to(per_entry, (channels, *segments.shape)).astype(dtype)


def coalition_scores(model, x, baseline, segments, z, target, batch_size, bar):
    """v(z) = F(x with the segments of coalition z kept, the baseline elsewhere) for every row of z (m, K):
    (m,) float64, in forward passes of at most batch_size images (one step of `bar` each)."""
    values = np.empty(len(z))
    for part in chunks(len(z), batch_size):
        values[part] = scores(model, keep_segments(x, baseline, segments, z[part]), target)
        bar.update()
    return values
