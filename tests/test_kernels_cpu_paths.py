"""Which path the CPU convolutions take for a layer's shape, and that it gives the result of
``kernels/reference.py``: a batch-1 small plane's blocks of rows, a lone 7x7 plane's shared im2col, the input
gradients of 7x7 and 8x8 planes as their transpose, a narrow layer's input gradient with its taps folded, and
a strided wide kernel's scatter a phase at a time. The general property tests and their helpers are in
test_kernels_cpu.py."""
import numba
import numpy as np
import pytest

from minixai.kernels import cpu, cpu_blas, cpu_gemm, reference
from test_kernels_cpu import assert_close, path


def test_small_planes_at_batch_one_keep_their_rows_whole():
    """Two threads, one image: a 7x7 plane (49 positions, one tile row of the GEMM) or a 14x14 one is not cut
    into blocks of rows (4 + 3 or 7 + 7) where its output channels alone give each thread two tasks; with too few
    channels for that, or blocks of MIN_SPLIT_POSITIONS or more (28x28), or without ``keep_rows``, it is."""
    keep = cpu.MIN_SPLIT_POSITIONS
    assert cpu._blocks(1, 7, 7, 512, 2048, 2, keep_rows=keep) == (7, 512)        # 4 tasks of 512 channels
    assert cpu._blocks(1, 14, 16, 256, 256, 2, keep_rows=keep) == (14, 64)
    assert cpu._blocks(1, 7, 7, 512, 2048, 2) == (4, 1024)                        # 2 x 2 tasks
    assert cpu._blocks(1, 7, 7, 64, 64, 2, keep_rows=keep) == (4, 32)             # 64 channels: 2 tasks whole
    assert cpu._blocks(1, 28, 28, 128, 512, 2, keep_rows=keep) == (14, 256)       # 392 positions a block
    assert cpu._blocks(2, 7, 7, 512, 2048, 2, keep_rows=keep) == (7, 1024)        # two images: even already


