"""ROAD (minixai.evaluation.road): the imputation reproduces what it should, the curve is its definition."""
import numpy as np
import pytest
from evaluation_helpers import linear_model, logits, softmax

from minixai import evaluation as ev
from minixai.evaluation.road import noisy_linear_imputation


def test_imputation_is_exact_on_a_plane_away_from_the_border():
    """Inside the image every pixel has its 8 neighbours with symmetric weights, so their weighted mean of a
    plane a r + b c + d is the plane itself: removed interior pixels come back exactly."""
    r, c = np.mgrid[0:12, 0:12]
    image = np.stack([2.0 * r - 0.5 * c + 1, -r + 3.0 * c])
    removed = np.zeros((12, 12), bool)
    removed[3:9, 2:10] = True
    removed[5, 5:8] = False
    np.testing.assert_allclose(noisy_linear_imputation(image, removed), image, atol=1e-12)


def test_imputed_pixel_is_the_weighted_mean_of_its_neighbours():
    image = np.arange(25.0).reshape(1, 5, 5) ** 1.5
    removed = np.zeros((5, 5), bool)
    removed[0, 0] = removed[2, 3] = True                  # a corner (3 neighbours) and an interior pixel
    out = noisy_linear_imputation(image, removed)[0]
    x = image[0]
    corner = (x[0, 1] / 6 + x[1, 0] / 6 + x[1, 1] / 12) / (1 / 6 + 1 / 6 + 1 / 12)
    inner = (x[1, 3] + x[3, 3] + x[2, 2] + x[2, 4]) / 6 + (x[1, 2] + x[1, 4] + x[3, 2] + x[3, 4]) / 12
    np.testing.assert_allclose([out[0, 0], out[2, 3]], [corner, inner], rtol=1e-12)
    np.testing.assert_array_equal(out[~removed], x[~removed])


def test_noise_is_seeded_and_has_its_scale():
    image = np.zeros((3, 40, 40))
    removed = np.zeros((40, 40), bool)
    removed[5:35, 5:35] = True
    first = noisy_linear_imputation(image, removed, 0.5, np.random.default_rng(7))
    again = noisy_linear_imputation(image, removed, 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(first, again)
    assert first[:, removed].std() == pytest.approx(0.5, rel=0.03)        # 2700 draws
    assert (first[:, ~removed] == 0).all()


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
    np.testing.assert_array_equal(one, ev.road(model, x, 0, maps, batch_size=None, seed=3, progress=False).curve)


def test_bad_road_input_is_named():
    model, _, _ = linear_model(shape=(1, 5, 5))
    x, maps = np.zeros((1, 1, 5, 5)), np.ones((1, 5, 5))
    with pytest.raises(ValueError, match=r"percentages must be a non-empty sequence of numbers in \[0, 100\)"):
        ev.road(model, x, 0, maps, percentages=(50, 100))
    with pytest.raises(ValueError, match="unknown order 'top'; valid: morf, lerf"):
        ev.road(model, x, 0, maps, order="top")
    with pytest.raises(ValueError, match="noise must be >= 0"):
        ev.road(model, x, 0, maps, noise=-1)
