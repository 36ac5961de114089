"""The Numba kernels (``minixai.kernels.cpu``) against the naive loops of ``kernels/reference.py``.

Shapes, strides, padding and dilation are drawn by hypothesis. Every draw runs three times through the
fast convolution: on Winograd's F(2x2, 3x3) (3x3 stride-1 draws only; the others fall through to the
shift GEMM), on the shift-GEMM path, and on the im2col/col2im fallback, with tasks of a few output
positions, small channel blocks and Winograd chunks of a few tile rows, so that the blocking is exercised
on tiny inputs.
"""
import contextlib

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minixai.kernels import cpu, cpu_winograd, reference, xp

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RTOL = {np.float64: 1e-5, np.float32: 1e-3}


def assert_close(actual, expected, dtype):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert actual.flags.c_contiguous
    scale = max(1.0, np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


@contextlib.contextmanager
def winograd_calls():
    """Count the convolutions that run through Winograd's kernel: yields a one-element list."""
    calls, run = [0], cpu_winograd._run

    def counted(*args, **kwargs):
        calls[0] += 1
        return run(*args, **kwargs)

    cpu_winograd._run = counted
    try:
        yield calls
    finally:
        cpu_winograd._run = run


@contextlib.contextmanager
def path(name, task_columns):
    """Force Winograd, the shift-GEMM (strided: on phase planes; "folded": the taps of any kernel wider than 1x1
    in one product, with the tiled GEMM) or the im2col path, with small tasks (module constants, restored);
    yields the count of `winograd_calls`."""
    saved = (cpu.MIN_SHIFT_CHANNELS, cpu.MIN_SHIFT_PLANE, cpu.MIN_PHASE_PLANE, cpu.FOLD_MIN_TAPS, cpu.FOLD_MAX_OUTPUTS,
             cpu.FOLD_MAX_CHANNELS, cpu.FOLD_PHASE_PLANES, cpu.TASK_COLUMNS, cpu.MIN_CHANNEL_BLOCK)
    saved_winograd = (cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES, cpu_winograd.SCRATCH_BYTES,
                      cpu_winograd.THREAD_SCRATCH_BYTES, cpu_winograd.BY_THREAD)
    cpu.MIN_SHIFT_CHANNELS = cpu.MIN_SHIFT_PLANE = cpu.MIN_PHASE_PLANE = 10 ** 9 if name == "im2col" else 1
    cpu.FOLD_MIN_TAPS = 2 if name == "folded" else 10 ** 9
    cpu.FOLD_MAX_OUTPUTS = 10 ** 9 if name == "folded" else 0      # "folded": stride 1 too, whatever the plane
    cpu.FOLD_MAX_CHANNELS = 10 ** 9 if name == "folded" else 0     # ... and whatever the channels
    cpu.FOLD_PHASE_PLANES = name == "folded"                        # "shift": a product per tap, strided too
    cpu.TASK_COLUMNS, cpu.MIN_CHANNEL_BLOCK = task_columns, 1
    cpu_winograd.MIN_CHANNELS = cpu_winograd.MIN_TILES = 1 if name.startswith("winograd") else 10 ** 9
    cpu_winograd.SCRATCH_BYTES = cpu_winograd.THREAD_SCRATCH_BYTES = 64 * task_columns   # chunks of 1-3 tile rows
    cpu_winograd.BY_THREAD = name == "winograd by thread"     # the two schedules (cpu_winograd)
    try:
        with winograd_calls() as calls:
            yield calls
    finally:
        (cpu.MIN_SHIFT_CHANNELS, cpu.MIN_SHIFT_PLANE, cpu.MIN_PHASE_PLANE, cpu.FOLD_MIN_TAPS, cpu.FOLD_MAX_OUTPUTS,
         cpu.FOLD_MAX_CHANNELS, cpu.FOLD_PHASE_PLANES, cpu.TASK_COLUMNS, cpu.MIN_CHANNEL_BLOCK) = saved
        (cpu_winograd.MIN_CHANNELS, cpu_winograd.MIN_TILES, cpu_winograd.SCRATCH_BYTES,
         cpu_winograd.THREAD_SCRATCH_BYTES, cpu_winograd.BY_THREAD) = saved_winograd


@st.composite
def conv_cases(draw):
    pair = lambda lo, hi: (draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))  # noqa: E731
    N, C, K = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    (H, W), (R, S) = pair(1, 12), pair(1, 4)
    stride = draw(st.sampled_from([(1, 1), (1, 1), pair(1, 3)]))        # stride 1 takes the shift GEMM
    padding, dilation = pair(0, 2), pair(1, 2)
    if draw(st.booleans()):                                  # a 3x3 stride-1 case, which Winograd takes
        (R, S), stride, dilation = (3, 3), (1, 1), (1, 1)
    for axis, (size, k) in enumerate(((H, R), (W, S))):
        assume(size + 2 * padding[axis] - dilation[axis] * (k - 1) - 1 >= 0)      # non-empty output
    with_bias, seed = draw(st.booleans()), draw(st.integers(0, 2 ** 31))
    epilogue = (draw(st.booleans()), draw(st.booleans()), draw(st.booleans()))     # scale, ReLU, residual
    return (N, C, H, W), (K, C, R, S), stride, padding, dilation, with_bias, epilogue, seed


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@SETTINGS
@given(case=conv_cases(), task_columns=st.integers(1, 40))
def test_conv2d_matches_reference(dtype, case, task_columns):
    x_shape, w_shape, stride, padding, dilation, with_bias, (with_scale, relu, with_residual), seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if with_bias else None
    scale = rng.standard_normal(w_shape[0]).astype(dtype) if with_scale else None     # a fused batch norm
    out = reference.conv2d_forward(x, w, b, stride, padding, dilation)
    residual = rng.standard_normal(out.shape).astype(dtype) if with_residual else None   # a ResNet block's join
    fused = reference.conv2d_forward(x, w, b, stride, padding, dilation, scale=scale, relu=relu, residual=residual)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = reference.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation)
    gate = rng.standard_normal(out.shape).astype(dtype) if relu else None          # a fused ReLU's output
    shortcut = rng.standard_normal(x_shape).astype(dtype) if with_residual else None    # its gradient, summed
    dx_gated = reference.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, scale=scale, gate=gate,
                                               clip=with_bias, residual=shortcut)  # clip: guided backprop's ReLU
    dw = reference.conv2d_backward_weight(dout, x, w_shape, stride, padding, dilation)
    for name in ("winograd", "winograd by thread", "shift", "folded", "im2col"):
        with path(name, task_columns) as calls:
            # F(2x2, 3x3) takes every 3x3 stride-1 undilated draw (padding is 0-2) once forced
            winograd = name.startswith("winograd") and tuple(w_shape[2:]) == (3, 3) and stride == dilation == (1, 1)
            assert_close(cpu.conv2d_forward(x, w, b, stride, padding, dilation), out, dtype)
            assert_close(cpu.conv2d_forward(x, w, b, stride, padding, dilation, scale=scale, relu=relu,
                                            residual=residual), fused, dtype)
            assert_close(cpu.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation), dx, dtype)
            assert_close(cpu.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, scale=scale,
                                                   gate=gate, clip=with_bias, residual=shortcut), dx_gated, dtype)
            assert calls[0] == (4 if winograd else 0)          # the path under test is the path that ran
            assert_close(cpu.conv2d_backward_weight(dout, x, w_shape, stride, padding, dilation), dw, dtype)


