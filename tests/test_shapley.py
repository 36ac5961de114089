"""KernelSHAP (minixai/methods/shapley.py): the exact mode against Shapley values computed from their
definition (all K! orders), efficiency in both modes, linear models, the sampler, the constrained fit."""
import math

import numpy as np
import pytest

import minixai as mx
from minixai.methods.shapley import all_coalitions, constrained_fit, sampled_coalitions, shapley_kernel
from perturbation_nets import brute_force_shapley, grid_segments, linear_model, linear_weights, tiny_cnn

pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


@pytest.fixture(scope="module")
def case():
    """A nonlinear float64 CNN, two images, a noise baseline and a 2 x 3 grid of segments (K = 6)."""
    rng = np.random.default_rng(0)
    model = tiny_cnn(seed=1)
    x, base = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((2, 3, 8, 8))
    return model, x, base, grid_segments((8, 8), 2, 3)


def coalition_value(model, x, base, segments, target):
    """v(S): the target logit with the segments in S showing x and the others the baseline, built here."""
    def value(players):
        keep = np.isin(segments, sorted(players))
        return float(model(np.where(keep, x, base)[None])[0, target])
    return value


def test_exact_mode_equals_brute_force_shapley_values(case):
    model, x, base, segments = case
    ours, values = mx.kernel_shap(model, x, [2, 0], segments=segments, baseline=base, progress=False,
                                  return_values=True)
    for i, target in enumerate([2, 0]):
        expected = brute_force_shapley(coalition_value(model, x[i], base[i], segments, target), 6)
        scale = np.abs(expected).max()
        assert scale > 1e-3                                           # something to compare
        assert np.abs(values[i] - expected).max() <= 1e-10 * scale
        for k in range(6):                                            # phi_k spread over the segment's entries
            np.testing.assert_allclose(ours[i][:, segments == k].sum(), expected[k], rtol=1e-10, atol=1e-12)
            assert np.ptp(ours[i][:, segments == k]) == 0


@pytest.mark.parametrize("n", [None, 30, 500])
def test_efficiency(case, n):
    """sum of the attributions = F(x) - F(x'), exactly, with all coalitions and with a sample."""
    model, x, base, segments = case
    ours = mx.kernel_shap(model, x, 1, segments=segments, n=n, baseline=base, seed=3, progress=False)
    expected = model(x)[:, 1] - model(base)[:, 1]
    np.testing.assert_allclose(ours.sum(axis=(1, 2, 3)), expected, rtol=1e-10, atol=1e-12)


def test_sampled_mode_approaches_the_exact_values(case):
    """The error of the sampled values shrinks as n grows (measured, relative L2: 1.16 at n = 20, 0.50 at 200,
    0.013 at 20000, this seed)."""
    model, x, base, segments = case
    exact = mx.kernel_shap(model, x[:1], 0, segments=segments, baseline=base[:1], return_values=True,
                           progress=False)[1][0]
    errors = [np.linalg.norm(mx.kernel_shap(model, x[:1], 0, segments=segments, n=n, baseline=base[:1], seed=4,
                                            batch_size=None, return_values=True, progress=False)[1][0] - exact)
              for n in (20, 200, 20000)]
    assert errors[0] > errors[1] > errors[2] and errors[2] <= 0.03 * np.linalg.norm(exact)


@pytest.mark.parametrize("n", [None, 50])
def test_linear_model_values_are_the_segment_contributions(n):
    """F(x) = w . x + b is additive over segments: phi_k = sum_{i in S_k} w_i (x_i - x'_i), in both modes."""
    model = linear_model(seed=5)
    rng = np.random.default_rng(6)
    x, base = rng.standard_normal((1, 3, 8, 8)), rng.standard_normal((1, 3, 8, 8))
    segments = grid_segments((8, 8), 3, 3)
    values = mx.kernel_shap(model, x, 2, segments=segments, n=n, baseline=base, return_values=True,
                            progress=False)[1][0]
    contribution = (linear_weights(model, 2, (3, 8, 8)) * (x[0] - base[0])).sum(axis=0)
    expected = np.bincount(segments.ravel(), weights=contribution.ravel())
    np.testing.assert_allclose(values, expected, rtol=1e-10, atol=1e-12)


def test_one_segment_gets_everything(case):
    model, x, base, _ = case
    ours = mx.kernel_shap(model, x, 0, segments=np.zeros((8, 8), int), baseline=base, progress=False)
    np.testing.assert_allclose(ours.sum(axis=(1, 2, 3)), model(x)[:, 0] - model(base)[:, 0], rtol=1e-12)


def test_default_segments_allow_the_exact_mode():
    """n=None without segments: SLIC superpixels, at most 12 per image, so 2^K coalitions stay feasible."""
    model = tiny_cnn(seed=2, size=(16, 16))
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16))
    ours, values = mx.kernel_shap(model, x, 0, return_values=True, progress=False)
    assert all(1 <= len(v) <= 12 for v in values)
    np.testing.assert_allclose(ours.sum(axis=(1, 2, 3)), model(x)[:, 0] - model(np.zeros_like(x))[:, 0],
                               rtol=1e-10, atol=1e-12)


def test_too_many_segments_for_the_exact_mode(case):
    model, x, _, _ = case
    with pytest.raises(ValueError, match=r"needs K <= 12 segments; got K = 16: pass n"):
        mx.kernel_shap(model, x, 0, segments=grid_segments((8, 8), 4, 4), progress=False)


def test_shapley_kernel_values():
    K = 5
    np.testing.assert_allclose(shapley_kernel(K, [1, 2, 3, 4]), [4 / (5 * 4), 4 / (10 * 6), 4 / (10 * 6), 4 / (5 * 4)])


def test_all_coalitions_lists_every_subset_once():
    z, weights = all_coalitions(4)
    assert z.shape == (16, 4) and len({tuple(row) for row in z}) == 16
    assert z[0].sum() == 0 and z[1].sum() == 4 and len(weights) == 14


def test_sampled_sizes_follow_the_shapley_kernel():
    """P(|z| = k) is proportional to (K - 1) / (k (K - k)): the kernel summed over the C(K, k) subsets."""
    K, n = 6, 60000
    z, weights = sampled_coalitions(np.random.default_rng(0), n, K)
    assert z[0].sum() == 0 and z[1].sum() == K and (weights == 1).all()
    counts = np.bincount(z[2:].sum(axis=1), minlength=K + 1)
    k = np.arange(1, K)
    expected = n * (1 / (k * (K - k))) / (1 / (k * (K - k))).sum()
    assert counts[0] == counts[K] == 0
    assert np.all(np.abs(counts[1:K] - expected) <= 5 * np.sqrt(expected))
    singles = z[2:][z[2:].sum(axis=1) == 1].argmax(axis=1)               # which segment: uniform
    assert np.all(np.abs(np.bincount(singles, minlength=K) - len(singles) / K) <= 5 * math.sqrt(len(singles) / K))


def test_constrained_fit_keeps_the_constraint_and_solves_exact_data():
    rng = np.random.default_rng(1)
    phi = rng.standard_normal(5)
    z = rng.integers(0, 2, (40, 5))
    weights = rng.uniform(0.1, 2, 40)
    fitted = constrained_fit(z, z @ phi, weights, phi.sum())
    np.testing.assert_allclose(fitted, phi, rtol=1e-12, atol=1e-12)
    noisy = constrained_fit(z, z @ phi + rng.normal(0, 0.1, 40), weights, 3.0)
    assert abs(noisy.sum() - 3.0) <= 1e-12
