"""Every layer's backward against centred finite differences (float64), under every backend.

Input gradients are checked on hypothesis-drawn shapes; parameter gradients are checked in training
mode, and must not be computed at all in eval mode (explaining never pays for them).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minixai.blocks import BasicBlock, Bottleneck
from minixai.kernels import reference
from minixai.layers import (Add, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear,
                            MaxPool2d, ReLU, Sequential)

from gradcheck import backend_params, check_layer, numeric_gradient, run_layer, using

BACKENDS = backend_params()
FEW = settings(max_examples=8, deadline=None)
SOME = settings(max_examples=20, deadline=None)


# ---- helpers ---------------------------------------------------------------------------------------
def walk(layer, prefix=""):
    """(dotted name, layer) for a layer and all its descendants."""
    yield prefix, layer
    for name, child in layer.children().items():
        yield from walk(child, f"{prefix}.{name}" if prefix else name)


def parameters(layer):
    """(dotted path, owning layer, attribute) of every trainable array in the layer and its descendants."""
    return [(f"{name}.{attr}" if name else attr, sub, attr) for name, sub in walk(layer)
            for attr in sub.parameters() if getattr(sub, attr) is not None]


def randomize(layer, rng):
    """Random float64 parameters (and batch-norm statistics) everywhere in the layer."""
    for _, sub in walk(layer):
        for attr in (*sub.parameters(), *getattr(sub, "buffers", lambda: ())()):
            a = getattr(sub, attr)
            if a is None:
                continue
            if attr == "running_var":
                value = rng.uniform(0.5, 2.0, a.shape)
            elif isinstance(sub, BatchNorm2d) and attr == "weight":
                value = rng.uniform(0.5, 1.5, a.shape)
            else:
                value = rng.standard_normal(a.shape) * 0.5
            setattr(sub, attr, value)
    return layer


def set_training(layer, mode):
    for _, sub in walk(layer):
        sub.training = mode


def check_with_parameters(layer, *inputs, seed=0):
    """Input gradient and, in training mode, every parameter gradient against finite differences;
    in eval mode no parameter gradient is computed."""
    params = parameters(layer)
    set_training(layer, False)
    _, _, tape = run_layer(layer, *inputs, dout=np.ones_like(layer(*inputs)))
    assert not [path for path, sub, attr in params if hasattr(tape.contexts[sub], "d" + attr)], \
        "eval mode computed gradients"

    set_training(layer, True)
    check_layer(layer, *inputs, params=[path for path, _, _ in params], seed=seed)
    set_training(layer, False)


def draw_input(data, rng, max_n=2, max_c=3, hw=(1, 6)):
    shape = (data.draw(st.integers(1, max_n)), data.draw(st.integers(1, max_c)),
             data.draw(st.integers(*hw)), data.draw(st.integers(*hw)))
    return rng.standard_normal(shape)


def limit(backend, small, large):
    """The reference kernels are Python loops: smaller shapes there."""
    return small if backend == "reference" else large


# ---- convolution and linear ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16), bias=st.booleans())
def test_conv2d(backend, data, seed, bias):
    draw = data.draw
    R, S = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    big = limit(backend, 5, 7)
    # the smallest input with a non-empty output: H + 2P >= D(R - 1) + 1
    H = draw(st.integers(max(1, dilation[0] * (R - 1) + 1 - 2 * padding[0]), big))
    W = draw(st.integers(max(1, dilation[1] * (S - 1) + 1 - 2 * padding[1]), big))
    N, C, K = draw(st.integers(1, 2)), draw(st.integers(1, limit(backend, 2, 3))), draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    conv = randomize(Conv2d(C, K, (R, S), stride, padding, dilation, bias=bias), rng)
    with using(backend):
        check_with_parameters(conv, rng.standard_normal((N, C, H, W)), seed=seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(n=st.integers(1, 3), i=st.integers(1, 6), o=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear(backend, n, i, o, bias, seed):
    rng = np.random.default_rng(seed)
    with using(backend):
        check_with_parameters(randomize(Linear(i, o, bias=bias), rng), rng.standard_normal((n, i)), seed=seed)


# ---- element-wise and shape layers -------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_relu(backend, data, seed):
    rng = np.random.default_rng(seed)
    x = draw_input(data, rng)
    x = np.sign(x) * rng.uniform(0.1, 1.0, x.shape)          # away from the kink at 0
    with using(backend):
        out = check_layer(ReLU(), x, seed=seed)
    np.testing.assert_array_equal(out, np.maximum(x, 0))


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_flatten(backend, data, seed):
    rng = np.random.default_rng(seed)
    x = draw_input(data, rng)
    with using(backend):
        out = check_layer(Flatten(), x, seed=seed)
    assert out.shape == (x.shape[0], x[0].size)


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_add(backend, data, seed):
    rng = np.random.default_rng(seed)
    a = draw_input(data, rng)
    with using(backend):
        check_layer(Add(), a, rng.standard_normal(a.shape), seed=seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_batchnorm2d(backend, data, seed):
    rng = np.random.default_rng(seed)
    x = draw_input(data, rng)
    bn = randomize(BatchNorm2d(x.shape[1]), rng)
    with using(backend):
        check_with_parameters(bn, x, seed=seed)
        out = bn(x)
    c = (slice(None), None, None)
    expected = (x - bn.running_mean[c]) / np.sqrt(bn.running_var[c] + bn.eps) * bn.weight[c] + bn.bias[c]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)   # x*scale+shift vs the textbook order


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16), p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_dropout(backend, data, seed, p):
    rng = np.random.default_rng(seed)
    x = draw_input(data, rng)
    dropout = Dropout(p, seed=seed)
    dout = rng.standard_normal(x.shape)
    with using(backend):
        # eval: the identity, forward and backward
        np.testing.assert_array_equal(dropout(x), x)
        np.testing.assert_array_equal(run_layer(dropout, x, dout=dout)[1], dout)
        # training: the gradient uses the very mask of the forward (re-seeded so every forward draws it again)
        dropout.training = True

        def forward():
            dropout.rng = np.random.default_rng(seed)
            return dropout(x)

        dropout.rng = np.random.default_rng(seed)
        out, dx, _ = run_layer(dropout, x, dout=dout)
        np.testing.assert_allclose(dx, numeric_gradient(forward, x, dout), rtol=1e-5, atol=1e-7)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p))
    np.testing.assert_array_equal(dx[~kept], 0)


def test_dropout_rate():
    dropout = Dropout(0.3, seed=1)
    dropout.training = True
    out = dropout(np.ones((100, 100)))
    assert abs((out == 0).mean() - 0.3) < 0.03
    assert abs(out.mean() - 1.0) < 0.05          # the 1/(1-p) scale keeps the expectation


# ---- pooling ---------------------------------------------------------------------------------------
def distinct_values(rng, shape):
    """No ties (the max-pool gradient is not differentiable there): a shuffled, well separated ramp."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) / 10.0


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16), ceil_mode=st.booleans())
def test_maxpool2d(backend, data, seed, ceil_mode):
    draw = data.draw
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    big = limit(backend, 6, 8)
    H = draw(st.integers(max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0]), big))
    W = draw(st.integers(max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1]), big))
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W))
    # with dilation a window can fall wholly in the padding: its output is -inf, it has no gradient to give
    assume(np.isfinite(reference.maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)[0]).all())
    with using(backend):
        check_layer(MaxPool2d(kernel, stride, padding, dilation, ceil_mode), x, seed=seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_avgpool2d(backend, data, seed):
    draw = data.draw
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    big = limit(backend, 6, 8)
    H = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), big))
    W = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), big))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W))
    with using(backend):
        check_layer(AvgPool2d(kernel, stride, padding), x, seed=seed)


