"""models.inception_v3 and its blocks (minixai.inception_blocks) without torch: torchvision's names, sizes and
parameter count, the blocks' backward against finite differences, the auxiliary head, the input transform,
the spec and the registry entry, batch-norm folding and fusion."""
import numpy as np
import pytest

import minixai as mx
from gradcheck import check_layer
from minixai import fusion, models
from minixai import weights as weight_store
from minixai.canonizers import merge_batchnorm
from minixai.inception_blocks import (BasicConv2d, InceptionA, InceptionAux, InceptionB, InceptionC, InceptionD,
                                      InceptionE, InputTransform)
from minixai.layers import BatchNorm2d, Conv2d
from test_fusion import random_model

NUM_PARAMS = 27_161_264                 # torchvision's published count (auxiliary head included)

# a handful of torchvision's named_modules() names
TORCHVISION_NAMES = ["Conv2d_1a_3x3", "Conv2d_1a_3x3.conv", "Conv2d_1a_3x3.bn", "maxpool1", "Conv2d_4a_3x3.bn",
                     "maxpool2", "Mixed_5b.branch_pool.conv", "Mixed_5d.branch3x3dbl_3.bn", "Mixed_6a.branch3x3",
                     "Mixed_6b.branch7x7_2.conv", "Mixed_6e.branch7x7dbl_5.bn", "AuxLogits.conv0.conv",
                     "AuxLogits.conv1.bn", "AuxLogits.fc", "Mixed_7a.branch7x7x3_4.conv", "Mixed_7b.branch3x3_2b",
                     "Mixed_7c.branch3x3dbl_3a.conv", "Mixed_7c", "avgpool", "dropout", "fc"]


@pytest.fixture(scope="module")
def model():
    return models.inception_v3(seed=0)


def images(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def random_batchnorm_model(transform_input=True):
    """Inception v3 in float64 with test_fusion's random batch-norm statistics (the identity init would hide a
    wrong scale), and the input transform on."""
    state = random_model("inception_v3", np.float64).state_dict()
    return models.inception_v3(weights=state, transform_input=transform_input).astype(np.float64)


# ---- architecture ------------------------------------------------------------------------------------------
def test_names_parameters_and_batchnorm_eps(model):
    names = model.layer_names()
    assert set(TORCHVISION_NAMES) <= set(names)
    assert sum(getattr(layer, attr).size for _, layer, attr in model.parameters()) == NUM_PARAMS
    bns = [layer for _, layer in model.named_layers() if isinstance(layer, BatchNorm2d)]
    assert len(bns) == 96 and all(bn.eps == 0.001 for bn in bns)
    assert all(layer.bias is None for _, layer in model.named_layers() if isinstance(layer, Conv2d))
    assert "transform_input" not in names and model.arch == "inception_v3"
    assert model.spec.size == (299, 299) and model.spec.num_classes == 1000
    assert model["Conv2d_2a_3x3"]["relu"].name == "Conv2d_2a_3x3.relu"      # engine-only ReLU, as ResNet's relu1


def test_shapes_along_the_main_path(model):
    """Table 1 of the paper: 299 -> 35x35x288 -> 17x17x768 -> 8x8x2048; any size >= 75 runs."""
    acts = model.activations(images((1, 3, 299, 299)), ["maxpool2", "Mixed_5d", "Mixed_6e", "Mixed_7c", "fc"])
    assert acts["maxpool2"].shape == (1, 192, 35, 35) and acts["Mixed_5d"].shape == (1, 288, 35, 35)
    assert acts["Mixed_6e"].shape == (1, 768, 17, 17) and acts["Mixed_7c"].shape == (1, 2048, 8, 8)
    assert acts["fc"].shape == (1, 1000)
    assert model(images((2, 3, 75, 90))).shape == (2, 1000)
    assert model.activations(images((1, 3, 75, 75)), ["Mixed_7c"])["Mixed_7c"].shape == (1, 2048, 1, 1)


def test_options_and_errors():
    small = models.inception_v3(seed=0, num_classes=10, aux_logits=False, dropout=0.2)
    assert small.num_outputs == 10 and not any(n.startswith("AuxLogits") for n in small.layer_names())
    assert small["dropout"].p == 0.2 and models.inception_v3(seed=0, transform_input=True).layer_names()[0] == \
        "transform_input"
    with pytest.raises(ValueError, match="missing keys: AuxLogits"):
        models.inception_v3(weights={k: v for k, v in small.state_dict().items()}, num_classes=10)
    loaded = models.inception_v3(weights=small.state_dict(), num_classes=10, aux_logits=False)
    x = images((1, 3, 80, 80))
    np.testing.assert_array_equal(loaded(x), small(x))


def test_same_seed_same_weights():
    a, b = models.inception_v3(seed=3), models.inception_v3(seed=3)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])


