"""Shared by the tests of minixai.evaluation: small float64 models whose outputs the tests compute by hand."""
import numpy as np

from minixai.layers import Flatten, Linear, Sequential
from minixai.model import Model
from minixai.spec import InputSpec


def linear_model(shape=(2, 4, 4), classes=3, seed=0):
    """f(x) = W vec(x) + b in float64, and (W, b): every score the metrics need is W @ x + b."""
    rng = np.random.default_rng(seed)
    linear = Linear(int(np.prod(shape)), classes)
    linear.weight, linear.bias = rng.standard_normal((classes, linear.in_features)), rng.standard_normal(classes)
    spec = InputSpec(mean=(0.5,) * shape[0], std=(0.25,) * shape[0], size=shape[1:])
    return Model(Sequential(Flatten(), linear, names=["flatten", "fc"]), spec, "linear"), linear.weight, linear.bias


def logits(W, b, x):
    """W vec(x) + b for a batch (N, C, H, W) -> (N, classes)."""
    return x.reshape(len(x), -1) @ W.T + b


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
