"""Occlusion (minixai/methods/occlusion.py): Captum's window positions, the average over covering windows,
its closed form on a linear model, and its errors. Parity with Captum itself: test_perturbation_parity."""
import numpy as np
import pytest

import minixai as mx
from minixai.methods.occlusion import check_window, occluded, window_boxes, window_starts
from perturbation_nets import linear_model, linear_weights, tiny_cnn

pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


@pytest.mark.parametrize("size, window, stride, starts", [
    (10, 3, 4, [0, 4, 8]),            # ceil(7 / 4) + 1 = 3; the last window (8..10) is cut at the border
    (10, 3, 3, [0, 3, 6, 9]),         # ceil(7 / 3) + 1 = 4; 9..11 cut to 9..10
    (8, 8, 4, [0]),                   # the window fills the dimension: one position whatever the stride
    (64, 8, 4, list(range(0, 57, 4))),
    (3, 1, 1, [0, 1, 2]),
])
def test_window_starts_follow_captums_count(size, window, stride, starts):
    assert window_starts(size, window, stride) == starts


def test_boxes_are_cut_at_the_border_and_cover_everything():
    boxes = window_boxes((3, 10, 6), (2, 4, 3), (1, 4, 2))
    assert len(boxes) == 2 * 3 * 3
    coverage = np.zeros((3, 10, 6), int)
    for box in boxes:
        coverage[box] += 1
    assert coverage.min() >= 1
    assert boxes[-1] == (slice(1, 3), slice(8, 10), slice(4, 6))       # the last window, cut in rows and columns
    np.testing.assert_array_equal(coverage[:, 0, 0], [1, 2, 1])         # channel windows 0..1 and 1..2 overlap
    np.testing.assert_array_equal(coverage[0, :, 0], [1] * 10)          # rows 0..4, 4..8, 8..10 do not
    np.testing.assert_array_equal(coverage[0, 0, :], [1, 1, 2, 1, 2, 1])   # columns 0..3, 2..5, 4..6 do


def test_occluded_copies_replace_one_box_each():
    x, reference = np.ones((2, 4, 4)), np.zeros((2, 4, 4))
    boxes = window_boxes((2, 4, 4), (1, 2, 2), (1, 2, 2))
    out = occluded(x, reference, boxes)
    assert out.shape == (8, 2, 4, 4)
    np.testing.assert_array_equal(out.sum(axis=(1, 2, 3)), [32 - 4] * 8)
    assert (out[3][boxes[3]] == 0).all() and out[3].sum() == 28


def test_linear_model_closed_form():
    """For F(x) = w . x + b a window's drop is sum_{j in window} w_j (x_j - x'_j); each element gets the mean
    drop of the windows that cover it. Computed here element by element from the definition."""
    shape = (3, 6, 5)
    model = linear_model(seed=1, shape=shape)
    rng = np.random.default_rng(2)
    x, base = rng.standard_normal((1, *shape)), rng.standard_normal((1, *shape))
    window, stride = (2, 3, 2), (1, 2, 2)
    ours = mx.occlusion(model, x, 1, window=window, stride=stride, baseline=base, progress=False)
    contribution = linear_weights(model, 1, shape) * (x[0] - base[0])
    drops = {}
    for c0 in window_starts(3, 2, 1):
        for r0 in window_starts(6, 3, 2):
            for s0 in window_starts(5, 2, 2):
                drops[c0, r0, s0] = contribution[c0:c0 + 2, r0:r0 + 3, s0:s0 + 2].sum()
    expected = np.zeros(shape)
    for (c, r, s) in np.ndindex(*shape):
        covering = [d for (c0, r0, s0), d in drops.items()
                    if c0 <= c < c0 + 2 and r0 <= r < r0 + 3 and s0 <= s < s0 + 2]
        expected[c, r, s] = np.mean(covering)
    np.testing.assert_allclose(ours[0], expected, rtol=1e-12, atol=1e-12)


def test_single_element_windows_of_a_linear_model_are_gradient_times_difference():
    """Degenerate case: 1 x 1 x 1 windows with stride 1 on F(x) = w . x give w * (x - x')."""
    model = linear_model(seed=3, shape=(3, 4, 4))
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 4))
    ours = mx.occlusion(model, x, [0, 2], window=(1, 1, 1), stride=1, progress=False)
    expected = np.stack([linear_weights(model, t, (3, 4, 4)) * x[i] for i, t in enumerate([0, 2])])
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_whole_image_window_spreads_the_total_drop():
    model = tiny_cnn(seed=5)
    x = np.random.default_rng(6).standard_normal((2, 3, 8, 8))
    ours = mx.occlusion(model, x, 1, window=(3, 8, 8), stride=1, progress=False)
    logits = model(x)[:, 1] - model(np.zeros_like(x))[:, 1]
    np.testing.assert_allclose(ours, np.broadcast_to(logits[:, None, None, None], x.shape), rtol=1e-12)


def test_batch_size_and_target_none():
    model = tiny_cnn(seed=7)
    x = np.random.default_rng(8).standard_normal((2, 3, 8, 8)).astype(np.float32)
    one = mx.occlusion(model, x, None, window=(1, 3, 3), stride=(1, 2, 2), batch_size=None, progress=False)
    few = mx.occlusion(model, x, None, window=(1, 3, 3), stride=(1, 2, 2), batch_size=5, progress=False)
    assert one.dtype == np.float32
    np.testing.assert_allclose(one, few, rtol=1e-5, atol=1e-6)
    summed = sum(mx.occlusion(model, x, t, window=(1, 3, 3), stride=(1, 2, 2), progress=False) for t in range(3))
    np.testing.assert_allclose(one, summed, rtol=1e-4, atol=1e-5)     # target=None explains the sum of logits


@pytest.mark.parametrize("window, stride, message", [
    ((3, 9, 8), 1, r"window \(3, 9, 8\) is larger than the input \(3, 8, 8\) in the row dimension"),
    ((3, 4, 4), (3, 5, 4), r"stride \(3, 5, 4\) is larger than window \(3, 4, 4\) in the row dimension"),
    ((8, 8), 1, r"window must be 3 positive ints \(channels, rows, columns\), got \(8, 8\)"),
    (4, 1, r"window must be 3 positive ints"),
    ((3, 0, 4), 1, r"window must be 3 positive ints"),
    ((3, 4, 4), (1, 2), r"stride must be an int or 3 positive ints"),
    ((3, 4, 4), 0, r"stride must be an int or 3 positive ints"),
])
def test_bad_windows_are_refused(window, stride, message):
    with pytest.raises(ValueError, match=message):
        check_window(window, stride, (3, 8, 8))


def test_stride_may_exceed_a_window_that_fills_its_dimension():
    assert check_window((3, 4, 4), (5, 2, 2), (3, 8, 8)) == ((3, 4, 4), (5, 2, 2))


def test_bad_batch_size():
    model = tiny_cnn()
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        mx.occlusion(model, np.zeros((1, 3, 8, 8)), 0, batch_size=0, progress=False)
