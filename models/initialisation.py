"""Seeded random initialisation, the way torchvision initialises the same networks.

- Conv2d: He/Kaiming normal, fan-out mode, ReLU gain: w ~ N(0, 2 / (K R S)) for w of shape (K, C, R, S),
  bias 0 (He et al. 2015, "Delving deep into rectifiers", eq. 10 applied to the backward pass).
- BatchNorm2d: weight 1, bias 0, running mean 0, running variance 1.
- Linear, ``"normal"``: w ~ N(0, 0.01^2), bias 0 (torchvision's VGG classifier).
- Linear, ``"uniform"``: w, b ~ U(-1/sqrt(I), 1/sqrt(I)) for I inputs (PyTorch's default for nn.Linear,
  which torchvision keeps for ResNet's fc and AlexNet's classifier).

One numpy Generator seeded with ``seed`` draws every array in layer order: same seed, same weights.
Where this differs from torchvision: its AlexNet keeps PyTorch's default (uniform) init for the
convolutions too; here every convolution is He-normal.
"""
import numpy as np

from minixai.layers import BatchNorm2d, Conv2d, Linear

LINEAR_INITS = ("normal", "uniform")


def kaiming_normal(conv, rng):
    """He-normal weights (fan-out, ReLU gain sqrt(2)), zero bias."""
    K, _, R, S = conv.weight.shape
    std = np.sqrt(2.0 / (K * R * S))
    conv.weight = rng.standard_normal(conv.weight.shape, dtype=np.float32) * np.float32(std)
    if conv.bias is not None:
        conv.bias = np.zeros_like(conv.bias)


def linear_normal(linear, rng, std=0.01):
    linear.weight = rng.standard_normal(linear.weight.shape, dtype=np.float32) * np.float32(std)
    if linear.bias is not None:
        linear.bias = np.zeros_like(linear.bias)


def linear_uniform(linear, rng):
    bound = np.float32(1.0 / np.sqrt(linear.in_features))
    linear.weight = (2 * rng.random(linear.weight.shape, dtype=np.float32) - 1) * bound
    if linear.bias is not None:
        linear.bias = (2 * rng.random(linear.bias.shape, dtype=np.float32) - 1) * bound


def reset_batchnorm(bn):
    bn.weight = np.ones(bn.num_features, np.float32)
    bn.bias = np.zeros(bn.num_features, np.float32)
    bn.running_mean = np.zeros(bn.num_features, np.float32)
    bn.running_var = np.ones(bn.num_features, np.float32)


def initialise(model, seed=0, linear="normal"):
    """Fill every parameter of `model` with seeded random values (see the module docstring)."""
    if linear not in LINEAR_INITS:
        raise ValueError(f"unknown linear init {linear!r}; valid: {', '.join(LINEAR_INITS)}")
    rng = np.random.default_rng(seed)
    for _, layer in model.named_layers():
        if isinstance(layer, Conv2d):
            kaiming_normal(layer, rng)
        elif isinstance(layer, BatchNorm2d):
            reset_batchnorm(layer)
        elif isinstance(layer, Linear) and linear == "normal":
            linear_normal(layer, rng)
        elif isinstance(layer, Linear):
            linear_uniform(layer, rng)
    return model
