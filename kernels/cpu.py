"""Numba kernels for the CPU: the default backend. Signatures and conventions: see ``minixai.kernels``.

The convolution is a "shift GEMM" (as in ``xp.py``): with a zero-padded copy ``xpad`` of the input and
stride 1, every kernel tap (r, s) is one matrix product

    out[n, :, i, j] = b + sum_{r, s} W[:, :, r, s] @ xpad[n, :, i + r*Dh, j + s*Dw]        # kc,cL->kL

and no im2col buffer is built. The work is cut into tasks (image, block of output rows[, block of output
channels]) that Numba's threads run in parallel; each task calls one matrix product (``cpu_blas.gemm``:
minixai's tiled GEMM of ``cpu_gemm`` where it measured faster, else single-threaded BLAS). A
block of rows i0..i1 of the padded input is contiguous, so the trick is to compute "wide" output rows of
the padded width Wp (the last S-1 columns of each are junk) and copy the valid ones out through the
"epilogue": out = max(scale[k] * acc + bias[k] (+ residual), 0): an inference batch norm, a ResNet block's
join and a ReLU after the convolution cost nothing extra there (``minixai.fusion`` decides when to fuse).
The input gradient of a stride-1 convolution is the same shift GEMM on the gradient padded by
Q = D(R-1) - P, with the weights flipped and transposed (``_pad_and_taps``); a fused batch norm's scale
with no ReLU step goes into the weights instead where they are the smaller copy, and the gradient of a
ResNet block's shortcut (``residual``) is added by the epilogue; an input gradient from a 7x7 plane at batch
1 runs as its transpose, cols^T = dout^T W (``_by_rows``), which reads W by rows. A strided convolution's forward is
the same shift GEMM on the input's phase planes (``_strided_shift_gemm``). With minixai's tiled GEMM, a
kernel of more than 3x3 taps (ResNet's RGB 7x7/2) folds its taps into the depth of one product per task,
B's rows read through a table (``cpu_gemm.tiled_gemm_rows``), and so do, forward, any kernel wider than 1x1
with few outputs (batch 1 on 14x14 and 17x17 planes), a 3x3 with at most 64 channels in and out (``_narrow``;
its input gradient too), and any strided one on phase planes.
Layers with few channels (an RGB 3x3), small planes (14x14, 7x7) and the strided convolutions' input
gradients use im2col / col2im on one block of rows at a time (``cpu_im2col``; a lone 7x7 plane's im2col built
by both threads together, ``_shares_im2col``), and the weight gradient
(training only) im2col with one partial sum per thread. The shift GEMM's Numba kernels are in ``cpu_shift``.
Deeper 3x3 stride-1 layers go to Winograd's F(2x2, 3x3) in ``cpu_winograd``: 2.25x fewer multiplications
(benchmarks/conv_layers.py).
Tasks write disjoint parts of the output: ``prange`` never runs an overlapping ``+=`` (numba issue 7133).
Large outputs come from ``cpu_memory``'s pool of reused blocks (fresh ones cost page faults). ReLU, batch
norm and the residual join are in ``cpu_pointwise``, dense layers in ``cpu_dense``, max-pooling in ``cpu_pool``.
"""
import numba
import numpy as np

from . import cpu_gemm, cpu_memory, cpu_winograd
from .cpu_im2col import col2im_by_rows, col2im_gemm, gating, im2col_gemm, im2col_gemm_shared, weight_gradient
from .cpu_blas import single_threaded_blas
from .cpu_gemm import _NO_TABLE
from .cpu_dense import linear_backward_input, linear_forward
from .cpu_memory import contiguous, filled as _filled, work_buffer as _buffer
from .cpu_pointwise import add, add_relu, channel_affine, relu_backward, relu_forward
from .cpu_pool import maxpool2d_backward, maxpool2d_forward
from .cpu_shift import _fill_pad_and_taps, _fold_table, _phase_planes, _shift_gemm, _tap_offsets, gated_copy
from .sizes import conv_output_size

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "maxpool2d_forward",
           "maxpool2d_backward", "relu_forward", "relu_backward", "linear_forward", "linear_backward_input",
           "channel_affine", "add_relu", "add"]

