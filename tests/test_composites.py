"""Composites (which rule each layer gets) and the batch-norm canonizer, on small random models.

Relevance is checked against `slow_epsilon` of test_rules, the epsilon rule written out by hand.
"""
import numpy as np
import pytest

from minixai.blocks import BasicBlock
from minixai.canonizers import merge_batchnorm
from minixai.composites import Composite
from minixai.layers import (Add, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU,
                            Sequential)
from minixai.model import Model
from minixai.rules import Epsilon, Gradient
from test_rules import slow_epsilon


pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


# ---- composites --------------------------------------------------------------------------------------
class Spy(Gradient):
    """The plain gradient, remembering which layers it was asked to handle."""

    def __init__(self):
        self.names = []

    def backward(self, layer, ctx, dout):
        self.names.append(layer.name)
        return layer.grad(ctx, dout)


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    layers = [("conv1", Conv2d(2, 3, 3, padding=1)), ("relu1", ReLU()), ("pool", MaxPool2d(2)),
              ("conv2", Conv2d(3, 4, 3, padding=1)), ("relu2", ReLU()), ("conv3", Conv2d(4, 4, 1)),
              ("relu3", ReLU()), ("gap", AdaptiveAvgPool2d(1)), ("flatten", Flatten()),
              ("fc1", Linear(4, 5)), ("relu4", ReLU()), ("fc", Linear(5, 3))]
    model = Model(Sequential(*[l for _, l in layers], names=[n for n, _ in layers]))
    for _, layer in model.named_layers():
        for attr in layer.parameters():
            setattr(layer, attr, rng.standard_normal(getattr(layer, attr).shape))
    return model, rng.standard_normal((2, 2, 6, 6))


def backward_with(model, x, rule):
    logits = model(x)
    seed = np.zeros_like(logits)
    seed[:, 1] = 1
    return model.backward(seed, rule)


def test_composite_name_map_overrides_layer_map():
    model, x = small_model()
    by_type, by_name = Spy(), Spy()
    backward_with(model, x, Composite(layer_map=[(Conv2d, by_type)], name_map={"conv2": by_name}))
    assert by_type.names == ["conv3", "conv1"]
    assert by_name.names == ["conv2"]


def test_composite_name_map_overrides_first_layer_rule():
    model, x = small_model()
    first, by_name = Spy(), Spy()
    backward_with(model, x, Composite(name_map={"conv1": by_name}, first=(Conv2d, first)))
    assert by_name.names == ["conv1"] and first.names == []


def test_composite_first_rule_goes_to_the_first_matching_layer_only():
    model, x = small_model()
    by_type, first = Spy(), Spy()
    backward_with(model, x, Composite(layer_map=[((Conv2d, Linear), by_type)], first=((Conv2d, Linear), first)))
    assert first.names == ["conv1"]
    assert by_type.names == ["fc", "fc1", "conv3", "conv2"]
    # first by type: the first Linear is fc1 even though convolutions come before it
    by_type, first = Spy(), Spy()
    backward_with(model, x, Composite(layer_map=[(Linear, by_type)], first=(Linear, first)))
    assert first.names == ["fc1"] and by_type.names == ["fc"]
    # in forward order through nested blocks: the first residual join is layer1's
    model, x = resnet_like()
    by_type, first = Spy(), Spy()
    backward_with(model, x, Composite(layer_map=[(Add, by_type)], first=(Add, first)))
    assert first.names == ["layer1.add"] and by_type.names == ["layer2.add"]


def test_composite_layer_map_first_match_wins():
    model, x = small_model()
    a, b = Spy(), Spy()
    backward_with(model, x, Composite(layer_map=[(Linear, a), ((Linear, Conv2d), b)]))
    assert a.names == ["fc", "fc1"] and b.names == ["conv3", "conv2", "conv1"]


def test_composite_unmatched_layers_get_the_gradient():
    model, x = small_model()
    gradient = backward_with(model, x, None)
    spy = Spy()
    composite = Composite(layer_map=[(Linear, spy)])
    np.testing.assert_array_equal(backward_with(model, x, composite), gradient)
    assert spy.names == ["fc", "fc1"]
    assert composite.rule_for(model["conv1"]) is None and composite.rule_for(model["relu1"]) is None
    np.testing.assert_array_equal(backward_with(model, x, Composite()), gradient)
    # a real LRP rule on the dense layers only: below fc1 the signal is the gradient of the relevance at fc1
    got = backward_with(model, x, Composite(layer_map=[(Linear, Epsilon(0.1))]))
    np.testing.assert_allclose(got, _gradient_through_features(model, x, _relevance_at_fc1(model, x)),
                               rtol=1e-10, atol=1e-12)


