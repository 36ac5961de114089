"""The CPU kernels of the layers around the convolutions (max pooling, ReLU, the batch norm's affine map and
the residual join, dense layers) against ``kernels/reference.py`` or NumPy, and the BLAS's thread count inside
them. The convolutions are in test_kernels_cpu.py, whose helpers these tests share."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minixai.kernels import cpu, cpu_pointwise, reference
from minixai.kernels.sizes import pool_output_size
from test_kernels_cpu import SETTINGS, assert_close


@st.composite
def pool_cases(draw):
    pair = lambda lo, hi: (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))  # noqa: E731
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    (H, W), kernel, stride, dilation = pair(1, 12), pair(1, 4), pair(1, 3), pair(1, 2)
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))   # torch's limit
    ceil_mode = draw(st.booleans())
    for size, k, p, d in ((H, kernel[0], padding[0], dilation[0]), (W, kernel[1], padding[1], dilation[1])):
        assume(size + 2 * p - d * (k - 1) - 1 >= 0)
    return (N, C, H, W), kernel, stride, padding, dilation, ceil_mode, draw(st.integers(0, 2 ** 31))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("values", ["normal", "ties", "nan"])
@SETTINGS
@given(case=pool_cases())
def test_maxpool2d_matches_reference(dtype, values, case):
    x_shape, kernel, stride, padding, dilation, ceil_mode, seed = case
    rng = np.random.default_rng(seed)
    if values == "ties":        # few distinct values: the first maximum in scan order must win
        x = rng.integers(-1, 2, x_shape).astype(dtype)
    else:
        x = rng.standard_normal(x_shape).astype(dtype)
    if values == "nan":         # a NaN in a window makes that output NaN (torch propagates NaN)
        x[rng.random(x_shape) < 0.15] = np.nan
        x[rng.random(x_shape) < 0.05] = -np.inf
    out, argmax = cpu.maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    ref_out, ref_argmax = reference.maxpool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    assert out.shape == (*x_shape[:2], pool_output_size(x_shape[2], kernel[0], stride[0], padding[0], dilation[0],
                                                        ceil_mode), ref_out.shape[3])
    np.testing.assert_array_equal(out, ref_out)            # NaN == NaN here
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert out.dtype == x.dtype and argmax.dtype == np.int64 and out.flags.c_contiguous
    # a window made only of padding (possible with dilation) has no argmax (-1) and passes no gradient;
    # the reference would add its gradient at index -1, the last pixel
    assume((argmax >= 0).all())
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = cpu.maxpool2d_backward(dout, argmax, x_shape)
    assert_close(dx, reference.maxpool2d_backward(dout, ref_argmax, x_shape), dtype)


def test_maxpool2d_vgg_shape_ties_and_nan():
    x = np.zeros((2, 16, 14, 14), np.float32)                 # all ties: the window's top-left pixel wins
    x[1, 3, 5, 4] = np.nan
    out, argmax = cpu.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    ref_out, ref_argmax = reference.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert np.isnan(out[1, 3, 2, 2]) and argmax[1, 3, 2, 2] == 5 * 14 + 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(N=st.integers(1, 3), C=st.integers(1, 4), OH=st.integers(1, 7), OW=st.integers(1, 7),
       odd=st.tuples(st.integers(0, 1), st.integers(0, 1)), ceil_mode=st.booleans(),
       values=st.sampled_from(["normal", "ties", "nan"]), seed=st.integers(0, 2 ** 31))
def test_maxpool2d_fast_paths_match_reference(dtype, N, C, OH, OW, odd, ceil_mode, values, seed):
    """The 2x2/2 and 3x3/2 padding-1 kernels (odd sizes: ceil_mode windows hang over the edge)."""
    rng = np.random.default_rng(seed)
    x_shape = (N, C, 2 * OH + odd[0], 2 * OW + odd[1])
    x = rng.integers(-1, 2, x_shape).astype(dtype) if values == "ties" else rng.standard_normal(x_shape).astype(dtype)
    if values == "nan":
        x[rng.random(x_shape) < 0.15] = np.nan
        x[rng.random(x_shape) < 0.1] = -np.inf
    for kernel, padding in (((2, 2), (0, 0)), ((3, 3), (1, 1))):
        args = kernel, (2, 2), padding, (1, 1), ceil_mode
        out, argmax = cpu.maxpool2d_forward(x, *args)
        ref_out, ref_argmax = reference.maxpool2d_forward(x, *args)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(argmax, ref_argmax)
        dout = rng.standard_normal(out.shape).astype(dtype)
        assert_close(cpu.maxpool2d_backward(dout, argmax, x_shape),
                     reference.maxpool2d_backward(dout, ref_argmax, x_shape), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 2 ** 31),
       large=st.booleans())
def test_relu_matches_reference(dtype, shape, seed, large):
    """Forward and backward, NaN and zeros included; `large` takes the multi-threaded path."""
    rng = np.random.default_rng(seed)
    if large:
        shape = [cpu_pointwise.RELU_PARALLEL_MIN // 7 + 3, 7]
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::5] = np.nan
    x.flat[1::7] = -0.0
    x.flat[2::7] = 0.0
    dout = rng.standard_normal(shape).astype(dtype)
    out = cpu.relu_forward(x)
    np.testing.assert_array_equal(out, reference.relu_forward(x))
    assert out.dtype == x.dtype
    kept = dout.copy()
    dx = cpu.relu_backward(dout, out)
    np.testing.assert_array_equal(dx, reference.relu_backward(dout, out))
    np.testing.assert_array_equal(dout, kept)                # dout is not modified in place
    assert dx.dtype == dout.dtype and dx is not dout


def test_relu_non_contiguous_input():
    x = np.random.default_rng(3).standard_normal((4, 6, 5)).astype(np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(cpu.relu_forward(x), np.maximum(x, 0))
    np.testing.assert_array_equal(cpu.relu_backward(x, np.maximum(x, 0)), np.where(x > 0, x, 0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [7, 300_000])          # one thread / parallel chunks
def test_channel_affine_add_relu_and_add(dtype, size):
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal((1, 3, 1, size)).astype(dtype) for _ in range(2))
    a[0, 1, 0, 0] = np.nan
    scale, shift = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    assert_close(cpu.channel_affine(a, scale, shift), a * scale[:, None, None] + shift[:, None, None], dtype)
    np.testing.assert_array_equal(cpu.add_relu(a, b), np.maximum(a + b, 0))        # NaN stays NaN
    np.testing.assert_array_equal(cpu.add(a, b[:, ::-1]), a + b[:, ::-1])           # a strided summand
    for kernel in (cpu.add_relu, cpu.add):
        with pytest.raises(ValueError, match="shapes"):
            kernel(a, b[:, :2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_matches_matmul(dtype):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((3, 700)), rng.standard_normal((1000, 700)), rng.standard_normal(1000)
    x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    dout = rng.standard_normal((3, 1000)).astype(dtype)
    assert_close(cpu.linear_forward(x, w, b), x @ w.T + b, dtype)
    assert_close(cpu.linear_forward(x[:1], w, None), x[:1] @ w.T, dtype)
    assert_close(cpu.linear_backward_input(dout, w), dout @ w, dtype)
    assert_close(cpu.linear_backward_input(dout[:1], w), dout[:1] @ w, dtype)      # batch 1: rows by rows
    # batch 1 reads only the rows of w whose gradient is not zero: a ReLU's (half zero), a one-hot one, all
    # zero, and 1-3 nonzero (fewer than the four rows summed at a time); a NaN still reaches every dx
    sparse = np.where(rng.random(1000) < 0.5, dout[0], 0)[None]
    assert_close(cpu.linear_backward_input(sparse, w), sparse @ w, dtype)
    for count in (0, 1, 3, 7):
        g = np.zeros((1, 1000), dtype)
        g[0, rng.choice(1000, count, replace=False)] = rng.standard_normal(count)
        assert_close(cpu.linear_backward_input(g, w), g @ w, dtype)
    g[0, 5] = np.nan
    assert np.isnan(cpu.linear_backward_input(g, w)).all()



def test_blas_is_single_threaded_inside_kernels_only():
    """One threading model: Numba's threads, each calling a one-threaded BLAS; the user's settings are restored."""
    from threadpoolctl import threadpool_info

    from minixai.kernels.cpu_blas import bound_threads, single_threaded_blas

    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    with single_threaded_blas():
        assert bound_threads() == 1
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before
