"""The vectorised kernels (``minixai.kernels.xp`` on NumPy) against the naive loops of ``reference``,
and both against PyTorch where it is installed; batch-norm folding.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minixai as mx
from minixai.kernels import reference, xp
from minixai.canonizers import fold_batchnorm
from minixai.layers import BatchNorm2d, Conv2d

SETTINGS = settings(max_examples=50, deadline=None)


def pair(draw, lo, hi):
    return draw(st.integers(lo, hi)), draw(st.integers(lo, hi))


@st.composite
def conv_cases(draw):
    """(x, w, b, stride, padding, dilation), float64, odd and non-square sizes, output never empty."""
    (R, S), stride, padding, dilation = pair(draw, 1, 4), pair(draw, 1, 3), pair(draw, 0, 2), pair(draw, 1, 2)
    H = draw(st.integers(max(1, dilation[0] * (R - 1) + 1 - 2 * padding[0]), 9))
    W = draw(st.integers(max(1, dilation[1] * (S - 1) + 1 - 2 * padding[1]), 9))
    N, C, K = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = rng.standard_normal(K) if draw(st.booleans()) else None
    return rng.standard_normal((N, C, H, W)), rng.standard_normal((K, C, R, S)), b, stride, padding, dilation


@st.composite
def pool_cases(draw):
    """(x, kernel, stride, padding, dilation, ceil_mode); x holds small integers, so windows have ties."""
    kernel, stride, dilation = pair(draw, 1, 3), pair(draw, 1, 3), pair(draw, 1, 2)
    padding = draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2))    # torch's rule
    H = draw(st.integers(max(1, dilation[0] * (kernel[0] - 1) + 1 - 2 * padding[0]), 9))
    W = draw(st.integers(max(1, dilation[1] * (kernel[1] - 1) + 1 - 2 * padding[1]), 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-2, 3, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W)).astype(np.float64)
    return x, kernel, stride, padding, dilation, draw(st.booleans())


def assert_same(actual, expected):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


# ---- numpy == reference ------------------------------------------------------------------------------
@SETTINGS
@given(case=conv_cases())
def test_conv2d_matches_reference(case):
    x, w, b, stride, padding, dilation = case
    out = reference.conv2d_forward(x, w, b, stride, padding, dilation)
    assert_same(xp.conv2d_forward(x, w, b, stride, padding, dilation), out)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    assert_same(xp.conv2d_backward_input(dout, w, x.shape, stride, padding, dilation),
                reference.conv2d_backward_input(dout, w, x.shape, stride, padding, dilation))
    assert_same(xp.conv2d_backward_weight(dout, x, w.shape, stride, padding, dilation),
                reference.conv2d_backward_weight(dout, x, w.shape, stride, padding, dilation))


@SETTINGS
@given(case=conv_cases(), relu=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_conv2d_fused_scale_and_relu(case, relu, seed):
    """The epilogue of a fused conv -> batch norm -> ReLU: max(conv(x, w) * scale + b, 0), in both modules."""
    x, w, b, stride, padding, dilation = case
    scale = np.random.default_rng(seed).standard_normal(w.shape[0])
    plain = reference.conv2d_forward(x, w, None, stride, padding, dilation)
    expected = plain * scale[:, None, None] + (b[:, None, None] if b is not None else 0)
    expected = np.maximum(expected, 0) if relu else expected
    for module in (reference, xp):
        np.testing.assert_allclose(module.conv2d_forward(x, w, b, stride, padding, dilation, scale=scale, relu=relu),
                                   expected, rtol=1e-10, atol=1e-10)
    # with a residual join: max(conv(x, w) * scale + b + residual, 0)
    residual = np.random.default_rng(seed + 2).standard_normal(plain.shape)
    joined = plain * scale[:, None, None] + (b[:, None, None] if b is not None else 0) + residual
    joined = np.maximum(joined, 0) if relu else joined
    for module in (reference, xp):
        np.testing.assert_allclose(module.conv2d_forward(x, w, b, stride, padding, dilation, scale=scale, relu=relu,
                                                         residual=residual), joined, rtol=1e-10, atol=1e-10)
    # its backward: the gradient reaching the conv output is dout * scale where the ReLU's output is > 0
    dout = np.random.default_rng(seed + 1).standard_normal(plain.shape)
    gated = dout * scale[:, None, None] * (expected > 0) if relu else dout * scale[:, None, None]
    reference_dx = reference.conv2d_backward_input(gated, w, x.shape, stride, padding, dilation)
    for module in (reference, xp):
        dx = module.conv2d_backward_input(dout, w, x.shape, stride, padding, dilation, scale=scale,
                                          gate=expected if relu else None)
        np.testing.assert_allclose(dx, reference_dx, rtol=1e-10, atol=1e-10)
    # guided backprop's ReLU drops the negative part of dout first (clip), then masks
    clipped = np.maximum(dout, 0) * scale[:, None, None] * ((expected > 0) if relu else 1)
    clipped_dx = reference.conv2d_backward_input(clipped, w, x.shape, stride, padding, dilation)
    for module in (reference, xp):
        dx = module.conv2d_backward_input(dout, w, x.shape, stride, padding, dilation, scale=scale,
                                          gate=expected if relu else None, clip=True)
        np.testing.assert_allclose(dx, clipped_dx, rtol=1e-10, atol=1e-10)
    # a residual block's shortcut gradient, added to dx
    shortcut = np.random.default_rng(seed + 3).standard_normal(x.shape)
    for module in (reference, xp):
        dx = module.conv2d_backward_input(dout, w, x.shape, stride, padding, dilation, scale=scale,
                                          gate=expected if relu else None, residual=shortcut)
        np.testing.assert_allclose(dx, reference_dx + shortcut, rtol=1e-10, atol=1e-10)


def test_conv2d_keeps_float32():
    x, w = np.ones((1, 2, 5, 4), np.float32), np.ones((3, 2, 3, 3), np.float32)
    out = xp.conv2d_forward(x, w, np.zeros(3, np.float32), (2, 1), (1, 1), (1, 1))
    assert out.dtype == np.float32
    assert xp.conv2d_backward_input(out, w, x.shape, (2, 1), (1, 1), (1, 1)).dtype == np.float32
    assert xp.conv2d_backward_weight(out, x, w.shape, (2, 1), (1, 1), (1, 1)).dtype == np.float32


@SETTINGS
@given(case=pool_cases())
def test_maxpool2d_matches_reference_with_ties(case):
    x, kernel, stride, padding, dilation, ceil_mode = case
    out, argmax = reference.maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    xp_out, xp_argmax = xp.maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    assert_same(xp_out, out)
    np.testing.assert_array_equal(xp_argmax, argmax)        # ties: the first maximum in scan order wins
    dout = np.random.default_rng(0).standard_normal(out.shape)
    assert_same(xp.maxpool2d_backward(dout, xp_argmax, x.shape), reference.maxpool2d_backward(dout, argmax, x.shape))


def test_maxpool2d_first_maximum_wins():
    x = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0]]]])
    for kernels in (reference, xp):
        out, argmax = kernels.maxpool2d_forward(x, (2, 3), (1, 1), (0, 0), (1, 1), False)
        assert out.item() == 3.0 and argmax.item() == 1


def test_maxpool2d_window_wholly_in_the_padding():
    """With dilation a window can miss the input: its output is -inf, argmax -1, and it sends no gradient
    (torch gives the same output and gradient)."""
    x = np.array([[[[5.0, 7.0]]]])
    for kernels in (reference, xp):
        out, argmax = kernels.maxpool2d_forward(x, (1, 2), (1, 3), (0, 1), (1, 3), False)
        np.testing.assert_array_equal(out, [[[[-np.inf]]]])
        np.testing.assert_array_equal(argmax, [[[[-1]]]])
        np.testing.assert_array_equal(kernels.maxpool2d_backward(np.ones((1, 1, 1, 1)), argmax, x.shape), 0)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_maxpool2d_ceil_mode_keeps_the_last_partial_window(ceil_mode):
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    out, _ = xp.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), ceil_mode)
    expected = [[6, 8, 9], [16, 18, 19], [21, 23, 24]] if ceil_mode else [[6, 8], [16, 18]]
    np.testing.assert_array_equal(out[0, 0], expected)


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_relu_matches_reference(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(np.float32)        # zeros: the gradient does not pass at x = 0
    x.flat[::4] = np.nan
    dout = rng.standard_normal(shape).astype(np.float32)
    out = xp.relu_forward(x)
    np.testing.assert_array_equal(out, reference.relu_forward(x))
    kept = dout.copy()
    dx = xp.relu_backward(dout, out)
    np.testing.assert_array_equal(dx, reference.relu_backward(dout, out))
    np.testing.assert_array_equal(dout, kept)
    assert out.dtype == dx.dtype == np.float32


def test_relu_reference_is_the_definition():
    x = np.array([-1.0, -0.0, 0.0, 2.0, np.nan, -np.inf, np.inf])
    out = reference.relu_forward(x)
    np.testing.assert_array_equal(out, [0, 0, 0, 2, np.nan, 0, np.inf])
    dout = np.arange(7.0) + 1
    np.testing.assert_array_equal(reference.relu_backward(dout, out), [0, 0, 0, 4, 0, 0, 7])


# ---- both against PyTorch ----------------------------------------------------------------------------
@SETTINGS
@given(case=conv_cases())
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, w, b, stride, padding, dilation = case
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tout = torch.nn.functional.conv2d(tx, tw, None if b is None else torch.tensor(b), stride, padding, dilation)
    dout = np.random.default_rng(1).standard_normal(tuple(tout.shape))
    tout.backward(torch.tensor(dout))
    assert_same(xp.conv2d_forward(x, w, b, stride, padding, dilation), tout.detach().numpy())
    assert_same(xp.conv2d_backward_input(dout, w, x.shape, stride, padding, dilation), tx.grad.numpy())
    assert_same(xp.conv2d_backward_weight(dout, x, w.shape, stride, padding, dilation), tw.grad.numpy())


@SETTINGS
@given(case=pool_cases())
def test_maxpool2d_matches_torch_with_ties(case):
    torch = pytest.importorskip("torch")
    x, kernel, stride, padding, dilation, ceil_mode = case
    out, argmax = xp.maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    assume(np.isfinite(out).all())          # torch's argmax of a window wholly in the padding is arbitrary
    tx = torch.tensor(x, requires_grad=True)
    tout, tindex = torch.nn.functional.max_pool2d(tx, kernel, stride, padding, dilation, ceil_mode,
                                                  return_indices=True)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    for kernels in (xp, reference):
        out, argmax = kernels.maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
        assert_same(out, tout.detach().numpy())
        np.testing.assert_array_equal(argmax, tindex.numpy())
        assert_same(kernels.maxpool2d_backward(dout, argmax, x.shape), tx.grad.numpy())


# ---- batch-norm folding ------------------------------------------------------------------------------
@SETTINGS
@given(case=conv_cases())
def test_fold_batchnorm(case):
    x, w, b, stride, padding, dilation = case
    conv = Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride, padding, dilation, bias=b is not None)
    conv.weight, conv.bias = w, b
    rng = np.random.default_rng(2)
    bn = BatchNorm2d(w.shape[0], eps=1e-3)
    bn.weight, bn.bias = rng.uniform(0.5, 1.5, w.shape[0]), rng.standard_normal(w.shape[0])
    bn.running_mean, bn.running_var = rng.standard_normal(w.shape[0]), rng.uniform(0.1, 2.0, w.shape[0])
    folded = fold_batchnorm(conv, bn)
    with mx.use_backend("numpy"):
        np.testing.assert_allclose(folded(x), bn(conv(x)), rtol=1e-10, atol=1e-10)
    assert folded.weight.dtype == conv.weight.dtype and folded.bias.dtype == conv.weight.dtype
    assert (folded.stride, folded.padding, folded.dilation) == (conv.stride, conv.padding, conv.dilation)