def test_conv2d_default_paths_on_wider_layers():
    """Real layer widths with the module's own block sizes: RGB first layer, 3x3 on a small and on a
    large plane (16 -> 32 channels: its taps folded), 3x3 by Winograd (two shapes), 1x1 on a small and on a
    large plane, strided 1x1, strided 3x3 on phase planes (its taps folded) and by im2col (a 6x6 output), an
    RGB 7x7/2 and a 5x5 with their taps folded into one product (the RGB layer's input gradient at batch 1:
    col2im's tasks split dx's rows), a 3x3 and a 1x7 with few outputs folded too (the 3x3's input gradient by
    col2im, not Winograd), a narrow 3x3 (64 channels on 420 positions: the shift GEMM both ways, its taps
    folded, never Winograd); each plain and with the epilogue fused, and the input gradient with a batch norm's scale
    (folded into the weights where they are the smaller copy), with and without a ReLU's gate, plus a
    shortcut's gradient."""
    rng = np.random.default_rng(0)
    layers = [((1, 3, 20, 18), (16, 3, 3, 3), (1, 1), (1, 1)),
              ((2, 64, 14, 15), (64, 64, 3, 3), (1, 1), (1, 1)),
              ((3, 64, 9, 11), (96, 64, 3, 3), (1, 1), (0, 2)),
              ((2, 32, 9, 11), (64, 32, 3, 3), (1, 1), (1, 1)),
              ((1, 64, 6, 6), (128, 64, 3, 3), (1, 1), (2, 1)),
              ((1, 16, 22, 20), (32, 16, 3, 3), (1, 1), (1, 1)),
              ((2, 24, 7, 7), (40, 24, 1, 1), (1, 1), (0, 0)),
              ((1, 24, 21, 20), (40, 24, 1, 1), (1, 1), (0, 0)),
              ((1, 24, 9, 9), (40, 24, 1, 1), (2, 2), (0, 0)),
              ((2, 32, 23, 21), (48, 32, 3, 3), (2, 2), (1, 1)),
              ((1, 32, 12, 12), (48, 32, 3, 3), (2, 2), (1, 1)),
              ((2, 3, 30, 28), (16, 3, 7, 7), (2, 2), (3, 3)),
              ((1, 3, 45, 36), (16, 3, 7, 7), (2, 2), (3, 3)),
              ((1, 20, 17, 19), (24, 20, 5, 5), (1, 1), (2, 2)),
              ((1, 64, 14, 15), (64, 64, 3, 3), (1, 1), (1, 1)),
              ((1, 32, 17, 17), (48, 32, 1, 7), (1, 1), (0, 3)),
              ((1, 64, 20, 21), (64, 64, 3, 3), (1, 1), (1, 1))]
    with winograd_calls() as calls:
        for x_shape, w_shape, stride, padding in layers:
            x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
            b, scale = rng.standard_normal(w_shape[0]), rng.standard_normal(w_shape[0])
            out = reference.conv2d_forward(x, w, b, stride, padding, (1, 1))
            residual = rng.standard_normal(out.shape)
            dout = rng.standard_normal(out.shape)
            assert_close(cpu.conv2d_forward(x, w, b, stride, padding, (1, 1)), out, np.float64)
            assert_close(cpu.conv2d_forward(x, w, b, stride, padding, (1, 1), scale=scale, relu=True,
                                            residual=residual),
                         reference.conv2d_forward(x, w, b, stride, padding, (1, 1), scale=scale, relu=True,
                                                  residual=residual), np.float64)
            assert_close(cpu.conv2d_backward_input(dout, w, x_shape, stride, padding, (1, 1)),
                         reference.conv2d_backward_input(dout, w, x_shape, stride, padding, (1, 1)), np.float64)
            shortcut = rng.standard_normal(x_shape)
            for gate in (None, rng.standard_normal(out.shape)):
                assert_close(cpu.conv2d_backward_input(dout, w, x_shape, stride, padding, (1, 1), scale=scale,
                                                       gate=gate, residual=shortcut),
                             reference.conv2d_backward_input(dout, w, x_shape, stride, padding, (1, 1), scale=scale,
                                                             gate=gate, residual=shortcut), np.float64)
    assert calls[0] == 10        # two Winograd shapes: forward, fused forward, 3 backward each