def _relevance_at_fc1(model, x):
    """Epsilon(0.1) on fc and fc1 with the gradient of relu4 between them, written out by hand."""
    feats = model.activations(x, ["flatten"])["flatten"]
    fc1, fc = model["fc1"], model["fc"]
    h = feats @ fc1.weight.T + fc1.bias
    a = np.maximum(h, 0)
    z = a @ fc.weight.T + fc.bias
    seed = np.zeros_like(z)
    seed[:, 1] = 1
    R = np.stack([slow_epsilon(a[n], fc.weight, fc.bias, seed[n], 0.1) for n in range(2)])
    R = R * (h > 0)
    return np.stack([slow_epsilon(feats[n], fc1.weight, fc1.bias, R[n], 0.1) for n in range(2)])


def _gradient_through_features(model, x, R):
    """The plain gradient of sum(features(x) * R) with respect to x, via the layers' own backward."""
    features = model.submodel(end="flatten")
    return features.backward(R, tape=features.record(x))


# ---- canonizer ---------------------------------------------------------------------------------------
def resnet_like(seed=0):
    rng = np.random.default_rng(seed)
    layers = [("conv1", Conv2d(3, 4, 3, padding=1, bias=False)), ("bn1", BatchNorm2d(4)), ("relu", ReLU()),
              ("layer1", BasicBlock(4, 4)), ("layer2", BasicBlock(4, 6, stride=2)),
              ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("fc", Linear(6, 3))]
    model = Model(Sequential(*[l for _, l in layers], names=[n for n, _ in layers]))
    for _, layer in model.named_layers():
        if isinstance(layer, BatchNorm2d):
            layer.weight, layer.bias = rng.uniform(0.5, 1.5, layer.num_features), rng.normal(0, 0.5, layer.num_features)
            layer.running_mean = rng.normal(0, 0.5, layer.num_features)
            layer.running_var = rng.uniform(0.3, 3.0, layer.num_features)
        else:
            for attr in layer.parameters():
                setattr(layer, attr, rng.standard_normal(getattr(layer, attr).shape) * 0.5)
    return model, rng.standard_normal((2, 3, 8, 8))


def test_merge_batchnorm_keeps_the_logits_and_the_original():
    model, x = resnet_like()
    assert model["layer2"].downsample is not None
    before = {k: v.copy() for k, v in model.state_dict().items()}
    layers_before = dict(model.named_layers())
    logits = model(x).copy()
    folded = merge_batchnorm(model)
    np.testing.assert_allclose(folded(x), logits, rtol=1e-10, atol=1e-12)
    assert not any(isinstance(layer, BatchNorm2d) for _, layer in folded.named_layers())
    assert folded.layer_names() == model.layer_names()
    # the original is untouched: same layer objects, same arrays, same logits
    assert dict(model.named_layers()) == layers_before
    assert all(isinstance(layer, type(layers_before[name])) for name, layer in model.named_layers())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    np.testing.assert_array_equal(model(x), logits)


def test_merge_batchnorm_folds_by_the_formula():
    """w' = w gamma / sqrt(var + eps), b' = beta - mean gamma / sqrt(var + eps) (conv without bias)."""
    model, _ = resnet_like(1)
    folded = merge_batchnorm(model)
    for conv_name, bn_name in [("conv1", "bn1"), ("layer1.conv2", "layer1.bn2"), ("layer2.conv1", "layer2.bn1"),
                               ("layer2.downsample.0", "layer2.downsample.1")]:
        conv, bn = model[conv_name], model[bn_name]
        scale = bn.weight / np.sqrt(bn.running_var + bn.eps)
        np.testing.assert_allclose(folded[conv_name].weight, conv.weight * scale[:, None, None, None], rtol=1e-12)
        np.testing.assert_allclose(folded[conv_name].bias, bn.bias - bn.running_mean * scale, rtol=1e-12, atol=1e-15)
