"""Feature visualisation by gradient ascent in input space (seed 004; Erhan et al. 2009, Simonyan et al. 2014).

Which input makes filter k of a layer respond most? Cut the model after the layer (model.submodel(end=layer)),
start from faint noise and climb the gradient of the filter's mean activation:

    a(x)   = mean over i, j of A_k(x)[i, j], without a border of `border` pixels of the map A_k
    x_0    ~ U(-0.125, +0.125) per value, in the model's input space
    x_t+1  = x_t + lr * g / ||g||_2,   g = d a / d x (x_t)       (30 steps, lr = 10)

then rescale the result to [0, 255] for display. Seed 004 names the start range, the 30 steps, the border
crop and the rescaling but not the update: the exact update, lr = 10 and the 2-pixel border are those of
the Keras example the exercise is based on (F. Chollet, "Visualizing what convnets learn", keras.io 2020),
whose gradient is L2-normalised over the whole image (tf.math.l2_normalize: g / sqrt(max(sum g^2, 1e-12))).
Because ||step|| = lr, the change per pixel shrinks with the image size: lr = 10 was chosen for 180 x 180.

Optional regularisers, all off by default so that the seed's exercise stays exact:
    jitter  shift the image by a random (dy, dx) in [-jitter, jitter] before each step (Mordvintsev et al. 2015)
    octaves optimise at growing scales, e.g. (0.5, 0.75, 1.0) of `size`, `steps` at each, upscaling between
    blur    Gaussian blur of the image with this sigma (pixels) after each step (Yosinski et al. 2015)
    decay   x <- (1 - decay) x after each step, an L2 decay (Yosinski et al. 2015)

maximize_filters runs many filters in one pass: a batch of start images, image n for filter f_n, and the
objective sum_n a_{f_n}(x_n). Image n's activations do not depend on the other images, so one backward gives
every image's own gradient, and the result equals running the filters one at a time.
"""
import warnings
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .backend import array_module, to_host
from .baselines import gaussian_blur
from .images import resize_bilinear
from .validate import check_positive

START_RANGE = 0.125                 # x_0 ~ U(-0.125, 0.125), seed 004


@dataclass
class FilterVisualization:
    """One filter's optimised input.

    image    (H, W, 3) uint8: `raw` rescaled to [0, 255] for display (see `to_uint8`)
    raw      (1, C, H, W) the optimised model input
    history  (steps + 1,) the objective a(x) (mean activation without border) at the start and after each
             step (with octaves: steps per octave times octaves, + 1; with jitter: on the shifted image)
    """
    layer: str
    filter: int
    image: np.ndarray = field(repr=False)
    raw: np.ndarray = field(repr=False)
    history: np.ndarray = field(repr=False)

    @property
    def gain(self):
        """a(final image) / |a(start image)|: how many times the start's activation the ascent reached
        (inf or nan when the start's activation is exactly 0, e.g. a filter behind a ReLU that never fires)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.float64(self.history[-1]) / abs(np.float64(self.history[0])))


def to_uint8(raw, std=0.15):
    """A model input (1, C, H, W) or (C, H, W) -> (H, W, C) uint8, as in the Keras example: centre on 0.5 with
    standard deviation `std`, clip to [0, 1], times 255 (seed 004: "rescale to [0, 255]")."""
    img = np.asarray(raw, dtype=np.float64)
    img = (img[0] if img.ndim == 4 else img).transpose(1, 2, 0)
    img = (img - img.mean()) / (img.std() + 1e-5) * std + 0.5
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def filter_objective(act, filters, border):
    """a_n = mean of act[n, filters[n]] without `border` pixels on each side, for act (N, K, h, w);
    returns (a (N,), d sum_n a_n / d act): 1 / (h' w') inside the crop of each image's own filter, else 0."""
    xp = array_module(act)
    n, _, h, w = act.shape
    rows, cols = slice(border, h - border), slice(border, w - border)
    idx, filters = xp.arange(n), xp.asarray(filters)
    crop = act[idx, filters][:, rows, cols]                        # (N, h', w')
    dact = xp.zeros_like(act)
    dact[idx, filters, rows, cols] = 1.0 / (crop.shape[1] * crop.shape[2])
    return crop.mean(axis=(1, 2)), dact