TASK_COLUMNS = 1536      # output positions per task at most, and at most
TASK_PANEL = 393216      # GEMM depth x positions per task: the input panel (1.5 MB in float32) stays in L2
MIN_SHIFT_CHANNELS = 16  # below this GEMM depth (RGB input, or an RGB input's gradient) use im2col/col2im
MIN_CHANNEL_BLOCK = 32   # never split the output channels into blocks smaller than this
MIN_SHIFT_PLANE = 400    # fewer output positions per image (14x14, 7x7): im2col, 1.2-4x faster (short rows)
# A strided 3x3 convolution on its phase planes against im2col, batch 1 / 8 (benchmarks/conv_layers.py):
# 64 channels to 56x56 1.5x / 1.15x, 128 to 28x28 1.2x / 1.25x, 256 to 14x14 1.0x / 1.2x, 512 to 7x7 0.65x / 0.95x
MIN_PHASE_PLANE = 100
# The taps folded into one product (B's rows by table), speed at batch 1 / 8: ResNet's RGB 7x7/2 layer 1.5x /
# 1.3x im2col's; a 5x5 48 -> 64 channels 1.1x / 1.15x a product per tap's, a 3x3 with 32-256 channels 0.95-1.1x
# / 0.88-0.95x; an RGB 3x3 0.9x / 0.8x im2col's at batch 1 (its output's memory traffic dominates)
FOLD_MIN_TAPS = 10
# ... and any kernel wider than 1x1 at stride 1 with 100-399 outputs (batch 1: 14x14, 17x17), against Winograd /
# im2col with cold weights: 256 channels on 14x14 1.22x / 1.17x, 512 on 14x14 1.21x / 1.29x, 192 on 17x17 1.1x / 1.13x,
# 256 on 10x10 1.5x / 1.16x; Winograd kept the 28x28 planes (1.1x the fold), im2col the 7x7 ones (1.15x).
# Their input gradients leave Winograd for col2im: inside the batch-1 saliency passes (cold weights), alternating
# pass by pass with Winograd, ResNet-50's five 256-channel 3x3 layers on 14x14 took 3.82-3.93 against 4.10-4.38 ms,
# VGG-16's three 512-channel ones 8.83-9.06 against 9.91-10.25. (Alone, with hot weights, Winograd can win there:
# benchmarks/conv_layers.py timed it 0.59 against 0.64 ms on 256 channels in one run, 0.75 against 0.66 in another.)
FOLD_MAX_OUTPUTS = 400
# ... and a kernel of 9 taps or more at stride 1 with 16-64 channels in and out on a plane of MIN_SHIFT_PLANE
# outputs or more, against Winograd (64 channels) or a product per tap (fewer), batch 1 / 8: 64 on 56x56 0.83x /
# 0.87x the time, 64 on 224x224 0.85x (batch 1), Inception's 32 -> 32 and 32 -> 64 on 147x147 0.86-0.87x (batch 1);
# 128 channels on 28x28 stayed with Winograd (1.13-1.19x folded), 64 -> 128 on 112x112 too (1.05x / 0.93x).
# Their input gradients leave Winograd too: 64 on 56x56 0.91x / 0.94x, 224x224 0.88x a product per tap; folded, hot,
# 0.96x / 0.98x and 0.95x / 0.95x of that, 5x5 48 -> 64 on 35x35 0.90x / 0.90x, Inception's 32 on 147x147 0.92x / 0.94x
FOLD_MAX_CHANNELS = 64
# ... and every strided convolution that runs on phase planes (forward), against a product per tap, batch 1 / 8:
# ResNet's 3x3/2 with 128 channels to 28x28 0.93x / 0.95x the time, 256 to 14x14 0.85x / 0.965x; Inception's
# 288 -> 384 to 17x17 0.86x / 0.96x, 64 -> 96 0.89x / 0.95x (7x7 outputs and fewer stay with im2col)
FOLD_PHASE_PLANES = True
# An input gradient whose dout has at most this many positions (batch 1 on 7x7 and 8x8) runs as its transpose,
# cols^T = dout^T W (``_by_rows``): W's rows, contiguous, are then the right operand, which the tiled GEMM reads
# ahead, instead of its columns read as a transposed left operand, 8 numbers a row of W apart. With cold
# weights, alternating, ms per batch-1 saliency pass: ResNet-50's 512 <-> 2048 1x1 layers on 7x7 1.56 -> 1.13 and
# 1.12 -> 0.83 (on 14x14 1.09-1.13x), 3x3 1.85-1.98 -> 1.79-1.84, 3x3/2 0.95-1.04 -> 0.87-0.93; Inception v3's
# 8x8 3x3 layers 1.64 -> 1.38 (448 -> 384 channels), 0.98 -> 0.86 (384), its 3x3/2 into 8x8 0.35 -> 0.26
BY_ROWS_MAX_OUTPUTS = 64
# A shift GEMM's tasks split a plane's rows to spread evenly over the threads, but not into blocks of fewer
# positions than this where its output channels alone give every thread its tasks: at batch 1 the 7x7 planes
# were cut into 4 + 3 rows (28 and 21 columns of the GEMM's 48-column tiles) and the 14x14 / 17x17 ones read
# their weights twice. Nor do a 1x1/2 layer's on im2col (a strided copy, cheap to repeat per block of channels).
# Inside the batch-1 saliency passes, alternating pass by pass: ResNet-50's 1x1 layers forward on 7x7 1.12 -> 0.92
# and 0.78 -> 0.60 ms per pass, the 1x1/2 0.65 -> 0.55, the 256-channel 3x3 on 14x14 3.21 -> 3.08, the pass 0.989x;
# VGG-16's 512-channel 3x3 on 14x14 8.23 -> 7.80 (pass 0.98x); Inception v3's 17x17 layers 1-14% faster, its 8x8
# ones within 0.03 ms either way (pass 0.995-0.997x)
MIN_SPLIT_POSITIONS = 192