@pytest.mark.parametrize("padding", [(1, 1), (0, 2)])
def test_winograd_float32_error_is_that_of_the_direct_sum(padding):
    """F(2x2, 3x3) on a deep layer (2304 products per output) in float32 strays from the float64 result no
    more than the direct sum does, up to a small factor (its transforms only add, and halve)."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 256, 14, 13)), rng.standard_normal((256, 256, 3, 3)) / 48
    b, dout = rng.standard_normal(256), rng.standard_normal((2, 256, 14 + 2 * padding[0] - 2, 13 + 2 * padding[1] - 2))
    exact = xp.conv2d_forward(x, w, b, (1, 1), padding, (1, 1))
    exact_dx = xp.conv2d_backward_input(dout, w, x.shape, (1, 1), padding, (1, 1))
    x32, w32, b32, dout32 = (a.astype(np.float32) for a in (x, w, b, dout))
    assert cpu_winograd.applies((3, 3), (1, 1), padding, (1, 1), 256, (2,) + exact.shape[2:])
    errors = {}
    for name in ("winograd", "winograd by thread", "shift"):
        with path(name, cpu.TASK_COLUMNS) as calls:
            out = cpu.conv2d_forward(x32, w32, b32, (1, 1), padding, (1, 1))
            dx = cpu.conv2d_backward_input(dout32, w32, x.shape, (1, 1), padding, (1, 1))
        assert calls[0] == (2 if name.startswith("winograd") else 0)
        errors[name] = (np.abs(out - exact).max() / np.abs(exact).max(),
                        np.abs(dx - exact_dx).max() / np.abs(exact_dx).max())
    assert max(errors["shift"]) < 1e-6
    for name in ("winograd", "winograd by thread"):
        assert errors[name][0] < 4 * errors["shift"][0] and errors[name][1] < 4 * errors["shift"][1]


@pytest.mark.parametrize("schedule", ["winograd", "winograd by thread"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_chunks_across_images_and_one_thread(dtype, schedule):
    """Chunks of 2 tile rows over images of 3 tile rows each, so that every other chunk spans two images,
    with the fused epilogue and the gated backward; on all of Numba's threads and on one."""
    rng = np.random.default_rng(4)
    N, C, K, H, W = 3, 3, 4, 5, 5                        # padding 1: 5x5 outputs, 3x3 tiles per image
    x, w = rng.standard_normal((N, C, H, W)).astype(dtype), rng.standard_normal((K, C, 3, 3)).astype(dtype)
    b, scale = rng.standard_normal(K).astype(dtype), rng.standard_normal(K).astype(dtype)
    dout, gate = rng.standard_normal((2, N, K, H, W)).astype(dtype)
    out = reference.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), scale=scale, relu=True)
    dx = reference.conv2d_backward_input(dout, w, x.shape, (1, 1), (1, 1), (1, 1), scale=scale, gate=gate, clip=True)
    previous = numba.get_num_threads()
    for threads in (previous, 1):
        numba.set_num_threads(threads)
        try:
            with path(schedule, 40) as calls:
                two_rows = 2 * 16 * (C + K) * 3 * np.dtype(dtype).itemsize                    # 2 tile rows
                cpu_winograd.SCRATCH_BYTES = cpu_winograd.THREAD_SCRATCH_BYTES = two_rows
                assert_close(cpu.conv2d_forward(x, w, b, (1, 1), (1, 1), (1, 1), scale=scale, relu=True), out, dtype)
                assert_close(cpu.conv2d_backward_input(dout, w, x.shape, (1, 1), (1, 1), (1, 1), scale=scale,
                                                       gate=gate, clip=True), dx, dtype)
        finally:
            numba.set_num_threads(previous)
        assert calls[0] == 2


def test_winograd_non_finite_inputs_stay_non_finite_where_the_direct_sum_does():
    """NaN and inf reach the same outputs as through the direct kernels (inf may come out as NaN: the
    transforms subtract; see the cpu_winograd docstring)."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((1, 2, 7, 8)), rng.standard_normal((3, 2, 3, 3))
    x[0, 0, 2, 3], x[0, 1, 5, 7], x[0, 0, 6, 0] = np.nan, np.inf, -np.inf
    results = {}
    for name in ("winograd", "winograd by thread", "shift"):
        with path(name, 40), np.errstate(invalid="ignore"):
            results[name] = cpu.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1))
    assert not np.isfinite(results["shift"]).all()
    for name in ("winograd", "winograd by thread"):
        assert np.array_equal(np.isfinite(results[name]), np.isfinite(results["shift"]))


def test_conv2d_non_contiguous_input_and_one_thread():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 2, 3)).astype(np.float32).transpose(2, 3, 0, 1)   # (2, 3, 5, 6) view
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = reference.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1))
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert_close(cpu.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1)), expected, np.float32)
    finally:
        numba.set_num_threads(previous)
    assert_close(cpu.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1)), expected, np.float32)
