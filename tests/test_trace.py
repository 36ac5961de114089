"""mx.trace: the quantity each method conserves, layer by layer, checked against independent computations."""
import matplotlib
import numpy as np
import pytest
from random_nets import _conv, randomize, sequential_model

import minixai as mx
from minixai import composites, models
from minixai.blocks import BasicBlock
from minixai.cli import main
from minixai.data import shapes
from minixai.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU
from minixai.rules import Epsilon, GuidedBackprop, ZPlus

matplotlib.use("Agg")


# ---- small float64 networks ------------------------------------------------------------------------------
def plain_net(seed, bias):
    """conv-relu-maxpool-conv-relu-avgpool-flatten-linear-relu-linear, float64."""
    layers = [("conv1", Conv2d(2, 4, 3, padding=1)), ("relu1", ReLU()), ("pool", MaxPool2d(2)),
              ("conv2", Conv2d(4, 5, 3, padding=1)), ("relu2", ReLU()), ("gap", AdaptiveAvgPool2d(2)),
              ("flatten", Flatten()), ("fc1", Linear(20, 6)), ("relu3", ReLU()), ("fc", Linear(6, 3))]
    return randomize(sequential_model(layers), np.random.default_rng(seed), bias=bias)


def residual_net(seed):
    """conv-relu-BasicBlock(downsample)-avgpool-flatten-linear without any bias, batch norms whose shift is 0
    (so that folding them leaves no bias either)."""
    layers = [("conv1", Conv2d(2, 3, 3, padding=1, bias=False)), ("relu", ReLU()),
              ("layer1", BasicBlock(3, 4, stride=2)), ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()),
              ("fc", Linear(4, 3, bias=False))]
    model = randomize(sequential_model(layers), np.random.default_rng(seed), bias=False)
    for _, layer in model.named_layers():
        if isinstance(layer, BatchNorm2d):
            scale, _ = layer.scale_shift(np.float64)
            layer.bias = layer.running_mean * scale              # shift = bias - mean * scale = 0
    return model


def images(seed, shape=(2, 2, 8, 8)):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- an independent LRP in matrix form ----------------------------------------------------------------------
def dense_net(seed, bias):
    """conv-relu-conv(stride 2)-relu-flatten-linear-relu-linear on (2, 6, 6) inputs, float64."""
    layers = [("conv1", Conv2d(2, 3, 3, padding=1)), ("relu1", ReLU()), ("conv2", Conv2d(3, 2, 3, stride=2, padding=1)),
              ("relu2", ReLU()), ("flatten", Flatten()), ("fc1", Linear(18, 4)), ("relu3", ReLU()),
              ("fc", Linear(4, 3))]
    return randomize(sequential_model(layers), np.random.default_rng(seed), bias=bias)


def as_matrix(layer, in_shape):
    """(A, b, out_shape) with layer(x).ravel() = A @ x.ravel() + b for one image x of in_shape: a conv by its
    response to each basis image (random_nets' NumPy convolution), a linear layer as it is."""
    if isinstance(layer, Linear):
        b = np.zeros(layer.out_features) if layer.bias is None else layer.bias
        return layer.weight, b, (layer.out_features,)
    d = int(np.prod(in_shape))
    response = _conv(np.eye(d).reshape(d, *in_shape), layer.weight, None, layer.stride, layer.padding,
                     layer.dilation)
    out_shape = response.shape[1:]
    b = np.zeros(out_shape) if layer.bias is None else np.broadcast_to(layer.bias[:, None, None], out_shape)
    return response.reshape(d, -1).T, b.ravel(), out_shape


def slow_lrp_epsilon(model, x, target, epsilon):
    """LRP-epsilon on one image, every layer a matrix: {conv/linear layer name: (relevance entering its
    input, relevance its bias and the stabiliser absorb = sum_j s_j (b_j + epsilon sign z_j))}."""
    steps, a, shape = [], x.ravel(), x.shape
    for name, layer in model.named_layers():                  # forward: keep each layer's input and matrix
        if isinstance(layer, ReLU):
            a = np.maximum(a, 0)
        elif isinstance(layer, (Conv2d, Linear)):
            A, b, shape = as_matrix(layer, shape)
            steps.append((name, a, A, b))
            a = A @ a + b
    R = np.zeros_like(a)
    R[target] = a[target]
    found = {}
    for name, a_in, A, b in reversed(steps):                  # backward: ReLUs pass R unchanged
        z = A @ a_in + b
        sign = np.where(z >= 0, 1.0, -1.0)
        denominator = z + epsilon * sign
        s = np.divide(R, denominator, out=np.zeros_like(R), where=denominator != 0)
        R = a_in * (A.T @ s)
        found[name] = (float(R.sum()), float((s * (b + epsilon * sign)).sum()))
    return found


