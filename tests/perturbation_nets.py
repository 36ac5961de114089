"""Small float64 networks for the tests of the perturbation and Shapley methods (test_occlusion, test_rise,
test_segments, test_surrogate, test_shapley, test_shap_gradients, test_perturbation_parity), and the
brute-force Shapley values they are checked against."""
import itertools
import math

import numpy as np

from minixai.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minixai.model import Model
from minixai.spec import InputSpec
from random_nets import randomize


def with_spec(layers, size, outputs):
    spec = InputSpec(mean=(0.5,) * 3, std=(0.25,) * 3, size=size, class_names=[f"c{k}" for k in range(outputs)])
    return Model(Sequential(*[layer for _, layer in layers], names=[name for name, _ in layers]), spec)


def tiny_cnn(seed=0, size=(8, 8), outputs=3):
    """conv-relu-maxpool-conv-relu-gap-linear on (3, H, W), He-scaled float64 weights: a nonlinear model."""
    layers = [("conv1", Conv2d(3, 4, 3, padding=1)), ("relu1", ReLU()), ("pool", MaxPool2d(2)),
              ("conv2", Conv2d(4, 5, 3, padding=1)), ("relu2", ReLU()), ("gap", AdaptiveAvgPool2d(2)),
              ("flatten", Flatten()), ("fc", Linear(20, outputs))]
    return randomize(with_spec(layers, size, outputs), np.random.default_rng(seed))


def linear_model(seed=0, shape=(3, 8, 8), outputs=3):
    """F(x) = W vec(x) + b: a model whose every perturbation method has a closed form."""
    model = with_spec([("flatten", Flatten()), ("fc", Linear(int(np.prod(shape)), outputs))], shape[1:], outputs)
    return randomize(model, np.random.default_rng(seed))


def linear_weights(model, target, shape):
    """The weights of output `target` of a linear_model, shaped like one input (C, H, W)."""
    return model["fc"].weight[target].reshape(shape)


def grid_segments(size, rows, cols):
    """(H, W) ids of a rows x cols grid of blocks, numbered row by row."""
    H, W = size
    return (np.arange(H)[:, None] * rows // H) * cols + np.arange(W)[None, :] * cols // W


def brute_force_shapley(value, K):
    """Shapley values from their definition: the marginal contribution of each player averaged over all K!
    orders, phi_k = 1/K! sum_order [v(players before k, and k) - v(players before k)].
    value: frozenset of players -> float (cached here: every subset is asked for once)."""
    cache = {}

    def v(players):
        if players not in cache:
            cache[players] = value(players)
        return cache[players]

    phi = np.zeros(K)
    for order in itertools.permutations(range(K)):
        before = frozenset()
        for k in order:
            phi[k] += v(before | {k}) - v(before)
            before = before | {k}
    return phi / math.factorial(K)
