"""Counterfactual image explanations (seed 003): change the image, as little as possible, until the model
predicts another class.

Starting from the original x0 (1, C, H, W), Adam steps on the image itself minimise

    L(x) = CE(f(x), c)  +  l1 * mean|x - x0|  +  l2 * mean (x - x0)^2  +  tv * TV(x - x0)

where CE(f(x), c) = -log softmax(f(x))_c pulls the prediction towards the target class c and the other
terms keep the counterfactual close to the original (Wachter et al. 2017; TV, the total variation of the
change, makes it smooth rather than speckled). Means run over all C*H*W values of the model's input
space. The gradient is model.backward(dL/dlogits) plus the analytic gradients of the distance terms:

    dCE/dz = softmax(z) - onehot(c)                    (z = f(x), the logits)
    d/dx l1 * mean|x - x0|     = l1 * sign(x - x0) / D
    d/dx l2 * mean (x - x0)^2  = l2 * 2 (x - x0) / D

After every step x is projected back onto the box of valid inputs, [(0 - mean)/std, (1 - mean)/std]
(spec.valid_range()): the counterfactual must stay a picture with pixels in [0, 1]. This projection is part
of the method (projected gradient descent), not a silent clipping of the user's data: an x whose own
pixels leave [0, 1] is refused with an error rather than clipped.
The search stops as soon as p(c | x) >= threshold, or after `steps` steps.

    cf = mx.counterfactual(model, x, target_class=3)               # seed 003: cat -> dog
    cf.success, cf.steps, cf.probabilities[3], cf.distance["l1"]
    fast = mx.counterfactual(model, x, 3, lr=0.1)                  # seed 003, task 2: lr 0.01 vs 0.1
    compare_figure(model, cf)                                      # task 1: saliency before and after
"""
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .backend import array_module, to_device, to_host
from .training import Adam, cross_entropy
from .validate import check_images, check_positive, check_targets


@dataclass
class CounterfactualResult:
    """What `counterfactual` found.

    image, original   (1, C, H, W) model inputs: the counterfactual and the image it started from
    success           p(target | image) >= threshold was reached
    steps             Adam steps taken (0 if the original already qualified)
    probabilities     (classes,) softmax of the counterfactual's logits (original_probabilities: the original's)
    distance          {"l1": mean |p - p0|, "l2": sqrt(mean (p - p0)^2)} in pixel space (pixels in [0, 1])
    history           {"loss", "target_probability", "l1"}: arrays of steps + 1 values, one per image
                      visited (the start, then after each step); the last one describes `image`
    """
    image: np.ndarray = field(repr=False)
    original: np.ndarray = field(repr=False)
    success: bool
    steps: int
    target_class: int
    probabilities: np.ndarray
    distance: dict
    threshold: float
    original_probabilities: np.ndarray = field(repr=False)
    history: dict = field(repr=False)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _pixel_distance(x, x0, spec):
    """(mean |p - p0|, sqrt(mean (p - p0)^2)) with p = x * std + mean, the pixels in [0, 1]."""
    d = spec.denormalize(x) - spec.denormalize(x0)
    return float(np.abs(d).mean()), float(np.sqrt((d * d).mean()))


def total_variation(d):
    """Anisotropic TV of d (N, C, H, W), as a mean over its D values, and its gradient:
        TV(d) = (sum |d[.., i+1, j] - d[.., i, j]| + sum |d[.., i, j+1] - d[.., i, j]|) / D"""
    dh, dw = np.diff(d, axis=2), np.diff(d, axis=3)
    value = (np.abs(dh).sum() + np.abs(dw).sum()) / d.size
    sh, sw = np.sign(dh), np.sign(dw)
    grad = np.zeros_like(d)
    grad[:, :, 1:, :] += sh                 # d|d_(i+1) - d_i| / d d_(i+1) = +sign
    grad[:, :, :-1, :] -= sh                # ... / d d_i = -sign
    grad[:, :, :, 1:] += sw
    grad[:, :, :, :-1] -= sw
    return float(value), grad / d.size


def distance_penalty(x, x0, l1, l2, tv):
    """l1 * mean|x - x0| + l2 * mean (x - x0)^2 + tv * TV(x - x0), and its gradient with respect to x."""
    d = x - x0
    value = l1 * np.abs(d).mean() + l2 * (d * d).mean()
    grad = (l1 * np.sign(d) + l2 * 2 * d) / d.size
    if tv:
        tv_value, tv_grad = total_variation(d)
        value, grad = value + tv * tv_value, grad + tv * tv_grad
    return float(value), grad.astype(x.dtype)


