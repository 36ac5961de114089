"""Occlusion (Zeiler & Fergus 2014, section 4.2 "Occlusion Sensitivity"), with Captum's conventions.

A window w slides over the input (channels, rows, columns); where it sits, the input is replaced by the
baseline x', and the drop of the target's logit is shared by every element the window covers:

    A_i = 1 / |W(i)| * sum_{w in W(i)} [ F(x) - F(x with window w replaced by x') ]

W(i) are the windows that cover element i. Window positions per dimension (Captum's Occlusion):
ceil((D - w) / s) + 1 starts 0, s, 2s, ...; the last window may stick out past the border and is cut
there, so every element is covered. Windows may overlap in the channel dimension too.
"""
import math

import numpy as np

from ..backend import array_module, to_device
from ..baselines import make_baseline
from ._common import prepare, returns_like_input
from ._perturb import DEFAULT_BATCH, chunks, progress_bar, scores


@returns_like_input
def occlusion(model, x, target, window=(3, 8, 8), stride=(3, 4, 4), baseline="zeros", batch_size=DEFAULT_BATCH,
              progress=True):
    """Occlusion attributions (N, C, H, W), in x's dtype (Captum returns float32 whatever the input).

    window: (c, h, w) the occluded box; stride: (c, h, w) or one int, its step (stride <= window where the
    window is smaller than the input, so that every element is covered). baseline: what the box is replaced
    with: "zeros" (0 in the model's normalised input space, Captum's default), "black", "gray", ... or an
    array (see minixai.baselines). The explained score is the target's logit (target=None: the sum of all
    logits). batch_size: occluded images per forward pass (None: all windows of an image at once).
    Cost: one pass of the image plus prod_d (ceil((D - w_d) / s_d) + 1) occluded images per image."""
    x, targets = prepare(model, x, target)
    reference = make_baseline(baseline, x, model.spec)
    boxes = window_boxes(x.shape[1:], *check_window(window, stride, x.shape[1:]))
    coverage = np.zeros(x.shape[1:], dtype=x.dtype)
    for box in boxes:
        coverage[box] += 1                                   # |W(i)|: >= 1 everywhere by construction
    slices = chunks(len(boxes), batch_size)
    bar = progress_bar(x.shape[0] * len(slices), "occlusion", progress)
    attributions = np.zeros(x.shape, dtype=x.dtype)                 # on the host, with the scores
    for i in range(x.shape[0]):
        t = None if targets is None else targets[i]
        full = scores(model, x[i:i + 1], t)[0]               # F(x)
        for part in slices:
            drop = full - scores(model, occluded(x[i], reference[i], boxes[part]), t)
            for box, d in zip(boxes[part], drop):
                attributions[i][box] += d                    # sum over the windows covering each element
            bar.update()
    bar.close()
    return to_device(attributions / coverage, like=x)


def occluded(x, reference, boxes):
    """Copies of one image x (C, H, W), the k-th with boxes[k] replaced by the reference: (k, C, H, W)."""
    inputs = array_module(x).repeat(x[None], len(boxes), axis=0)
    for k, box in enumerate(boxes):
        inputs[(k, *box)] = reference[box]
    return inputs


def window_starts(size, window, stride):
    """Where the windows start along one dimension of `size`: ceil((size - window) / stride) + 1 positions
    0, stride, 2 stride, ... (the last one may reach past the border)."""
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]


def window_boxes(shape, window, stride):
    """Every window position as a (channel, row, column) tuple of slices, cut at the border; the channel
    index varies slowest, the column fastest."""
    starts = [window_starts(d, w, s) for d, w, s in zip(shape, window, stride)]
    return [tuple(slice(a, min(a + w, d)) for a, w, d in zip(corner, window, shape))
            for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, 3).tolist()]


def check_window(window, stride, shape):
    """window (c, h, w) and stride (an int or (c, h, w)) as tuples of positive ints that cover an input of
    `shape` (C, H, W): window <= shape, and stride <= window wherever the window is smaller than the input."""
    window = _triple(window, "window", allow_int=False)
    stride = _triple(stride, "stride", allow_int=True)
    for name, w, s, d in zip(("channel", "row", "column"), window, stride, shape):
        if w > d:
            raise ValueError(f"window {window} is larger than the input {tuple(shape)} in the {name} dimension")
        if w < d and s > w:
            raise ValueError(f"stride {stride} is larger than window {window} in the {name} dimension: "
                             "some elements would never be occluded; use stride <= window")
    return window, stride


def _triple(value, name, allow_int):
    if allow_int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,) * 3
    if (not isinstance(value, (tuple, list)) or len(value) != 3
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value)):
        hint = "an int or " if allow_int else ""
        raise ValueError(f"{name} must be {hint}3 positive ints (channels, rows, columns), got {value!r}")
    return tuple(int(v) for v in value)
