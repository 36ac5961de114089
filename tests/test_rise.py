"""RISE (minixai/methods/rise.py): the smooth masks of section 3.2, the normalisation of eq. 6 (a model that
ignores its input gets S = f * mean(M) / p, which tends to f), locality, seeds and errors."""
import numpy as np
import pytest

import minixai as mx
from minixai.methods.rise import draw_masks, upsample_masks
from perturbation_nets import linear_model, tiny_cnn

pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


def test_masks_are_smooth_shifted_grids_in_the_unit_interval():
    grids, shifts = draw_masks(500, 4, 0.3, seed=0)
    masks = upsample_masks(grids, shifts, (16, 20))
    assert masks.shape == (500, 16, 20) and masks.min() >= 0 and masks.max() <= 1
    assert abs(grids.mean() - 0.3) < 0.02 and abs(masks.mean() - 0.3) < 0.02     # E[M] = p
    assert len(np.unique(masks)) > 10                                              # bilinear, not binary
    ones = upsample_masks(np.ones((1, 4, 4), bool), np.array([[0.7, 0.2]]), (16, 20))
    np.testing.assert_array_equal(ones, 1)


def test_mask_is_the_grid_upsampled_then_cropped_at_the_shift():
    """Cells of C = ceil(16 / 4) = 4 pixels: the grid upsampled to 5 * 4 = 20 pixels, then rows dy..dy+16."""
    grid = np.zeros((1, 4, 4), bool)
    grid[0, 1, 2] = True
    unshifted = upsample_masks(grid, np.zeros((1, 2)), (16, 16))[0]
    shifted = upsample_masks(grid, np.array([[0.5, 0.75]]), (16, 16))[0]       # 2 rows, 3 columns
    big = mx.images.resize_bilinear(grid[0].astype(float), (20, 20))
    np.testing.assert_allclose(unshifted, big[:16, :16])
    np.testing.assert_allclose(shifted, big[2:18, 3:19])


def test_a_constant_model_gives_f_times_the_mask_mean_over_p():
    """f(x * M) = f for every mask: S = f / (p n) sum_i M_i, with f the softmax probability of the target."""
    model = linear_model(seed=0, shape=(3, 8, 8))
    model["fc"].weight = np.zeros_like(model["fc"].weight)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8))
    ours = mx.rise(model, x, [0, 2], n=300, cell=4, p=0.4, seed=5, progress=False)
    logits = model["fc"].bias
    f = np.exp(logits) / np.exp(logits).sum()
    grids, shifts = draw_masks(300, 4, 0.4, seed=5)
    mean_mask = upsample_masks(grids, shifts, (8, 8)).mean(axis=0)
    np.testing.assert_allclose(ours, np.stack([f[0] * mean_mask, f[2] * mean_mask]) / 0.4, rtol=1e-12)
    many = mx.rise(model, x[:1], 1, n=20000, cell=4, p=0.4, batch_size=None, progress=False)
    np.testing.assert_allclose(many[0], f[1], rtol=0.05)                # mean(M) / p -> 1


def test_saliency_sits_where_the_evidence_is():
    """A linear model that sees only the top-left 4 x 4 pixels: inside them visible pixels raise the
    target's probability; elsewhere a pixel says nothing and its saliency is the average score."""
    model = linear_model(seed=2, shape=(1, 8, 8), outputs=2)
    w = np.zeros((2, 1, 8, 8))
    w[0, 0, :4, :4] = 0.25                           # logit 0 - logit 1 in [-2, 2]: the softmax does not saturate
    model["fc"].weight, model["fc"].bias = w.reshape(2, 64), np.array([-2.0, 0.0])
    x = np.ones((1, 1, 8, 8))
    saliency = mx.rise(model, x, 0, n=4000, cell=4, p=0.5, seed=0, progress=False)[0]
    outside = saliency[4:, 4:].mean()                # ~ E[f] = 0.5: half of the 16 pixels visible on average
    assert abs(outside - 0.5) < 0.03 and saliency[:4, :4].mean() > outside + 0.05     # measured 0.604 vs 0.510


def test_seed_and_batch_size():
    model = tiny_cnn(seed=3)
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8))
    a = mx.rise(model, x, 1, n=70, seed=6, batch_size=None, progress=False)
    b = mx.rise(model, x, 1, n=70, seed=6, batch_size=16, progress=False)
    c = mx.rise(model, x, 1, n=70, seed=7, progress=False)
    assert a.shape == (2, 8, 8)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("options, message", [
    ({"p": 0}, r"p \(the probability that a cell is visible\) must be in \(0, 1\)"),
    ({"p": 1.5}, r"must be in \(0, 1\)"),
    ({"n": 0}, "n must be a positive integer"),
    ({"cell": 0}, "cell must be a positive integer"),
])
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        mx.rise(tiny_cnn(), np.zeros((1, 3, 8, 8)), 0, **options)


def test_needs_a_target():
    with pytest.raises(ValueError, match="rise needs a target class"):
        mx.rise(tiny_cnn(), np.zeros((1, 3, 8, 8)), None)
