"""ROAD (minixai.evaluation.road): the curve is its definition, on a linear model computed by hand."""
import numpy as np
import pytest
from evaluation_helpers import linear_model, logits, softmax

from minixai import evaluation as ev
from minixai.evaluation.imputation import noisy_linear_imputation


def test_road_curve_is_the_definition_on_a_linear_model():
    model, W, b = linear_model(shape=(2, 6, 6))
    rng = np.random.default_rng(0)
    x, maps, y = rng.standard_normal((2, 2, 6, 6)), rng.random((2, 6, 6)), np.array([1, 2])
    result = ev.road(model, x, y, maps, percentages=(0, 25, 50), order="lerf", noise=0.0, progress=False)
    for n in range(2):
        order = np.argsort(maps[n].ravel(), kind="stable")                 # least relevant first
        for j, p in enumerate((0, 25, 50)):
            removed = np.zeros(36, bool)
            removed[order[:int(36 * p / 100)]] = True
            z = logits(W, b, noisy_linear_imputation(x[n], removed.reshape(6, 6))[None])[0]
            assert result.curve[n, j] == pytest.approx(softmax(z)[y[n]], rel=1e-12)
            assert result.correct[n, j] == (z.argmax() == y[n])
    np.testing.assert_allclose(result.fractions, [0, 0.25, 0.5])


def test_road_noise_does_not_depend_on_batching():
    model, _, _ = linear_model(shape=(1, 5, 5))
    rng = np.random.default_rng(0)
    x, maps = rng.standard_normal((3, 1, 5, 5)), rng.random((3, 5, 5))
    one = ev.road(model, x, 0, maps, batch_size=1, seed=3, progress=False).curve
    np.testing.assert_allclose(one, ev.road(model, x, 0, maps, batch_size=None, seed=3, progress=False).curve,
                               rtol=1e-12, atol=0)        # last bits: BLAS rounds edge blocks by batch size


def test_bad_road_input_is_named():
    model, _, _ = linear_model(shape=(1, 5, 5))
    x, maps = np.zeros((1, 1, 5, 5)), np.ones((1, 5, 5))
    with pytest.raises(ValueError, match=r"percentages must be a non-empty sequence of numbers in \[0, 100\)"):
        ev.road(model, x, 0, maps, percentages=(50, 100))
    with pytest.raises(ValueError, match="unknown order 'top'; valid: morf, lerf"):
        ev.road(model, x, 0, maps, order="top")
    with pytest.raises(ValueError, match="noise must be >= 0"):
        ev.road(model, x, 0, maps, noise=-1)
