"""Deletion, insertion and pixel flipping (minixai.evaluation.faithfulness) against a slow re-implementation
on a linear model, whose scores are W vec(x) + b, computed here without the engine."""
import numpy as np
import pytest
from evaluation_helpers import linear_model, logits, softmax

from minixai import evaluation as ev
from minixai.evaluation.maps import pixel_order, pixel_ranks


def slow_curve(W, b, x, maps, target, steps, reference, insert=False, score="probability", most_first=True):
    """The curve by the definition, one image and one step at a time: visit the pixels by value (largest
    first, ties by flat index), at step k replace the first round(k H W / steps) of them."""
    N, _, H, Wd = x.shape
    out = np.empty((N, steps + 1))
    for n in range(N):
        values = maps[n].ravel()
        order = sorted(range(H * Wd), key=lambda i: ((-values[i] if most_first else values[i]), i))
        for k in range(steps + 1):
            image = (reference[n] if insert else x[n]).copy()
            for i in order[:int(np.round(k * H * Wd / steps))]:
                r, c = divmod(i, Wd)
                image[:, r, c] = x[n, :, r, c] if insert else reference[n, :, r, c]
            z = logits(W, b, image[None])[0]
            out[n, k] = softmax(z)[target[n]] if score == "probability" else z[target[n]]
    return out


@pytest.fixture
def setup():
    model, W, b = linear_model()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 4, 4))
    maps = np.round(rng.random((3, 4, 4)), 1)          # rounded: ties, which the stable order must resolve
    return model, W, b, x, maps, np.array([0, 2, 1])


def test_deletion_is_the_definition(setup):
    model, W, b, x, maps, y = setup
    black = np.broadcast_to(model.spec.normalize(np.zeros((1, 2, 1, 1))), x.shape)
    result = ev.deletion(model, x, y, maps, steps=5, progress=False)
    np.testing.assert_allclose(result.curve, slow_curve(W, b, x, maps, y, 5, black), rtol=1e-12)
    np.testing.assert_allclose(result.auc, np.trapezoid(result.curve, np.linspace(0, 1, 6), axis=1), rtol=1e-12)
    assert result.curve.dtype == np.float64 and result.curve.shape == (3, 6)


def test_insertion_is_the_definition(setup):
    model, W, b, x, maps, y = setup
    reference = np.random.default_rng(2).standard_normal(x.shape)
    result = ev.insertion(model, x, y, maps, steps=7, baseline=reference, progress=False)
    expected = slow_curve(W, b, x, maps, y, 7, reference, insert=True)
    np.testing.assert_allclose(result.curve, expected, rtol=1e-12)
    np.testing.assert_allclose(result.curve[:, -1], softmax(logits(W, b, x))[np.arange(3), y], rtol=1e-12)


def test_pixel_flipping_scores_the_logit_in_both_orders(setup):
    model, W, b, x, maps, y = setup
    minimum = np.broadcast_to(x.min(axis=(1, 2, 3), keepdims=True), x.shape)      # Quantus's "black"
    for order, most_first in (("morf", True), ("lerf", False)):
        result = ev.pixel_flipping(model, x, y, maps, steps=16, order=order, baseline="minimum", progress=False)
        expected = slow_curve(W, b, x, maps, y, 16, minimum, score="logit", most_first=most_first)
        np.testing.assert_allclose(result.curve, expected, rtol=1e-12)


def test_four_d_attributions_reduce_by_max_abs_and_signed_methods_by_positive_sum(setup):
    model, W, b, x, _, y = setup
    a = np.random.default_rng(3).standard_normal(x.shape)
    black = model.spec.normalize(np.zeros_like(x))
    plain = ev.deletion(model, x, y, a, steps=4, progress=False)
    np.testing.assert_allclose(plain.curve, slow_curve(W, b, x, np.abs(a).max(axis=1), y, 4, black), rtol=1e-12)
    signed = ev.deletion(model, x, y, a, steps=4, method="gxi", progress=False)
    expected = slow_curve(W, b, x, np.maximum(a.sum(axis=1), 0), y, 4, black)
    np.testing.assert_allclose(signed.curve, expected, rtol=1e-12)


def test_ties_are_visited_in_flat_index_order():
    m = np.array([[[0.0, 2.0, 0.0], [1.0, 0.0, 2.0]]])
    assert pixel_order(m, "morf").tolist() == [[1, 5, 3, 0, 2, 4]]
    assert pixel_order(m, "lerf").tolist() == [[0, 2, 4, 3, 1, 5]]          # not the reverse of morf
    assert pixel_ranks(m, "morf").tolist() == [[3, 0, 4, 2, 5, 1]]


def test_batch_size_changes_nothing(setup):
    model, _, _, x, maps, y = setup
    curves = [ev.deletion(model, x, y, maps, steps=6, batch_size=size, progress=False).curve for size in (1, 5, None)]
    # equal up to the last bits: the kernels split a batch into GEMM tasks by its size, and BLAS rounds a
    # product's edge blocks in its own way (OpenBLAS's AVX-512 kernels do)
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-12, atol=0)
    np.testing.assert_allclose(curves[0], curves[2], rtol=1e-12, atol=0)


def test_float32_in_float32_out(setup):
    model, _, _, x, maps, y = setup
    model.astype(np.float32)
    assert ev.insertion(model, x.astype(np.float32), y, maps.astype(np.float32), progress=False).curve.dtype == \
        np.float32


def test_bad_input_is_named(setup):
    model, _, _, x, maps, y = setup
    with pytest.raises(ValueError, match=r"do not fit x of shape \(3, 2, 4, 4\)"):
        ev.deletion(model, x, y, maps[:, :3], progress=False)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        ev.deletion(model, x, y, maps, steps=0, progress=False)
    with pytest.raises(ValueError, match="unknown baseline 'dark'; valid: black, white, gray, zeros, blur"):
        ev.insertion(model, x, y, maps, baseline="dark", progress=False)
    with pytest.raises(ValueError, match="unknown order 'random'; valid: morf, lerf"):
        ev.pixel_flipping(model, x, y, maps, order="random", progress=False)
    with pytest.raises(ValueError, match="unknown method 'grad'; valid: saliency, gxi"):
        ev.deletion(model, x, y, np.ones_like(x), method="grad", progress=False)
    with pytest.raises(ValueError, match="NaN"):
        ev.deletion(model, x, y, maps * np.nan, progress=False)
    with pytest.raises(ValueError, match="target 5 is out of range"):
        ev.deletion(model, x, 5, maps, progress=False)