def _count_calls(monkeypatch, name, which=lambda args: True):
    """[calls]: cpu.<name> wrapped to count its calls (those whose arguments `which` accepts; it still runs) for
    the rest of the test."""
    calls, run = [0], getattr(cpu, name)

    def counted(*args):
        calls[0] += bool(which(args))
        return run(*args)

    monkeypatch.setattr(cpu, name, counted)
    return calls


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_7x7_plane_at_batch_one_shares_its_im2col(dtype, monkeypatch):
    """One image, two threads: a 3x3 layer (or a 3x3/2) whose output plane is 7x7 builds its im2col once, both
    threads together, and splits the output channels (``im2col_gemm_shared``), through the whole epilogue (bias,
    scale, shortcut, ReLU) and with a channel count that leaves a short last block; an 8x8 plane, whose halves
    fill the tile kernels' vectors, two images, and 48 output channels (too few to give each thread a block of
    MIN_CHANNEL_BLOCK * 2) are cut into rows as before. Without the tiled GEMM (no AVX2 and FMA) or a second
    Numba thread nothing is shared, and the results alone are checked."""
    sharing = cpu_gemm.SHAPE is not None and numba.config.NUMBA_NUM_THREADS >= 2
    calls = _count_calls(monkeypatch, "im2col_gemm_shared")
    rng = np.random.default_rng(11)
    cases = [((1, 40, 7, 7), (1, 1), 71, True), ((1, 24, 14, 14), (2, 2), 71, True),   # blocks of 36 and 35
             ((1, 40, 8, 8), (1, 1), 71, False), ((2, 40, 7, 7), (1, 1), 71, False), ((1, 40, 7, 7), (1, 1), 48, False)]
    threads = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    cpu_gemm.switch(cpu_gemm.SHAPE is not None)     # (the process may have measured the BLAS faster and chosen it)
    try:
        for x_shape, stride, K, shared in cases:
            x = rng.standard_normal(x_shape).astype(dtype)
            w = rng.standard_normal((K, x_shape[1], 3, 3)).astype(dtype)
            b, scale = rng.standard_normal(K).astype(dtype), rng.standard_normal(K).astype(dtype)
            out_shape = reference.conv2d_forward(x, w, None, stride, (1, 1), (1, 1)).shape
            shortcut = rng.standard_normal(out_shape).astype(dtype)
            before = calls[0]
            for fused in ({}, {"scale": scale, "relu": True, "residual": shortcut}):
                assert_close(cpu.conv2d_forward(x, w, b, stride, (1, 1), (1, 1), **fused),
                             reference.conv2d_forward(x, w, b, stride, (1, 1), (1, 1), **fused), dtype)
            assert calls[0] - before == (2 if shared and sharing else 0), (x_shape, K)
    finally:
        numba.set_num_threads(threads)
        cpu_gemm.switch(cpu_blas.TILED)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_small_input_gradient_runs_as_its_transpose(dtype, monkeypatch, request):
    """An input gradient from a batch-1 7x7 or 8x8 plane goes through ``col2im_by_rows`` (cols^T = dout^T W):
    1x1, 3x3 (padded, dilated), 3x3/2, 5x5/2 and 1x3 kernels, channel counts that leave a partial block of lanes
    and a last short task, plain and with a ReLU's gate, a batch norm's scale (in dout's copy, or folded into the
    weights) and a shortcut's gradient; a 14x14 plane, a padded 1x1 and a 1x1/2 do not. Without the tiled GEMM
    (no AVX2 and FMA) none does, and the results alone are checked."""
    tiled = cpu_gemm.SHAPE is not None
    calls = _count_calls(monkeypatch, "col2im_by_rows")
    cpu_gemm.switch(tiled)                      # on even where this process measured the BLAS faster
    request.addfinalizer(lambda: cpu_gemm.switch(cpu_blas.TILED))
    rng = np.random.default_rng(5)
    cases = [((1, 40, 7, 7), (72, 40, 1, 1), (1, 1), (0, 0), (1, 1), True),
             ((1, 24, 8, 8), (17, 24, 1, 1), (1, 1), (0, 0), (1, 1), True),
             ((1, 48, 7, 7), (40, 48, 1, 1), (1, 1), (0, 0), (1, 1), True),
             ((1, 40, 7, 7), (72, 40, 3, 3), (1, 1), (1, 1), (1, 1), True),
             ((1, 24, 8, 8), (40, 24, 3, 3), (1, 1), (2, 2), (2, 2), True),
             ((1, 72, 14, 14), (48, 72, 3, 3), (2, 2), (1, 1), (1, 1), True),
             ((1, 20, 15, 15), (24, 20, 5, 5), (2, 2), (2, 2), (1, 1), True),
             ((1, 32, 8, 8), (48, 32, 1, 3), (1, 1), (0, 1), (1, 1), True),
             ((1, 40, 14, 14), (72, 40, 1, 1), (1, 1), (0, 0), (1, 1), False),
             ((1, 40, 5, 5), (72, 40, 1, 1), (1, 1), (1, 1), (1, 1), False),
             ((1, 40, 14, 14), (72, 40, 1, 1), (2, 2), (0, 0), (1, 1), False)]
    for x_shape, w_shape, stride, padding, dilation, by_rows in cases:
        w = rng.standard_normal(w_shape).astype(dtype)
        out_shape = reference.conv2d_forward(np.zeros(x_shape, dtype), w, None, stride, padding, dilation).shape
        dout, gate = rng.standard_normal(out_shape).astype(dtype), rng.standard_normal(out_shape).astype(dtype)
        scale, shortcut = rng.standard_normal(w_shape[0]).astype(dtype), rng.standard_normal(x_shape).astype(dtype)
        before = calls[0]
        for fused in ({}, {"scale": scale}, {"scale": scale, "gate": gate, "residual": shortcut}):
            assert_close(cpu.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, **fused),
                         reference.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, **fused), dtype)
        assert calls[0] - before == (3 if by_rows and tiled else 0), (x_shape, w_shape, stride)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_narrow_input_gradient_folds_its_taps(dtype, monkeypatch, request):
    """The input gradient of a narrow layer (9 taps or more, 16-64 channels in and out, a plane of 400 positions
    or more) is one shift GEMM with the taps in its depth, from a flipped, transposed copy of the weights:
    3x3 (padded 1 and 0, dilated), 5x5, plain and with a ReLU's gate, a batch norm's scale and a shortcut's
    gradient; a 96-channel one does not. Without the tiled GEMM none folds (the results alone count)."""
    tiled = cpu_gemm.SHAPE is not None
    folded = _count_calls(monkeypatch, "_shift_gemm_planes", which=lambda args: args[-1])   # its `folded` argument
    cpu_gemm.switch(tiled)
    request.addfinalizer(lambda: cpu_gemm.switch(cpu_blas.TILED))
    rng = np.random.default_rng(6)
    cases = [((1, 64, 20, 21), (64, 64, 3, 3), (1, 1), (1, 1), True),
             ((2, 40, 22, 22), (24, 40, 3, 3), (0, 0), (1, 1), True),
             ((1, 32, 24, 23), (48, 32, 3, 3), (2, 2), (2, 2), True),
             ((1, 48, 21, 21), (64, 48, 5, 5), (2, 2), (1, 1), True),
             ((1, 96, 20, 21), (64, 96, 3, 3), (1, 1), (1, 1), False)]
    for x_shape, w_shape, padding, dilation, narrow in cases:
        w = rng.standard_normal(w_shape).astype(dtype)
        out_shape = reference.conv2d_forward(np.zeros(x_shape, dtype), w, None, (1, 1), padding, dilation).shape
        dout, gate = rng.standard_normal(out_shape).astype(dtype), rng.standard_normal(out_shape).astype(dtype)
        scale, shortcut = rng.standard_normal(w_shape[0]).astype(dtype), rng.standard_normal(x_shape).astype(dtype)
        before = folded[0]
        for fused in ({}, {"scale": scale}, {"scale": scale, "gate": gate, "residual": shortcut}):
            assert_close(cpu.conv2d_backward_input(dout, w, x_shape, (1, 1), padding, dilation, **fused),
                         reference.conv2d_backward_input(dout, w, x_shape, (1, 1), padding, dilation, **fused), dtype)
        assert folded[0] - before == (3 if narrow and tiled else 0), (x_shape, w_shape)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("task_columns", [7, 1536])