# ---- blocks -------------------------------------------------------------------------------------------------
def random_block(block, seed=0):
    """The block in float64 with random batch-norm statistics (the identity init would hide a wrong scale)."""
    rng = np.random.default_rng(seed)
    stack = [block]
    while stack:
        layer = stack.pop()
        stack += list(layer.children().values())
        if isinstance(layer, Conv2d):
            fan_in = layer.weight[0].size
            layer.weight = rng.normal(0, np.sqrt(2 / fan_in), layer.weight.shape)
        if isinstance(layer, BatchNorm2d):
            n = layer.num_features
            layer.weight, layer.bias = rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)
            layer.running_mean, layer.running_var = rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)
    return block


@pytest.mark.parametrize("block, size, channels", [
    (InceptionA(4, pool_features=3), 5, 64 + 64 + 96 + 3),
    (InceptionB(4), 7, 384 + 96 + 4),
    (InceptionC(4, channels_7x7=2), 7, 4 * 192),
    (InceptionD(4), 7, 320 + 192 + 4),
    (InceptionE(4), 3, 320 + 2 * 384 + 2 * 384 + 192),
], ids=["A", "B", "C", "D", "E"])
def test_block_backward_matches_finite_differences(block, size, channels):
    """Every branch of every block type: 1x7/7x1 and 1x3/3x1 kernels, stride-2 reductions, the padded average
    pool, block E's split branches. Small inputs (4 channels) keep the finite differences quick."""
    x = np.random.default_rng(1).normal(size=(2, 4, size, size))
    out = check_layer(random_block(block), x)
    assert out.shape[1] == channels
    ranges = sorted(block.channels_of().values())
    assert ranges[0][0] == 0 and ranges[-1][1] == channels
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))         # the branches tile the channels


def test_channels_of_names_each_branch_by_its_last_layer(model):
    """Block E's split branches count separately; a branch's channels are its last layer's output."""
    x = images((1, 3, 107, 107))
    names = ["Mixed_7c", "Mixed_7c.branch3x3_2b", "Mixed_6a", "Mixed_6a.pool", "Mixed_5b", "Mixed_5b.branch_pool"]
    acts = model.activations(x, names)
    ranges = model["Mixed_7c"].channels_of()
    assert ranges["branch3x3_2b"] == (704, 1088)
    first, stop = ranges["branch3x3_2b"]
    np.testing.assert_array_equal(acts["Mixed_7c"][:, first:stop], acts["Mixed_7c.branch3x3_2b"])
    first, stop = model["Mixed_6a"].channels_of()["pool"]
    np.testing.assert_array_equal(acts["Mixed_6a"][:, first:stop], acts["Mixed_6a.pool"])
    first, stop = model["Mixed_5b"].channels_of()["branch_pool"]
    np.testing.assert_array_equal(acts["Mixed_5b"][:, first:stop], acts["Mixed_5b.branch_pool"])


def test_average_pool_counts_the_padding():
    """PyTorch's count_include_pad=True: a corner of a constant map averages 4 ones over 9 places."""
    pool = InceptionA(1, 1).pool
    out = pool(np.ones((1, 1, 4, 4)))
    assert out[0, 0, 0, 0] == pytest.approx(4 / 9) and out[0, 0, 1, 1] == pytest.approx(1.0)


def test_basic_conv_is_conv_bn_relu():
    block = random_block(BasicConv2d(3, 5, (1, 3), padding=(0, 1)))
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 4))
    scale, shift = block["bn"].scale_shift(np.float64)
    expected = np.maximum(block["conv"](x) * scale[:, None, None] + shift[:, None, None], 0)
    np.testing.assert_allclose(block(x), expected, rtol=1e-13)
    assert block["bn"].eps == 0.001 and block["conv"].bias is None
    check_layer(block, x)


def test_auxiliary_head_is_skipped_but_computable(model):
    """In a pass the head hands Mixed_6e's output on; logits() runs it (avg-pool 5/3, conv0, conv1, GAP, fc)."""
    aux = model["AuxLogits"]
    x = images((2, 768, 17, 17))
    assert aux(x) is x
    logits = aux.logits(x)
    assert logits.shape == (2, 1000)
    pooled = mx.layers.AvgPool2d(5, stride=3)(x)                             # 17 -> 5
    features = aux.conv1(aux.conv0(pooled)).mean(axis=(2, 3))                # 5 -> 1
    np.testing.assert_allclose(logits, aux.fc(features), rtol=1e-5, atol=1e-6)
    assert isinstance(aux, InceptionAux)