# ---- helpers run from Python --------------------------------------------------------------------------
def _task_rows(n_rows, row_width, depth):
    """Output rows per task: as many as fit TASK_COLUMNS positions and a TASK_PANEL input panel."""
    return max(1, min(n_rows, min(TASK_COLUMNS, TASK_PANEL // depth) // row_width))


def _blocks(n_images, n_rows, row_width, depth, n_channels, threads, per_thread=2, keep_rows=0):
    """(rows per task, channels per task): the rows of `_task_rows`, cut into more blocks where the tasks would
    not spread evenly over the threads, and the output channels split until there are at least `per_thread`
    tasks per thread. With ``keep_rows``, a plane whose blocks would hold fewer positions than that keeps its
    rows whole where its channels alone give each thread `per_thread` tasks (``MIN_SPLIT_POSITIONS``)."""
    n_row_blocks = -(-n_rows // _task_rows(n_rows, row_width, depth))
    if (n_images * n_row_blocks) % threads and n_images * n_row_blocks < 8 * threads:
        more = min(n_rows, n_row_blocks + threads - (n_images * n_row_blocks) % threads)
        whole = n_images * n_row_blocks * _channel_blocks(n_images * n_row_blocks, n_channels, threads, per_thread)
        if n_rows // more * row_width >= keep_rows or whole < per_thread * threads or whole % threads:
            n_row_blocks = more
    rows = -(-n_rows // n_row_blocks)
    return rows, -(-n_channels // _channel_blocks(n_images * n_row_blocks, n_channels, threads, per_thread))


def _channel_blocks(tasks, n_channels, threads, per_thread):
    """Blocks of output channels, doubled until `tasks` * blocks >= `per_thread` tasks per thread (each
    block at least MIN_CHANNEL_BLOCK channels)."""
    blocks = 1
    while tasks * blocks < per_thread * threads and n_channels // blocks >= 2 * MIN_CHANNEL_BLOCK:
        blocks *= 2
    return blocks


# ---- convolution, forward -------------------------------------------------------------------------------
def conv2d_forward(x, w, b, stride, padding, dilation, scale=None, relu=False, residual=None):
    x, w, b, scale, residual = contiguous(x, w, b, scale, residual)
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    OH = conv_output_size(H, R, stride[0], padding[0], dilation[0])
    OW = conv_output_size(W, S, stride[1], padding[1], dilation[1])
    out = cpu_memory.empty((N, K, OH, OW), x.dtype)
    if residual is not None and residual.shape != out.shape:
        raise ValueError(f"conv2d_forward: residual has shape {residual.shape}, the output {out.shape}")
    # the epilogue of every task: out = max(scale[k] * conv + bias[k] (+ residual), 0 if relu); x * 1 + 0 is exact
    plain = b is None and scale is None and not relu and residual is None
    bias = b if b is not None else _filled(0, K, x.dtype)
    scale = scale if scale is not None else _filled(1, K, x.dtype)
    threads = numba.get_num_threads()
    # a shift GEMM's product has depth C, or C*R*S where the taps fold into one (an RGB input's 7x7 too)
    few = _folds_few_outputs(stride, (R, S), min(C, K), N, OH * OW)
    narrow = _narrow(stride, (R, S), C, K, OH * OW)
    folded = few or narrow or _folds_taps(R * S) or _folds_phase_planes(stride, (R, S), min(C, K), OH * OW)
    depth = C * R * S if folded else C
    with single_threaded_blas():
        if not (few or narrow) and cpu_winograd.applies((R, S), stride, padding, dilation, min(C, K), (N, OH, OW)):
            cpu_winograd.conv3x3_forward(x, w, scale, bias, relu, padding, out, _buffer, residual)
        elif few or _use_shift_gemm(stride, padding, (R, S), min(depth, K), OH * OW):
            xpad, taps, trans = _pad_and_taps(x, padding[0], padding[1], w, transposed=False, folded=folded)
            _shift_gemm_any(xpad, (R, S), taps, trans, scale, bias, relu, out, dilation, threads, plain, residual,
                            folded)
        elif _use_phase_planes(stride, (R, S), min(depth, K), OH * OW):
            _strided_shift_gemm(x, w, stride, padding, dilation, scale, bias, relu, residual, out, threads, plain,
                                folded)
        else:
            # one task per thread where the rows allow: tasks of one block of rows each build its im2col
            # (batch 1: 256 -> 256 3x3 stride 2 on 28x28 1.05 -> 0.80 ms, 1x1 stride 2 on 56x56 0.66 -> 0.58)
            # (a 1x1's im2col is a strided copy, cheap to repeat for each block of channels: its rows stay whole)
            rows, kblock = _blocks(N, OH, OW, C * R * S, K, threads, per_thread=1,
                                   keep_rows=MIN_SPLIT_POSITIONS if R * S == 1 else 0)
            flat_residual = None if residual is None else residual.ravel()
            if _shares_im2col(N, OH, OW, C * R * S, R * S, K, rows, threads, x.dtype.itemsize):
                kblock = -(-K // _channel_blocks(1, K, threads, 1))
                cols = _buffer("cols", C * R * S * OH * OW, x.dtype)
                im2col_gemm_shared(x, w.reshape(K, C * R * S), scale, bias, relu, flat_residual, out, *stride,
                                   *padding, *dilation, R, S, kblock, cols)
                return out
            cols = _buffer("cols", threads * C * R * S * rows * OW, x.dtype).reshape(threads, -1)
            im2col_gemm(x, w.reshape(K, C * R * S), scale, bias, relu, flat_residual, out, *stride, *padding,
                        *dilation, R, S, rows, kblock, cols)
    return out


def _shares_im2col(n_images, OH, OW, depth, taps, K, rows, threads, itemsize):
    """One image whose output plane would be one task but is cut into blocks of `rows` rows to spread over the
    threads, where those blocks take more of the tile kernels' vector passes than the whole plane and the K
    output channels give every thread a block: the threads then build the plane's im2col together and split
    the channels (``im2col_gemm_shared``). A 7x7 plane's 4 + 3 rows (28 and 21 columns) take 2 + 2 vectors of
    16 lanes, all 49 take 3 (ResNet-50's 512-channel 3x3 on 7x7 at batch 1, in the pass: 1.59 -> 1.42 ms); an
    8x8 plane's 32 + 32 take 4 as 64 do (Inception's 8x8 layers lost shared, 0.65 -> 0.74 ms). The count also
    picks 6x6, 12x12 and 17x17 planes in float32 with AVX-512 (unusual input sizes, few channels): untimed."""
    if n_images != 1 or taps == 1 or rows >= OH or not cpu_gemm.is_on() or _task_rows(OH, OW, depth) < OH:
        return False
    if _channel_blocks(1, K, threads, 1) < threads:     # fewer than 2 * MIN_CHANNEL_BLOCK channels a thread
        return False
    blocks = [rows * OW] * (OH // rows) + ([OH % rows * OW] if OH % rows else [])
    return _vectors(OH * OW, itemsize) < sum(_vectors(columns, itemsize) for columns in blocks)


def _vectors(columns, itemsize):
    """The tile kernels' vector passes along a product `columns` wide (a last block of up to
    cpu_gemm.THIN_COLUMNS columns is summed by rows instead)."""
    lanes, _, nv = cpu_gemm.SHAPE
    lanes = lanes * 4 // itemsize
    width = lanes * nv
    if columns > width and columns % width <= cpu_gemm.THIN_COLUMNS:
        columns -= columns % width
    return -(-columns // lanes)


def _use_shift_gemm(stride, padding, kernel, channels, plane):
    """The shift GEMM for stride 1 with enough channels on a large enough plane, and for every
    unpadded 1x1 convolution (a plain matrix product per image); im2col/col2im otherwise."""
    if tuple(stride) != (1, 1) or channels < MIN_SHIFT_CHANNELS:
        return False
    return plane >= MIN_SHIFT_PLANE or (tuple(kernel) == (1, 1) and tuple(padding) == (0, 0))


def _by_rows(kernel, stride, padding, channels, outputs):
    """An input gradient with at most BY_ROWS_MAX_OUTPUTS outputs (dout's positions) in the batch and
    MIN_SHIFT_CHANNELS channels runs as its transpose (``cpu_im2col.col2im_by_rows``), with the tiled GEMM; not
    a strided or padded 1x1, whose dx outgrows dout (a 1x1/2 into 7x7 lost: 0.73 -> 0.82 ms per pass)."""
    return ((tuple(kernel) != (1, 1) or tuple(stride) == (1, 1) and tuple(padding) == (0, 0))
            and channels >= MIN_SHIFT_CHANNELS and outputs <= BY_ROWS_MAX_OUTPUTS and cpu_gemm.is_on())


def _folds_taps(taps):
    """Whether a forward shift GEMM is one product per task with the taps in its depth (the tiled GEMM's rows
    by table) rather than one product per tap: for kernels of more than FOLD_MIN_TAPS taps."""
    return taps >= FOLD_MIN_TAPS and cpu_gemm.is_on()


def _folds_few_outputs(stride, kernel, channels, n_images, plane):
    """A forward stride-1 convolution wider than 1x1 with few outputs (under FOLD_MAX_OUTPUTS in the batch, at
    least MIN_PHASE_PLANE per image) runs as a shift GEMM with its taps folded into one product: there it beat
    both Winograd and im2col."""
    return (tuple(stride) == (1, 1) and tuple(kernel) != (1, 1) and channels >= MIN_SHIFT_CHANNELS
            and MIN_PHASE_PLANE <= plane and n_images * plane < FOLD_MAX_OUTPUTS and cpu_gemm.is_on())


def _narrow(stride, kernel, C, K, plane):
    """A stride-1 convolution of 9 taps or more with MIN_SHIFT_CHANNELS to FOLD_MAX_CHANNELS channels in and out,
    on a plane of MIN_SHIFT_PLANE positions or more: the shift GEMM beat Winograd there, with its taps folded into
    one product, forward and for the input gradient (from a flipped, transposed copy of the weights, small here)."""
    return (tuple(stride) == (1, 1) and kernel[0] * kernel[1] >= 9 and MIN_SHIFT_CHANNELS <= min(C, K)
            and max(C, K) <= FOLD_MAX_CHANNELS and plane >= MIN_SHIFT_PLANE and cpu_gemm.is_on())


def _folds_phase_planes(stride, kernel, channels, plane):
    """A forward strided convolution that runs on the input's phase planes folds its taps into one product."""
    return FOLD_PHASE_PLANES and _use_phase_planes(stride, kernel, channels, plane) and cpu_gemm.is_on()


def _use_phase_planes(stride, kernel, channels, plane):
    """Strided convolutions with enough channels, a kernel wider than 1x1 (a 1x1 one reads one phase:
    im2col is the same copy) and at least MIN_PHASE_PLANE output positions per image, as a shift GEMM on
    the input's phase planes."""
    return (tuple(stride) != (1, 1) and channels >= MIN_SHIFT_CHANNELS and tuple(kernel) != (1, 1)
            and plane >= MIN_PHASE_PLANE)


def _pad_and_taps(x, qh, qw, w, transposed, gate=None, scale=None, clip=False, folded=False):
    """(xpad, taps, trans) for the shift GEMM, filled in one parallel region (each costs a fork/join).

    xpad[n, c, i, j] = x[n, c, i - qh, j - qw], 0 outside x (a negative q crops); x itself if q = 0.
    With `gate` and/or `scale` the copy is x * scale[c] where gate > 0, else 0 (a fused ReLU and batch
    norm backward; `clip` drops x's negative part first), and is made even for q = 0.
    taps[r, s] = W[:, :, r, s] (R, S, K, C), or with ``transposed`` the kernel of the input gradient,
    W[:, :, R-1-r, S-1-s]^T (R, S, C, K). A 1x1 kernel needs no copy: W itself, and ``trans`` tells
    the GEMM to read each tap transposed; nor do ``folded`` taps (the forward's, one product of depth
    C*R*S): W itself as (1, 1, K, C*R*S).
    """
    N, C, H, W = x.shape
    K, Cw, R, S = w.shape
    Hp, Wp = H + 2 * qh, W + 2 * qw
    gated = gate is not None
    copy_x = (qh, qw) != (0, 0) or gated or scale is not None or clip
    xpad = _buffer("xpad", N * C * Hp * Wp, x.dtype).reshape(N, C, Hp, Wp) if copy_x else x
    copy_w = R * S > 1 and not folded
    taps = (np.empty((R, S, Cw, K) if transposed else (R, S, K, Cw), w.dtype) if copy_w
            else w.reshape(1, 1, K, Cw * R * S))
    if copy_x or copy_w:
        _fill_pad_and_taps(x, xpad, qh, qw, copy_x, gate if gated else x, gated, clip,
                           scale if scale is not None else _filled(1, C, x.dtype), w, taps, copy_w, transposed)
    return xpad, taps, transposed and R * S == 1


def _shift_gemm_any(xpad, kernel, taps, trans, scale, bias, relu, out, dilation, threads, plain=False,
                    residual=None, folded=False):
    """The shift GEMM into `out`, through the epilogue (`plain`: scale 1, bias 0, no ReLU: the identity);
    kernel (R, S); ``folded``: taps from ``_pad_and_taps(..., folded=True)``, one product per task."""
    N, C, Hp, Wp = xpad.shape
    R, S = kernel
    tap_at = _tap_offsets(R, S, dilation[0], dilation[1], Wp)
    _shift_gemm_planes(xpad.reshape(N, 1, C, Hp, Wp), tap_at, taps, trans, scale, bias, relu, out, threads,
                       plain, residual, folded)


def _shift_gemm_planes(planes, tap_at, taps, trans, scale, bias, relu, out, threads, plain, residual, folded):
    """`_shift_gemm` on the planes; ``folded`` (taps: W as (1, 1, K, C*R*S)): one product of depth C*R*S per
    task, B's rows through a table (the tiled GEMM's), instead of one product per tap."""
    N, P, C, Hp, Wp = planes.shape
    K, OH, OW = out.shape[1:]
    table = _fold_table(C, Hp * Wp, tap_at.tobytes()) if folded else _NO_TABLE
    rows, kblock = _blocks(N, OH, Wp, C, K, threads, keep_rows=MIN_SPLIT_POSITIONS)
    direct = Wp == OW       # 1x1 conv without padding: the GEMM writes straight into `out`
    wide = _buffer("wide", 0 if direct else threads * kblock * ((rows - 1) * Wp + OW), out.dtype)
    _shift_gemm(planes, tap_at, taps, table, trans, scale, bias, relu, None if residual is None else residual.ravel(),
                plain, out, rows, kblock, wide.reshape(threads, -1))


def _strided_shift_gemm(x, w, stride, padding, dilation, scale, bias, relu, residual, out, threads, plain, folded):
    """A strided convolution as a shift GEMM on the input's phase planes (no im2col): with stride (sh, sw),
    phase (a, b) is planes[a, b][i, j] = xpad[sh*i + a, sw*j + b], and tap (r, s) of output (i, j) reads
    xpad[sh*i + r*dh, sw*j + s*dw], which is phase (r*dh % sh, s*dw % sw) at (i + r*dh // sh, j + s*dw // sw):
    a stride-1 shift in one phase plane. Only the phases some tap reads are built."""
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    OH, OW = out.shape[2:]
    (sh, sw), (dh, dw) = stride, dilation
    offsets = [(r * dh, s * dw) for r in range(R) for s in range(S)]
    phases = sorted({(u % sh, v % sw) for u, v in offsets})
    Hp = OH + max(u // sh for u, _ in offsets)
    Wp = OW + max(v // sw for _, v in offsets)
    planes = _buffer("phases", N * len(phases) * C * Hp * Wp, x.dtype).reshape(N, len(phases), C, Hp, Wp)
    tap_at = np.array([(phases.index((u % sh, v % sw)) * C * Hp + u // sh) * Wp + v // sw for u, v in offsets],
                      np.int64).reshape(R, S)
    _phase_planes(x, planes, np.array(phases, np.int64), sh, sw, padding[0], padding[1])
    _, taps, trans = _pad_and_taps(x, 0, 0, w, False, folded=folded)      # the taps only (no copy of x, q = 0)
    _shift_gemm_planes(planes, tap_at, taps, trans, scale, bias, relu, out, threads, plain, residual, folded)


# ---- convolution, input gradient ------------------------------------------------------------------------
def conv2d_backward_input(dout, w, x_shape, stride, padding, dilation, scale=None, gate=None, clip=False,
                          residual=None):
    dout, w, scale, gate, residual = contiguous(dout, w, scale, gate, residual)
    N, C, H, W = x_shape
    K, _, R, S = w.shape
    OH, OW = dout.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if gate is not None and gate.shape != dout.shape:
        raise ValueError(f"conv2d_backward_input: gate has shape {gate.shape}, dout {dout.shape}")
    if residual is not None and residual.shape != tuple(x_shape):
        raise ValueError(f"conv2d_backward_input: residual has shape {residual.shape}, dx {tuple(x_shape)}")
    threads = numba.get_num_threads()
    dx = cpu_memory.empty((N, C, H, W), dout.dtype)
    # Winograd, but not where the forward folds its taps for few outputs (col2im was faster there) nor on a
    # narrow layer
    winograd = (cpu_winograd.applies((R, S), stride, padding, dilation, min(C, K), (N, OH, OW))
                and not _narrow(stride, (R, S), C, K, H * W)
                and not _folds_few_outputs(stride, (R, S), min(C, K), N, OH * OW))
    if scale is not None and gate is None and not clip and not winograd and w.size <= dout.size:
        # a batch norm's scale with no ReLU step (a block's last unit, its shortcut): dx = W^T (scale * dout)
        # = (scale * W)^T dout, and W is the smaller copy (batch 8: 1x1 layers' input gradient 1.14x faster)
        w = np.multiply(w, scale.reshape(K, 1, 1, 1), out=_buffer("scaled_w", w.size, w.dtype).reshape(w.shape))
        scale = None
    with single_threaded_blas():
        if winograd:
            cpu_winograd.conv3x3_backward_input(dout, w, padding, scale, gate, clip, dx, _buffer, residual)
        elif _by_rows((R, S), stride, padding, min(C, K), N * OH * OW):
            # cols^T = dout^T W, per task a block of dx's channels: the gate and scale applied in dout's copy
            if gate is not None or scale is not None or clip:
                dout = gated_copy(dout, gate, scale, clip)
            cblock = 16 * -(-C // (32 * threads))               # two tasks per thread, whole 16-lane vectors
            scratch = _buffer("by_rows", threads * OH * OW * cblock * R * S, dout.dtype).reshape(threads, -1)
            col2im_by_rows(dout, w.reshape(K, C * R * S), None if residual is None else residual.ravel(), dx,
                           sh, sw, ph, pw, dh, dw, R, S, cblock, scratch)
        elif _use_shift_gemm(stride, padding, (R, S), min(C, K), H * W):
            # dx = conv(pad(dout, Q), flipped W^T) with Q = D(R-1) - P: a stride-1 forward convolution;
            # the gate and scale of a fused ReLU / batch norm backward are applied in the padded copy
            qh, qw = dh * (R - 1) - ph, dw * (S - 1) - pw
            folded = _narrow(stride, (R, S), C, K, H * W)           # taps folded as forward: W flipped, (C, K, R, S)
            w = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)) if folded else w
            doutp, taps, trans = _pad_and_taps(dout, qh, qw, w, not folded, gate, scale, clip, folded)
            _shift_gemm_any(doutp, (R, S), taps, trans, _filled(1, C, dout.dtype), _filled(0, C, dout.dtype), False,
                            dx, dilation, threads, plain=residual is None, residual=residual, folded=folded)
        else:
            dx.fill(0) if residual is None else np.copyto(dx, residual)         # col2im adds to what dx holds
            rows = _task_rows(OH, OW, K)
            # tasks own blocks of channels (an RGB input's all 3: 0.69x one each on VGG-16's, hot), and rows if too few
            cblock = C if C < MIN_SHIFT_CHANNELS else -(-C // max(1, min(C, -(-2 * threads // N))))
            if (gate is not None or scale is not None or clip) and cblock < C:   # tasks share rows of dout: copy it
                dout, gate, scale, clip = gated_copy(dout, gate, scale, clip), None, None, False
            tasks = N * -(-C // cblock)
            hrows = H if tasks >= 2 * threads or H < 16 * threads else -(-H // -(-2 * threads // tasks))
            cols = _buffer("cols", threads * cblock * R * S * rows * OW, dout.dtype).reshape(threads, -1)
            col2im_gemm(*gating(dout, gate, scale, clip, threads, K * rows * OW), w.reshape(K, C * R * S), dx, sh, sw,
                        ph, pw, dh, dw, R, S, rows, cblock, hrows, cols)
    return dx


# ---- convolution, weight gradient (training) ------------------------------------------------------------
def conv2d_backward_weight(dout, x, w_shape, stride, padding, dilation):
    dout, x = contiguous(dout, x)
    K, C, R, S = w_shape
    N, _, OH, OW = dout.shape
    threads = numba.get_num_threads()
    rows = _task_rows(OH, OW, C * R * S)
    partial = np.zeros((threads, K, C * R * S), dout.dtype)
    cols = _buffer("cols", threads * C * R * S * rows * OW, dout.dtype).reshape(threads, -1)
    with single_threaded_blas():
        weight_gradient(dout, x, partial, *stride, *padding, *dilation, R, S, rows, cols)
    return partial.sum(axis=0).reshape(w_shape)