def _check_options(lr, steps, l1, l2, tv, threshold):
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not np.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    steps = check_positive(steps, "steps")
    for name, value in (("l1", l1), ("l2", l2), ("tv", tv)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a probability in (0, 1], got {threshold!r}")
    return float(lr), steps


def _check_image(model, x, target_class):
    if model.spec is None:
        raise ValueError("counterfactual needs the model's input spec (model.spec) for the valid pixel range; "
                         "a model cut inside a network has none")
    x = check_images(model.place(x), model.in_channels)
    if x.shape[0] != 1:
        raise ValueError(f"counterfactual changes one image at a time: x has shape {tuple(x.shape)}; "
                         "pass x[i:i+1] for each image of a batch")
    if isinstance(target_class, str):
        target_class = model.spec.class_index(target_class)
    return x, int(check_targets(target_class, 1, model.num_outputs)[0])


def _check_in_range(x0, spec, tolerance=1e-3):
    """The projection may only undo the optimiser's steps, never the user's pixels: refuse an x whose pixels
    (x * std + mean) leave [0, 1] by more than `tolerance`."""
    pixels = spec.denormalize(x0)
    low, high = float(pixels.min()), float(pixels.max())
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(f"x holds pixels outside [0, 1] (from {low:.3g} to {high:.3g} after "
                         "undoing the spec's normalisation): the counterfactual keeps pixels in [0, 1], so give an "
                         "image normalised with model.spec (e.g. mx.images.load(path, spec=model.spec))")


def counterfactual(model, x, target_class, lr=0.01, steps=500, l1=10.0, l2=0.0, tv=0.0, threshold=0.9,
                   seed=None, progress=True):
    """Search a counterfactual of x (1, C, H, W) that the model assigns to `target_class` (an index or a
    class name) with probability >= threshold; see the module docstring for the loss. Returns a
    CounterfactualResult. One image per call: a batch (N > 1) is refused with a ValueError.

    lr: Adam's learning rate in the model's input space (seed 003 compares 0.01 and 0.1).
    steps: at most this many Adam steps; l1, l2, tv >= 0: weights of the distance terms. The default l1 = 10
    was measured on the shapes model (benchmarks/counterfactual.py): it makes the change about 20% smaller
    than l1 = 0 without costing steps; l1 = 100 or l2 = 1000 start to hold the search back.
    seed: None starts at x itself (deterministic); an int starts at x + U(-lr, lr) noise from that seed
    (projected onto the valid range), to sample different counterfactuals of one image."""
    x_given = x
    x0, target = _check_image(model, x, target_class)
    lr, steps = _check_options(lr, steps, l1, l2, tv, threshold)
    low, high = model.spec.valid_range(x0.dtype, like=x0)
    _check_in_range(x0, model.spec)
    p0 = softmax(model.record(x0).output.astype(np.float64))[0]
    x = x0.copy()
    if seed is not None:
        noise = to_device(np.random.default_rng(seed).uniform(-lr, lr, x0.shape).astype(x0.dtype), like=x0)
        x = np.clip(x0 + noise, low, high)
    adam = Adam(lr=lr)                                       # training.Adam, on the image
    history = {"loss": [], "target_probability": [], "l1": []}
    bar = tqdm(total=steps, desc="counterfactual", disable=not progress)
    for t in range(steps + 1):
        tape = model.record(x)
        logits = tape.output
        ce, dlogits = cross_entropy(logits, np.array([target]))
        penalty, dpenalty = distance_penalty(x, x0, l1, l2, tv)
        p = softmax(logits.astype(np.float64))[0]
        history["loss"].append(ce + penalty)
        history["target_probability"].append(float(p[target]))
        history["l1"].append(_pixel_distance(x, x0, model.spec)[0])
        if p[target] >= threshold or t == steps:
            break
        grad = model.backward(dlogits, tape=tape) + dpenalty     # dL/dx
        x = np.clip(adam.apply("image", x, grad), low, high)   # Adam step, then projection onto valid pixels
        bar.update(1)
        bar.set_postfix(p=f"{p[target]:.3f}")
    bar.close()
    l1_dist, l2_dist = _pixel_distance(x, x0, model.spec)
    back = to_host if array_module(x_given) is np else (lambda a: a)       # as the caller gave x
    return CounterfactualResult(image=back(x), original=back(x0), success=bool(p[target] >= threshold), steps=t,
                                probabilities=to_host(p), target_class=target,
                                distance={"l1": l1_dist, "l2": l2_dist}, threshold=float(threshold),
                                original_probabilities=to_host(p0),
                                history={k: np.asarray(v) for k, v in history.items()})


def compare_figure(model, result, method="saliency", title=None, cell=2.6):
    """Seed 003, task 1, as one Figure: original | counterfactual | the change in pixels (summed over RGB,
    diverging colours: red brighter, blue darker) | the `method` map (a name in mx.METHODS) of the original
    for the class the model predicts for it | of the counterfactual for the target class."""
    import matplotlib.pyplot as plt

    from . import viz
    from .images import to_pixels
    from .methods import METHODS
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    spec, names = model.spec, model.spec.class_names
    name = lambda c: names[c] if c < len(names) else str(c)   # noqa: E731
    before, after = int(np.argmax(result.original_probabilities)), result.target_class
    change = (spec.denormalize(result.image) - spec.denormalize(result.original))[0].sum(axis=0)
    limit = max(float(np.abs(change).max()), 1e-12)

    fig, axes = plt.subplots(1, 5, figsize=(5 * cell + 1.2, cell + 0.7), layout="constrained")
    axes[0].imshow(to_pixels(result.original, spec))
    viz._bare(axes[0], f"original: {name(before)} ({result.original_probabilities[before]:.0%})")
    axes[1].imshow(to_pixels(result.image, spec))
    viz._bare(axes[1], f"counterfactual: {name(after)} ({result.probabilities[after]:.0%})")
    shown = axes[2].imshow(change, cmap=viz.DIVERGING_CMAP, vmin=-limit, vmax=limit)
    viz._bare(axes[2], f"change, mean |dp| = {result.distance['l1']:.3g}")
    fig.colorbar(shown, ax=axes[2], shrink=0.85, label="pixel change (sum of RGB)")
    viz.heatmap(METHODS[method](model, result.original, before), ax=axes[3], colorbar=False,
                title=f"{method}: {name(before)}")
    viz.heatmap(METHODS[method](model, result.image, after), ax=axes[4], title=f"{method}: {name(after)}")
    status = "reached" if result.success else "NOT reached"
    fig.suptitle(title or f"counterfactual {name(before)} -> {name(after)}: p >= {result.threshold:g} {status} "
                          f"after {result.steps} steps")
    return fig
