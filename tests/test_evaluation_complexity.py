"""Sparseness and complexity (minixai.evaluation.complexity) on maps whose values are known by hand."""
import numpy as np
import pytest

from minixai import evaluation as ev


def test_gini_of_uniform_single_and_two_level_maps():
    n = 16
    maps = np.zeros((3, 4, 4))
    maps[0] = 2.0                                            # uniform: 0
    maps[1, 2, 3] = 5.0                                      # one pixel: (n - 1) / n
    maps[2, :2] = 1.0                                        # half the pixels, equal: 1/2 (G = 1 - share)
    np.testing.assert_allclose(ev.sparseness(maps), [0.0, (n - 1) / n, 0.5], atol=1e-15)


def test_gini_against_the_mean_absolute_difference():
    """G = sum_ij |c_i - c_j| / (2 n^2 mean(c)), Gini's own definition, which the sorted formula equals."""
    c = np.random.default_rng(0).random((2, 5, 6))
    flat = c.reshape(2, -1)
    expected = np.abs(flat[:, :, None] - flat[:, None, :]).sum(axis=(1, 2)) / (2 * 30 ** 2 * flat.mean(axis=1))
    np.testing.assert_allclose(ev.sparseness(c), expected, rtol=1e-12)


def test_entropy_of_uniform_single_and_partly_zero_maps():
    maps = np.zeros((3, 4, 4))
    maps[0] = 0.5
    maps[1, 0, 0] = 3.0
    maps[2, 0, :2] = [1.0, 3.0]                              # p = 1/4, 3/4; 14 zeros count 0 (0 log 0 = 0)
    expected = [np.log(16), 0.0, -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))]
    np.testing.assert_allclose(ev.complexity(maps), expected, atol=1e-15)


def test_attributions_go_through_the_pixel_map():
    a = np.random.default_rng(1).standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ev.sparseness(a), ev.sparseness(np.abs(a).max(axis=1)))
    np.testing.assert_allclose(ev.complexity(a, method="ig"), ev.complexity(np.maximum(a.sum(axis=1), 0)))


def test_empty_maps_have_neither_and_dtypes_stay():
    result = ev.sparseness(np.zeros((1, 3, 3)))
    assert np.isnan(result[0]) and np.isnan(ev.complexity(np.zeros((1, 3, 3)))[0])
    assert ev.sparseness(np.ones((1, 3, 3), np.float32)).dtype == np.float32
    assert ev.complexity(np.ones((1, 3, 3))).dtype == np.float64
    with pytest.raises(TypeError, match="float array"):
        ev.sparseness(np.ones((1, 3, 3), int))
