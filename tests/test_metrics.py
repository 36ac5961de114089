"""Localisation scores: pointing game and relevance mass."""
import numpy as np
import pytest

from minixai.metrics import pixel_map, pointing_game, relevance_mass


def test_pointing_game_hits_and_misses():
    masks = np.zeros((2, 4, 4), bool)
    masks[:, :2, :2] = True
    maps = np.zeros((2, 4, 4))
    maps[0, 1, 1] = 3.0          # peak inside
    maps[1, 3, 3] = 3.0          # peak outside
    maps[1, 0, 0] = 1.0
    assert pointing_game(maps, masks).tolist() == [True, False]
    assert not pointing_game(np.zeros((1, 4, 4)), masks[:1])[0]     # an empty map points nowhere


def test_relevance_mass_counts_positive_share():
    masks = np.zeros((1, 2, 2), bool)
    masks[0, 0, 0] = True
    maps = np.array([[[3.0, 1.0], [-5.0, 0.0]]])
    assert relevance_mass(maps, masks)[0] == pytest.approx(3.0 / 4.0)
    assert relevance_mass(np.zeros((1, 2, 2)), masks)[0] == 0.0


def test_pixel_map_by_kind_of_method():
    a = np.array([[[[1.0, -2.0]], [[-3.0, 1.0]]]])       # (1, 2, 1, 2)
    np.testing.assert_array_equal(pixel_map(a, "saliency"), [[[3.0, 2.0]]])   # max |a_k|
    np.testing.assert_array_equal(pixel_map(a, "ig"), [[[0.0, 0.0]]])         # positive part of sum: -2, -1
    np.testing.assert_array_equal(pixel_map(np.array([[[-1.0, 2.0]]]), "gradcam"), [[[0.0, 2.0]]])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        pointing_game(np.zeros((1, 3, 3)), np.zeros((1, 4, 4), bool))