# ---- conservation ------------------------------------------------------------------------------------------
def test_lrp0_conserves_the_logit_at_every_layer_of_a_bias_free_relu_net():
    model, x = plain_net(0, bias=False), images(1)
    t = mx.trace(model, x, [0, 2], rule=composites.epsilon(0.0))
    logits = model(x)
    np.testing.assert_allclose(t.start, logits[[0, 1], [0, 2]], rtol=1e-12)
    assert t.sums.shape == (2, len(t.layers)) and t.layers[0] == "fc" and t.layers[-1] == "conv1"
    for values in (t.sums, t.local, t.local_out):
        np.testing.assert_allclose(values, np.broadcast_to(t.start[:, None], values.shape), rtol=0, atol=1e-9)


def test_lrp0_conserves_across_a_residual_join_and_the_split_adds_up():
    model, x = residual_net(2), images(3, (2, 2, 6, 6))
    t = mx.trace(model, x, 1, rule=composites.epsilon(0.0))
    np.testing.assert_allclose(t.sums, np.broadcast_to(t.start[:, None], t.sums.shape), rtol=0, atol=1e-9)
    add = t.index("layer1.add")
    parts = t.splits["layer1.add"]
    np.testing.assert_allclose(parts.sum(axis=1), t.local[:, add], rtol=1e-12)
    assert np.all(np.abs(parts) > 1e-6), "the shortcut and the main path should both carry relevance"
    inside = t.index("layer1.conv2")                   # on the main path: only its share enters its input
    np.testing.assert_allclose(t.local[:, inside], parts[:, 0], rtol=1e-9)


def test_the_epsilon_composite_shows_what_the_stabiliser_absorbs():
    model, x = dense_net(4, bias=False), images(5, (1, 2, 6, 6))
    t = mx.trace(model, x, 1, rule="epsilon")                         # epsilon = 1e-6
    slow = slow_lrp_epsilon(model, x[0], 1, 1e-6)
    absorbed = np.array([-t.change[0, t.index(name)] for name in slow])
    expected = np.array([slow[name][1] for name in slow])
    assert np.abs(expected).max() > 1e-12, "the stabiliser should absorb something"
    assert np.abs(expected).max() < 1e-4 * abs(t.start[0]), "... but only a little"
    np.testing.assert_allclose(absorbed, expected, rtol=1e-6, atol=1e-15)
    for name in slow:
        np.testing.assert_allclose(t.local[0, t.index(name)], slow[name][0], rtol=1e-10)


