"""The similarities of the sanity checks (minixai.evaluation.similarity) against SciPy and scikit-image."""
import numpy as np
import pytest
from scipy.stats import spearmanr

from minixai import evaluation as ev
from minixai.evaluation.similarity import hog, pearson


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.random((3, 32, 32))
    b = a + 0.5 * rng.random((3, 32, 32))
    b[0, 4:12] = 0.0                                    # ties
    return a, b


def test_spearman_is_scipys(pair):
    a, b = pair
    expected = [spearmanr(u.ravel(), v.ravel())[0] for u, v in zip(a, b)]
    np.testing.assert_allclose(ev.similarity(a, b, "spearman"), expected, rtol=1e-12)


def test_ssim_is_scikit_images(pair):
    metrics = pytest.importorskip("skimage.metrics")
    a, b = pair
    expected = [metrics.structural_similarity(u, v, data_range=max(u.max(), v.max()) - min(u.min(), v.min()))
                for u, v in zip(a, b)]
    np.testing.assert_allclose(ev.similarity(a, b, "ssim"), expected, rtol=1e-12)


def test_hog_is_scikit_images(pair):
    feature = pytest.importorskip("skimage.feature")
    a, _ = pair
    expected = np.stack([feature.hog(u) for u in a])
    np.testing.assert_allclose(hog(a), expected, atol=1e-7)      # measured: 2.6e-8 (scikit-image's rounding)


def test_identical_maps_score_one_and_constant_maps_nan(pair):
    a, _ = pair
    for kind in ("spearman", "ssim", "hog"):
        np.testing.assert_allclose(ev.similarity(a, a, kind), 1.0)
    flat = np.ones((1, 32, 32))
    assert np.isnan(ev.similarity(flat, a[:1], "spearman")[0]) and np.isnan(ev.similarity(flat, a[:1], "hog")[0])


def test_pearson_is_numpys():
    u, v = np.random.default_rng(1).standard_normal((2, 4, 50))
    np.testing.assert_allclose(pearson(u, v), [np.corrcoef(p, q)[0, 1] for p, q in zip(u, v)], rtol=1e-12)


def test_bad_similarity_input_is_named(pair):
    a, b = pair
    with pytest.raises(ValueError, match="unknown similarity 'l2'; valid: spearman, ssim, hog"):
        ev.similarity(a, b, "l2")
    with pytest.raises(ValueError, match="same shape"):
        ev.similarity(a, b[:, :16], "ssim")
