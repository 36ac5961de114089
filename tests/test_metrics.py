"""Localisation scores (minixai.evaluation.localisation, also importable as minixai.metrics): pointing game,
relevance mass, relevance rank, top-k intersection."""
import numpy as np
import pytest

from minixai.metrics import pixel_map, pointing_game, relevance_mass, relevance_rank, top_k_intersection


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


def test_relevance_rank_counts_the_top_mask_sized_pixels():
    masks = np.zeros((2, 3, 3), bool)
    masks[0, 0, :2] = True                          # K = 2
    masks[1, 1, 1] = True                           # K = 1
    maps = np.array([[[5.0, 1.0, 4.0], [0, 0, 0], [0, 0, 0]],       # top 2: (0,0) in, (0,2) out -> 1/2
                     [[0, 0, 0], [0, 2.0, 0], [0, 0, 0]]])          # top 1 in -> 1
    np.testing.assert_allclose(relevance_rank(maps, masks), [0.5, 1.0])
    assert np.isnan(relevance_rank(maps[:1], np.zeros((1, 3, 3), bool))[0])      # an empty mask has no rank


def test_top_k_intersection_breaks_ties_by_flat_index():
    masks = np.zeros((1, 2, 3), bool)
    masks[0, 0, 1] = masks[0, 1, 2] = True
    maps = np.array([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])          # three tied maxima: pixels 0, 1, 5
    np.testing.assert_allclose(top_k_intersection(maps, masks, k=2), [0.5])      # pixels 0 and 1 come first
    np.testing.assert_allclose(top_k_intersection(maps, masks, k=3), [2 / 3])
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 6\]"):
        top_k_intersection(maps, masks, k=7)


def test_the_old_module_is_the_evaluation_package():
    from minixai import evaluation as ev
    from minixai import metrics
    assert metrics.pointing_game is ev.pointing_game and metrics.pixel_map is ev.pixel_map