def test_with_biases_lrp0_loses_exactly_what_the_biases_absorb():
    model, x = dense_net(6, bias=True), images(7, (1, 2, 6, 6))
    t = mx.trace(model, x, 2, rule=composites.epsilon(0.0))
    slow = slow_lrp_epsilon(model, x[0], 2, 0.0)                    # s_j b_j summed, from a matrix-form pass
    for name, (entering, by_bias) in slow.items():
        i = t.index(name)
        np.testing.assert_allclose(-t.change[0, i], by_bias, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(t.local[0, i], entering, rtol=1e-9, atol=1e-12)
    assert max(abs(b) for _, b in slow.values()) > 1e-3, "biases this size should absorb visibly"
    np.testing.assert_allclose(t.sums[0, -1], t.start[0] - sum(b for _, b in slow.values()), rtol=1e-9)


def test_z_plus_conserves_on_a_bias_free_net():
    model, x = plain_net(8, bias=False), np.abs(images(9)) + 0.1          # z+ on positive activations
    zplus = composites.Composite([(ReLU, composites.Pass()), ((Conv2d, Linear), ZPlus(1e-12))])
    t = mx.trace(model, x, 0, rule=zplus)
    np.testing.assert_allclose(t.sums, np.broadcast_to(t.start[:, None], t.sums.shape), rtol=1e-9)


def test_gradient_x_activation_is_conserved_on_a_bias_free_relu_net():
    model, x = plain_net(10, bias=False), images(11)
    t = mx.trace(model, x, 1)
    np.testing.assert_allclose(t.sums, np.broadcast_to(t.start[:, None], t.sums.shape), rtol=0, atol=1e-9)
    np.testing.assert_allclose(t.start, model(x)[:, 1], rtol=1e-12)


@pytest.mark.parametrize("arch", ["vgg16", "resnet50"])
def test_deeplift_sums_to_delta_at_every_layer(arch):
    model = getattr(models, arch)(seed=0).astype(np.float64)
    x = np.random.default_rng(12).standard_normal((1, 3, 64, 64))
    t = mx.trace(model, x, 7, rule="deeplift")
    black = mx.baselines.make_baseline("black", x, model.spec)
    delta = model(x)[0, 7] - model(black)[0, 7]                           # F(x) - F(x'), an ordinary forward
    np.testing.assert_allclose(t.start, [delta], rtol=1e-12)
    assert abs(delta) > 1e-6
    np.testing.assert_allclose(t.sums[0], np.full(len(t.layers), delta), rtol=0, atol=1e-10)
    assert len(t.layers) > 30 and (arch == "vgg16" or "layer4.2.add" in t.splits)


# ---- the trace's input layer is the method ---------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes_case():
    batch = shapes.generate(3, seed=5)
    return models.load("shapes"), batch.images, batch.labels


@pytest.mark.parametrize("name", list(composites.COMPOSITES))
def test_every_named_composite_traces_to_mx_lrp(shapes_case, name):
    model, x, y = shapes_case
    t = mx.trace(model, x, y, rule=name)
    expected = mx.lrp(model, x, y, composite=name)
    np.testing.assert_allclose(t.attribution, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(t.sums[:, -1], expected.sum(axis=(1, 2, 3)), rtol=1e-4)
    assert t.attribution.dtype == np.float32 and t.sums.dtype == np.float32


def test_a_composite_object_traces_to_mx_lrp(shapes_case):
    model, x, y = shapes_case
    custom = composites.Composite([(ReLU, composites.Pass()), (Conv2d, ZPlus()), (Linear, Epsilon(0.01))])
    t = mx.trace(model, x, y, rule=custom)
    np.testing.assert_allclose(t.attribution, mx.lrp(model, x, y, composite=custom), rtol=1e-6, atol=1e-9)
    assert t.method == "LRP (composite)"


@pytest.mark.parametrize("rule, method", [("deeplift", mx.deeplift), (None, mx.gradient_x_input)])
def test_deeplift_and_gradient_trace_to_their_methods(shapes_case, rule, method):
    model, x, y = shapes_case
    t = mx.trace(model, x, y, rule=rule)
    expected = method(model, x, y)
    np.testing.assert_allclose(t.attribution, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_a_resnet_trace_ends_in_its_method():
    model = models.resnet18(seed=1)
    x = np.random.default_rng(13).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for rule, expected in (("epsilon_plus_flat", mx.lrp(model, x, 4)), ("deeplift", mx.deeplift(model, x, 4))):
        t = mx.trace(model, x, 4, rule=rule)
        np.testing.assert_allclose(t.attribution, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_float64_stays_float64():
    model, x = plain_net(14, bias=True), images(15)
    for rule in (None, "deeplift", "epsilon_plus_flat"):
        baseline = "zeros" if rule == "deeplift" else None            # the net has no spec: no "black"
        t = mx.trace(model, x, 0, rule=rule, baseline=baseline)
        assert t.attribution.dtype == np.float64 and t.sums.dtype == np.float64
        assert t.start.dtype == np.float64 and all(m.dtype == np.float64 for m in t.maps.values())


def test_target_none_traces_the_sum_of_the_logits():
    model, x = plain_net(16, bias=False), images(17)
    t = mx.trace(model, x, None)
    np.testing.assert_allclose(t.start, model(x).sum(axis=1), rtol=1e-12)
    assert "sum of all logits" in t.table()


# ---- errors -------------------------------------------------------------------------------------------------
def test_bad_arguments_are_refused_clearly(shapes_case):
    model, x, y = shapes_case
    with pytest.raises(ValueError, match="valid: None or 'gradient', 'deeplift', 'epsilon_plus_flat'"):
        mx.trace(model, x, y, rule="lrp")
    with pytest.raises(TypeError, match="only these methods conserve"):
        mx.trace(model, x, y, rule=GuidedBackprop())
    with pytest.raises(ValueError, match="DeepLIFT's reference"):
        mx.trace(model, x, y, rule="epsilon", baseline="white")
    with pytest.raises(ValueError, match="out of range"):
        mx.trace(model, x, 9)
    t = mx.trace(model, x, y)
    with pytest.raises(ValueError, match="image index in 0..2"):
        t.table(sample=3)
    with pytest.raises(ValueError, match="layers with maps: features.0"):
        t.plot(maps=["classifier.0"])
    with pytest.raises(ValueError, match="not in this trace"):
        t.index("layer9")


# ---- the views ----------------------------------------------------------------------------------------------
def test_table_and_plot_show_every_layer(shapes_case):
    model, x, y = shapes_case
    t = mx.trace(model, x, y, rule="epsilon_plus_flat")
    text = t.table(1, class_names=shapes.CLASS_NAMES)
    rows = text.splitlines()
    assert f"'{shapes.CLASS_NAMES[y[1]]}'" in rows[0] and f"{t.start[1]:.6g}" in rows[1]
    assert [row.split()[0] for row in rows[3:-1]] == t.layers
    fig = t.plot(sample=1, maps=["features.0", "features.6"])
    bars = fig.axes[0].patches
    assert len(bars) == len(t.layers)
    np.testing.assert_allclose([b.get_height() for b in bars], t.sums[1, ::-1], rtol=1e-6)
    assert len(fig.axes) == 4
    matplotlib.pyplot.close(fig)


def test_cli_trace_prints_the_table_and_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "trace.png"
    assert main(["trace", "shapes:2", "--model", "shapes", "--method", "lrp", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "LRP epsilon_plus_flat" in printed and "features.0" in printed and str(out) in printed
    assert out.stat().st_size > 10_000
    assert main(["trace", "shapes:2", "--method", "deeplift", "--out", str(out), "--maps", "features.3"]) == 0
    assert "DeepLIFT-Rescale, black baseline" in capsys.readouterr().out
    assert main(["trace", "shapes:2", "--composite", "nope", "--out", str(out)]) == 1
    assert "valid: epsilon_plus_flat" in capsys.readouterr().err
    assert main(["trace", "shapes:2", "--method", "lrp", "--baseline", "white", "--out", str(out)]) == 1