def test_input_transform_maps_imagenet_inputs_to_minus_one_one():
    """Pixels p normalised with ImageNet's statistics come out as (p - 0.5) / 0.5; the gradient is the scale."""
    layer = InputTransform()
    pixels = np.random.default_rng(3).uniform(0, 1, (2, 3, 4, 5))
    x = mx.InputSpec().normalize(pixels)
    np.testing.assert_allclose(layer(x), (pixels - 0.5) / 0.5, rtol=1e-12, atol=1e-12)
    check_layer(layer, x)


# ---- weights, spec, registry --------------------------------------------------------------------------------
def test_imagenet_weights_turn_the_transform_on(model, monkeypatch):
    """weights="imagenet" goes through minixai.weights.fetch and sets transform_input, as torchvision's builder;
    the converted file's spec says 299 px. A dict of weights keeps transform_input off unless asked."""
    state = model.state_dict()
    checkpoint = weight_store.registry.get("inception_v3")
    monkeypatch.setattr(weight_store, "fetch", lambda name: name + ".npz")
    monkeypatch.setattr(weight_store, "load_npz", lambda path: (state, {"architecture": "inception_v3",
                                                                        "spec": checkpoint.spec}))
    imagenet = models.load("inception_v3")
    assert imagenet.layer_names()[0] == "transform_input" and imagenet.spec.size == (299, 299)
    assert models.inception_v3(weights=state).layer_names()[0] == "Conv2d_1a_3x3"
    x = images((1, 3, 80, 80))
    np.testing.assert_allclose(imagenet(x), model(InputTransform()(x)), rtol=1e-5, atol=1e-5)


def test_registry_entry_is_torchvisions():
    checkpoint = weight_store.registry.get("inception_v3")
    assert checkpoint.url == "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
    assert checkpoint.sha256_prefix == "0cc3c7bd" and checkpoint.num_params == NUM_PARAMS
    assert (checkpoint.input_size, checkpoint.resize_size, checkpoint.arch) == (299, 342, "inception_v3")


# ---- canonizer, fusion, gradient ----------------------------------------------------------------------------
def test_merge_batchnorm_folds_every_basic_conv():
    model = random_batchnorm_model()
    merged = merge_batchnorm(model)
    assert not any(isinstance(layer, BatchNorm2d) for _, layer in merged.named_layers())
    assert all(layer.bias is not None for _, layer in merged.named_layers() if isinstance(layer, Conv2d))
    x = images((2, 3, 80, 96), dtype=np.float64)
    np.testing.assert_allclose(merged(x), model(x), rtol=1e-10, atol=1e-10 * np.abs(model(x)).max())
    assert any(isinstance(layer, BatchNorm2d) for _, layer in model.named_layers())      # the original is kept


def test_fusion_puts_every_main_convolution_in_a_unit(model):
    """Every convolution that runs (all but the skipped auxiliary head's) sits in a fused ConvUnit."""
    units, stack = [], [fusion.fuse(model.root)]
    while stack:
        layer = stack.pop()
        if isinstance(layer, fusion.ConvUnit):
            units.append(layer)
        stack += list(layer.children().values())
    convs = {id(layer) for name, layer in model.named_layers()
             if isinstance(layer, Conv2d) and not name.startswith("AuxLogits")}
    assert {id(unit.conv) for unit in units} == convs
    assert all(unit.bn is not None and unit.relu is not None for unit in units)


def test_input_gradient_matches_finite_differences():
    """<grad f(x), v> = (f(x + eps v) - f(x - eps v)) / (2 eps), float64, random BN statistics, input transform."""
    model = random_batchnorm_model()
    x, v, targets = images((2, 3, 75, 83), 0, np.float64), images((2, 3, 75, 83), 1, np.float64), [1, 2]
    logits = model(x)
    seed = np.zeros_like(logits)
    seed[[0, 1], targets] = 1
    grad = model.backward(seed)
    eps = 1e-6
    f = [model(x + s * eps * v)[[0, 1], targets].sum() for s in (1, -1)]
    np.testing.assert_allclose((f[0] - f[1]) / (2 * eps), (grad * v).sum(), rtol=1e-5)