def l2_normalize(g):
    """g / ||g||_2 per image: g (N, C, H, W), the norm over C, H, W, floored at 1e-6 (sqrt of Keras' 1e-12)."""
    norm = np.sqrt((g * g).sum(axis=(1, 2, 3), keepdims=True))
    return g / np.maximum(norm, 1e-6)


def maximize_filter(model, layer, filter, steps=30, lr=10.0, seed=0, size=None, border=2, jitter=0, octaves=None,
                    blur=0.0, decay=0.0, progress=False):
    """The input that maximises filter `filter` of `layer` (a name model.submodel accepts, e.g. "features.10"
    or "layer3"), by `steps` normalised gradient-ascent steps; see the module docstring. Returns a
    FilterVisualization. size: (H, W) or an int, default the model's input size. seed: the start noise."""
    return maximize_filters(model, layer, [filter], steps, lr, seed, size, border, jitter, octaves, blur, decay,
                            progress=progress)[0]


def maximize_filters(model, layer, filters=range(64), steps=30, lr=10.0, seed=0, size=None, border=2, jitter=0,
                     octaves=None, blur=0.0, decay=0.0, batch_size=None, progress=False):
    """maximize_filter for many filters at once: one batch of start images, one image per filter (every
    filter starts from the same seeded noise), one forward and one backward per step for all of them.
    batch_size bounds the images per pass (None: all filters at once; a sub-model of VGG or ResNet at
    224 x 224 keeps gigabytes of activations for 64 images, so pass e.g. batch_size=8 there).
    Returns [FilterVisualization], in the order of `filters`. A RuntimeWarning names the filters whose
    gradient is zero on the start image: nothing can move them."""
    sub = model.submodel(end=layer)
    size = _check_size(size, model)
    steps, lr = check_positive(steps, "steps"), _check_number(lr, "lr", positive=True)
    options = _check_regularisers(border, jitter, octaves, blur, decay)
    start = np.random.default_rng(seed).uniform(-START_RANGE, START_RANGE,
                                                (1, model.in_channels, *_scaled(size, options["octaves"][0])))
    filters = _check_filters(sub, layer, filters, start.astype(np.float32), options["border"])
    results = []
    chunk = len(filters) if batch_size is None else check_positive(batch_size, "batch_size")
    for i in range(0, len(filters), chunk):
        raw, history = _ascend(sub, filters[i:i + chunk], start, size, steps, lr, seed, options, progress)
        results += [FilterVisualization(layer, int(f), to_uint8(raw[n]), raw[n:n + 1], history[:, n])
                    for n, f in enumerate(filters[i:i + chunk])]
    return results


def _ascend(sub, filters, start, size, steps, lr, seed, options, progress):
    """Gradient ascent for a batch of filters; returns (images (N, C, H, W), history (steps + 1, N))."""
    rng = np.random.default_rng([seed, 1])                 # jitter shifts: the same for every batch
    x = sub.place(np.repeat(start, len(filters), axis=0).astype(np.float32))     # on the model's device
    xp = array_module(x)
    history = []
    total = steps * len(options["octaves"])
    bar = tqdm(total=total, desc="maximize filters", disable=not progress)
    for k, scale in enumerate(options["octaves"]):
        if k > 0:                                            # next octave: upscale the image
            x = resize_bilinear(x, _scaled(size, scale)).astype(np.float32)
        for _ in range(steps):
            dy, dx = rng.integers(-options["jitter"], options["jitter"] + 1, 2) if options["jitter"] else (0, 0)
            shifted = xp.roll(x, (int(dy), int(dx)), axis=(2, 3))
            tape = sub.record(shifted)
            a, dact = filter_objective(tape.output, filters, options["border"])
            g = xp.roll(sub.backward(dact, tape=tape), (-int(dy), -int(dx)), axis=(2, 3))   # d a / d x, shifted back
            if not history:
                _warn_inactive(g, filters)
            x = x + lr * l2_normalize(g)                                   # x_t+1 = x_t + lr g / ||g||
            if options["blur"]:
                x = gaussian_blur(x, options["blur"])
            x = x * (1 - options["decay"]) if options["decay"] else x
            history.append(to_host(a))
            bar.update(1)
    bar.close()
    history.append(to_host(filter_objective(sub.record(x).output, filters, options["border"])[0]))
    return to_host(x), np.array(history)                   # the images, for display: copied back explicitly