@pytest.mark.parametrize("backend", BACKENDS)
@SOME
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_adaptive_avgpool2d(backend, data, seed):
    rng = np.random.default_rng(seed)
    x = draw_input(data, rng, hw=(1, 7))
    # any output size, also ones that do not divide the input (overlapping windows) or exceed it
    size = (data.draw(st.integers(1, x.shape[2] + 2)), data.draw(st.integers(1, x.shape[3] + 2)))
    with using(backend):
        out = check_layer(AdaptiveAvgPool2d(size), x, seed=seed)
    assert out.shape == (*x.shape[:2], *size)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2), (5, 4), (7, 9)])
def test_pools_match_torch(size):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    with using("numpy"):
        ours = AdaptiveAvgPool2d(size)(x)
        avg = AvgPool2d(3, stride=2, padding=1)(x)
    np.testing.assert_allclose(ours, F.adaptive_avg_pool2d(torch.from_numpy(x), size).numpy(), rtol=1e-12)
    np.testing.assert_allclose(avg, F.avg_pool2d(torch.from_numpy(x), 3, 2, 1).numpy(), rtol=1e-12)


# ---- containers and residual blocks ------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@FEW
@given(hw=st.tuples(st.integers(2, 5), st.integers(2, 5)), seed=st.integers(0, 2**16))
def test_sequential(backend, hw, seed):
    rng = np.random.default_rng(seed)
    H, W = hw
    net = Sequential(Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), MaxPool2d(2, ceil_mode=True), ReLU(),
                     Dropout(0.5), AvgPool2d(1), Flatten(), Linear(3 * (-(-H // 2)) * (-(-W // 2)), 2))
    randomize(net, rng)
    net["4"].p = 0.0      # the mask is re-drawn on every training forward; Dropout has its own test
    with using(backend):
        check_with_parameters(net, rng.standard_normal((2, 2, H, W)), seed=seed)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride", [1, 2])
@FEW
@given(inplanes=st.integers(1, 3), planes=st.integers(1, 3), hw=st.tuples(st.integers(2, 5), st.integers(2, 5)),
       seed=st.integers(0, 2**16))
def test_basic_block(backend, stride, inplanes, planes, hw, seed):
    rng = np.random.default_rng(seed)
    block = randomize(BasicBlock(inplanes, planes, stride), rng)
    assert (block.downsample is None) == (stride == 1 and inplanes == planes)
    with using(backend):
        check_with_parameters(block, rng.standard_normal((1, inplanes, *hw)), seed=seed)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride", [1, 2])
@FEW
@given(planes=st.integers(1, 2), expand=st.booleans(), hw=st.tuples(st.integers(2, 4), st.integers(2, 4)),
       seed=st.integers(0, 2**16))
def test_bottleneck(backend, stride, planes, expand, hw, seed):
    rng = np.random.default_rng(seed)
    inplanes = planes * 4 if expand else planes          # 4 * planes in, stride 1: no downsample
    block = randomize(Bottleneck(inplanes, planes, stride), rng)
    assert (block.downsample is None) == (stride == 1 and inplanes == planes * 4)
    with using(backend):
        check_with_parameters(block, rng.standard_normal((1, inplanes, *hw)), seed=seed)
