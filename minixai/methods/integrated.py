"""Integrated Gradients (Sundararajan et al. 2017; seed 000, eq. 4-5).

    A_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x')) / dx_i da
           ~ (x_i - x'_i) * sum_k w_k dF(x' + a_k (x - x')) / dx_i

Completeness (eq. 5): sum_i A_i = F(x) - F(x') up to the quadrature error, returned as `delta`.
"""
import numpy as np

from ..backend import array_module
from ..baselines import make_baseline
from ..validate import check_positive
from ._common import input_gradient, prepare, returns_like_input, sample_chunks

METHODS = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def quadrature(steps, method="gausslegendre"):
    """Nodes a_k in [0, 1] and weights w_k (summing to 1) of the path integral."""
    steps = check_positive(steps, "steps")
    k = np.arange(steps)
    if method == "riemann_left":
        return k / steps, np.full(steps, 1 / steps)
    if method == "riemann_right":
        return (k + 1) / steps, np.full(steps, 1 / steps)
    if method == "riemann_middle":
        return (k + 0.5) / steps, np.full(steps, 1 / steps)
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2                              # h/2 at both ends, h = 1/(steps - 1)
        return np.linspace(0, 1, steps), weights
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)   # on [-1, 1]
        return (nodes + 1) / 2, weights / 2
    raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")


def path_gradients(model, x, baseline, targets, steps, method, batch_size=None, progress=True, rule=None):
    """sum_k w_k * grad F(x' + a_k (x - x')) for every image: the path-averaged gradient (shape of x).
    batch_size bounds how many path points go through the network at once (None: all steps)."""
    alphas, weights = quadrature(steps, method)
    total = array_module(x).zeros_like(x)
    for chunk in sample_chunks(steps, x.shape[0], batch_size, "integrated gradients", progress):
        xp = array_module(x)
        a = xp.asarray(alphas[chunk], dtype=x.dtype)[:, None, None, None, None]
        points = (baseline[None] + a * (x - baseline)[None]).reshape(-1, *x.shape[1:])
        t = None if targets is None else np.tile(targets, len(a))
        grads = input_gradient(model, points, t, rule)[0].reshape(len(a), *x.shape)
        total += xp.tensordot(xp.asarray(weights[chunk], dtype=x.dtype), grads, axes=1)
    return total


@returns_like_input
def integrated_gradients(model, x, target, baseline="black", steps=50, method="gausslegendre",
                         batch_size=None, return_delta=False, seed=0, progress=True):
    """IG attributions (N, C, H, W); with return_delta also delta (N,) = sum(A) - (F(x) - F(x')).
    baseline: "black", "white", "gray", "zeros", "blur", "uniform" (seeded) or an array (see baselines).
    target=None explains the sum of all logits."""
    x, targets = prepare(model, x, target)
    reference = make_baseline(baseline, x, model.spec, seed)
    attributions = (x - reference) * path_gradients(model, x, reference, targets, steps, method,
                                                    batch_size, progress)
    if not return_delta:
        return attributions
    return attributions, completeness_delta(model, x, reference, targets, attributions)


def completeness_delta(model, x, reference, targets, attributions):
    """sum_i A_i - (F(x) - F(x')) per image: how far the attributions are from eq. 5."""
    def score(inputs):
        logits = model.record(inputs).output
        xp = array_module(logits)
        return logits.sum(axis=1) if targets is None else logits[xp.arange(len(targets)), xp.asarray(targets)]
    return attributions.sum(axis=(1, 2, 3)) - (score(x) - score(reference))