def _warn_inactive(g, filters):
    """Say so when a filter cannot move: its gradient is zero on the start image (behind a ReLU, the filter
    is negative everywhere), and gradient ascent leaves such an image as it is."""
    stuck = filters[~to_host(array_module(g).any(g != 0, axis=(1, 2, 3)))]
    if stuck.size:
        warnings.warn(f"filters {stuck.tolist()} have a zero gradient on the start image (inactive behind a "
                      "ReLU?): gradient ascent cannot change their images; try the layer before the ReLU or "
                      "another seed", RuntimeWarning, stacklevel=4)


# ---------------------------------------------------------------------------------------------- checks

def _scaled(size, scale):
    return max(1, int(round(size[0] * scale))), max(1, int(round(size[1] * scale)))


def _check_number(value, name, positive=False):
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a {'positive number' if positive else 'number >= 0'}, got {value!r}")
    return float(value)


def _check_size(size, model):
    if size is None:
        if model.spec is None:
            raise ValueError("size is needed: this model has no input spec")
        return tuple(model.spec.size)
    size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ValueError(f"size must be a positive int or (H, W), got {size!r}")
    return size


def _check_regularisers(border, jitter, octaves, blur, decay):
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ValueError(f"border must be an integer >= 0, got {border!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, (int, np.integer)) or jitter < 0:
        raise ValueError(f"jitter must be an integer >= 0 (pixels), got {jitter!r}")
    octaves = (1.0,) if octaves is None else tuple(octaves)
    if not octaves:
        raise ValueError("octaves must be None or a non-empty sequence of scales, e.g. (0.5, 0.75, 1.0)")
    for s in octaves:
        _check_number(s, "every octave scale", positive=True)
    if not 0 <= _check_number(decay, "decay") < 1:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    return {"border": int(border), "jitter": int(jitter), "octaves": octaves, "blur": _check_number(blur, "blur"),
            "decay": float(decay)}


def _check_filters(sub, layer, filters, probe, border):
    """Filter indices as an int array, each within the layer's channels; the map must outlast the border."""
    out = sub.record(probe).output
    if out.ndim != 4:
        raise ValueError(f"layer {layer!r} outputs shape {out.shape}, not feature maps (N, K, h, w): "
                         "choose a convolutional layer")
    if 2 * border >= min(out.shape[2:]):
        raise ValueError(f"layer {layer!r} gives {out.shape[2]}x{out.shape[3]} maps at this input size: nothing "
                         f"is left without a border of {border}; use a smaller border or a larger size")
    f = np.asarray(list(filters) if not isinstance(filters, (int, np.integer)) else [filters])
    if f.size == 0 or f.ndim != 1 or f.dtype.kind not in "iu":
        raise TypeError(f"filters must be a non-empty sequence of ints, got {filters!r}")
    bad = f[(f < 0) | (f >= out.shape[1])]
    if bad.size:
        raise ValueError(f"filter {int(bad[0])} is out of range: layer {layer!r} has {out.shape[1]} filters "
                         f"(valid: 0..{out.shape[1] - 1})")
    return f.astype(np.int64)
