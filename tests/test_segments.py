"""Superpixels (minixai/methods/segments.py): ids without gaps, about n of them, the spec's pixels,
at most 12 for exact KernelSHAP, and the checks of user-given segments."""
import numpy as np
import pytest

import minixai as mx
from minixai import models
from minixai.methods.segments import check_segments, coarse_segments


@pytest.fixture(scope="module")
def shapes_batch():
    return models.load("shapes").spec, mx.data.shapes.generate(6, seed=2)


def test_ids_are_numbered_without_gaps_and_about_n(shapes_batch):
    spec, batch = shapes_batch
    seg = mx.segments(batch.images, n=50, spec=spec)
    assert seg.shape == (6, 64, 64) and seg.dtype == np.int64
    for s in seg:
        ids = np.unique(s)
        np.testing.assert_array_equal(ids, np.arange(len(ids)))
        assert 25 <= len(ids) <= 75                                      # SLIC aims at n, not exactly
    assert check_segments(seg, batch.images) is not None


def test_segments_follow_the_object(shapes_batch):
    """Superpixels hug colour edges: most of each shape's mask lies in segments that are mostly inside it."""
    spec, batch = shapes_batch
    seg = mx.segments(batch.images, n=50, spec=spec)
    for s, mask in zip(seg, batch.masks):
        inside = np.bincount(s[mask], minlength=s.max() + 1) / np.bincount(s.ravel())
        assert mask[inside[s] > 0.5].sum() >= 0.6 * mask.sum()


def test_without_spec_each_channel_is_stretched(shapes_batch):
    """Without a spec each channel is stretched to [0, 1] by its own minimum and maximum, so a positive
    affine map of a channel (another normalisation) changes nothing."""
    _, batch = shapes_batch
    x = batch.images[:2]
    scale, shift = np.array([2.0, 0.5, 3.0])[:, None, None], np.array([1.0, -2.0, 0.3])[:, None, None]
    np.testing.assert_array_equal(mx.segments(x, n=30), mx.segments((x * scale + shift).astype(np.float32), n=30))


def test_coarse_segments_have_at_most_12():
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    assert (mx.segments(x, n=12).reshape(3, -1).max(axis=1) + 1).max() > 12     # SLIC overshoots here
    coarse = coarse_segments(x, at_most=12)
    assert (coarse.reshape(3, -1).max(axis=1) + 1).max() <= 12


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((8, 8)), TypeError, "segments must be integer ids"),
    (np.zeros((2, 8, 7), int), ValueError, r"segments must have shape \(2, 8, 8\) \(N, H, W\)"),
    (np.full((8, 8), 1), ValueError, "numbered 0..K-1 without gaps"),
    (np.where(np.arange(64).reshape(8, 8) < 32, 0, 2), ValueError, "numbered 0..K-1 without gaps"),
])
def test_bad_segments_are_refused(bad, error, message):
    with pytest.raises(error, match=message):
        check_segments(bad, np.zeros((2, 3, 8, 8), np.float32))


def test_one_map_serves_the_batch():
    seg = check_segments(np.arange(64).reshape(8, 8) // 32, np.zeros((2, 3, 8, 8)))
    assert seg.shape == (2, 8, 8)


def test_bad_options():
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        mx.segments(x, n=0)
    with pytest.raises(ValueError, match="compactness must be > 0"):
        mx.segments(x, compactness=0)