def test_strided_wide_kernels_scatter_by_phase(dtype, task_columns):
    """col2im's input gradient of a kernel wider than twice its stride sums the taps that land on one phase of
    dx's columns before adding them to dx (``_scatter_by_phase``): 5x5/2, 7x7/2 (ResNet's RGB layer's shape),
    7x7/3, 6x5/2, dilated, padded 0 to 3, widths that leave the phases unequal, one and two images, plain and
    with a gate, a scale and a shortcut; the rows split between tasks (`task_columns` 7) or whole."""
    rng = np.random.default_rng(7)
    cases = [((1, 3, 23, 21), (8, 3, 5, 5), (2, 2), (2, 2), (1, 1)),
             ((2, 3, 30, 28), (16, 3, 7, 7), (2, 2), (3, 3), (1, 1)),
             ((1, 4, 26, 25), (8, 4, 7, 7), (3, 3), (1, 0), (1, 1)),
             ((1, 2, 19, 22), (8, 2, 6, 5), (2, 2), (0, 1), (1, 1)),
             ((1, 3, 24, 27), (8, 3, 5, 5), (2, 2), (3, 2), (2, 1))]
    for x_shape, w_shape, stride, padding, dilation in cases:
        w = rng.standard_normal(w_shape).astype(dtype)
        out_shape = reference.conv2d_forward(np.zeros(x_shape, dtype), w, None, stride, padding, dilation).shape
        dout, gate = rng.standard_normal(out_shape).astype(dtype), rng.standard_normal(out_shape).astype(dtype)
        scale, shortcut = rng.standard_normal(w_shape[0]).astype(dtype), rng.standard_normal(x_shape).astype(dtype)
        with path("im2col", task_columns):
            for fused in ({}, {"scale": scale, "gate": gate, "residual": shortcut}):
                assert_close(cpu.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, **fused),
                             reference.conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, **fused),
                             dtype)
