"""Saliency (Simonyan 2014), gradient x input, SmoothGrad and VarGrad (Smilkov 2017)."""
import numpy as np

from ..backend import array_module, to_device
from ..validate import check_nonnegative, check_positive
from ._common import input_gradient, prepare, returns_like_input, sample_chunks


@returns_like_input
def saliency(model, x, target):
    """M(x) = d S_c / d x (seed 000, eq. 3 and Algorithm 1, steps 1-4): the raw gradient, sign kept.
    Algorithm 1's max_k |M_ijk| and 0-1 normalisation are `viz.aggregate` and `viz.normalize`."""
    x, targets = prepare(model, x, target)
    return input_gradient(model, x, targets)[0]


@returns_like_input
def gradient_x_input(model, x, target):
    """A_i = x_i * dF/dx_i."""
    x, targets = prepare(model, x, target)
    return x * input_gradient(model, x, targets)[0]


def _noisy_gradients(model, x, target, n, sigma, seed, batch_size, progress):
    """Yield the gradient at x + eps_i, eps_i ~ N(0, (sigma * (max x - min x))^2), for i = 1..n.
    sigma is the noise level relative to each image's value range, as in Smilkov et al. 2017."""
    x, targets = prepare(model, x, target)
    n = check_positive(n, "n")
    sigma = check_nonnegative(sigma, "sigma", "the noise level relative to the image's value range, e.g. 0.15")
    rng = np.random.default_rng(seed)
    N = x.shape[0]
    scale = (sigma * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3))))[:, None, None, None]
    for chunk in sample_chunks(n, N, batch_size, "smoothgrad", progress):
        k = chunk.stop - chunk.start
        noise = to_device(rng.standard_normal((k, *x.shape)).astype(x.dtype), like=x) * scale   # drawn here
        noisy = (x[None] + noise).reshape(k * N, *x.shape[1:])
        grads = input_gradient(model, noisy, None if targets is None else np.tile(targets, k))[0]
        yield grads.reshape(k, *x.shape)


@returns_like_input
def smoothgrad(model, x, target, n=50, sigma=0.15, seed=0, squared=False, batch_size=None, progress=True):
    """Seed 000, Algorithm 2: M_smooth = 1/n sum_i grad F(x + eps_i). `squared`: mean of squared gradients.
    batch_size bounds how many noisy images go through the network at once (None: all n)."""
    total = None
    for g in _noisy_gradients(model, x, target, n, sigma, seed, batch_size, progress):
        g = g * g if squared else g
        total = g.sum(axis=0) if total is None else total + g.sum(axis=0)
    return total / n


@returns_like_input
def vargrad(model, x, target, n=50, sigma=0.15, seed=0, batch_size=None, progress=True):
    """VarGrad (Adebayo et al. 2018): the variance of the noisy gradients instead of their mean."""
    grads = list(_noisy_gradients(model, x, target, n, sigma, seed, batch_size, progress))
    grads = array_module(grads[0]).concatenate(grads)
    return grads.var(axis=0)
