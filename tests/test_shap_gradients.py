"""GradientSHAP and DeepLiftShap (minixai/methods/shap_gradients.py): GradientSHAP is IG in expectation
(checked against the Monte-Carlo error measured over independent seeds) and complete against the mean
baseline; DeepLiftShap is the mean of DeepLIFT over the baselines, summing to F(x) - mean F(b).
Parity with Captum: test_perturbation_parity."""
import numpy as np
import pytest

import minixai as mx
from minixai.methods.shap_gradients import background
from perturbation_nets import linear_model, linear_weights, tiny_cnn

pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    model = tiny_cnn(seed=1)
    return model, rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((3, 3, 8, 8))


def runs(model, x, target, baselines, seeds, n):
    """(mean over the runs, its standard error) of GradientSHAP with independent seeds."""
    results = np.stack([mx.gradient_shap(model, x, target, baselines, n=n, seed=s, batch_size=None, progress=False)
                        for s in seeds])
    return results.mean(axis=0), results.std(axis=0, ddof=1) / np.sqrt(len(seeds)), results


def test_one_baseline_on_a_linear_model_is_ig_exactly():
    """The gradient of w . x is w everywhere: every sample gives (x - b) * w = IG, whatever alpha."""
    model = linear_model(seed=2)
    rng = np.random.default_rng(3)
    x, base = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((1, 3, 8, 8))
    ours = mx.gradient_shap(model, x, 1, base, n=7, progress=False)
    np.testing.assert_allclose(ours, linear_weights(model, 1, (3, 8, 8)) * (x - base), rtol=1e-12, atol=1e-14)


def test_expectation_is_integrated_gradients(case):
    """stdev 0, one baseline: E[A] = IG(x; b). 16 runs of n = 400; the squared distance of their mean to
    IG (2000 midpoint steps) is compared with the Monte-Carlo variance measured from the runs themselves
    (measured: ratio 0.25; the test allows 4), which is 1e-4 of |IG|^2 (the test allows 1e-2)."""
    model, x, baselines = case
    mean, se, _ = runs(model, x, [0, 2], baselines[:1], range(16), 400)
    ig = mx.integrated_gradients(model, x, [0, 2], baseline=baselines[:1], steps=2000, method="riemann_middle",
                                 progress=False)
    assert (se ** 2).sum() <= 1e-2 * (ig ** 2).sum()                 # the test can tell IG from noise
    assert ((mean - ig) ** 2).sum() <= 4 * (se ** 2).sum()


def test_completeness_against_the_mean_baseline(case):
    """stdev 0, three baselines: E[sum A] = F(x) - mean_b F(b), within 5 standard errors of 16 runs of
    n = 4000 (measured: 0.42 and 0.11 standard errors), while F(x) - F(b) for any single baseline is 30 to
    180 standard errors away."""
    model, x, baselines = case
    _, _, results = runs(model, x, 1, baselines, range(16), 4000)
    sums = results.sum(axis=(2, 3, 4))                                   # (runs, N)
    expected = model(x)[:, 1] - model(baselines)[:, 1].mean()
    se = sums.std(axis=0, ddof=1) / np.sqrt(len(sums))
    assert np.all(np.abs(sums.mean(axis=0) - expected) <= 5 * se)
    single = model(x)[:, 1][:, None] - model(baselines)[:, 1][None]   # (N, B): complete against one baseline
    assert np.all(np.abs(single - sums.mean(axis=0)[:, None]) > 5 * se[:, None])   # which the test would notice


def test_draws_do_not_depend_on_batch_size(case):
    model, x, baselines = case
    one = mx.gradient_shap(model, x, 0, baselines, n=9, stdev=0.3, seed=4, batch_size=None, progress=False)
    few = mx.gradient_shap(model, x, 0, baselines, n=9, stdev=0.3, seed=4, batch_size=4, progress=False)
    np.testing.assert_allclose(one, few, rtol=1e-12, atol=1e-14)
    other = mx.gradient_shap(model, x, 0, baselines, n=9, stdev=0.3, seed=5, progress=False)
    assert not np.allclose(one, other)


def test_noise_moves_the_input():
    """With stdev > 0 the expectation is over x + eps: on a linear model sum A = w . (x + mean eps - b)."""
    model = linear_model(seed=6)
    x = np.zeros((1, 3, 8, 8))
    ours = mx.gradient_shap(model, x, 0, "zeros", n=2000, stdev=1.0, seed=7, progress=False)
    w = linear_weights(model, 0, (3, 8, 8))
    assert np.abs(ours).sum() > 0                                      # noise, not zero, per sample
    assert abs(ours.sum()) <= 5 * np.linalg.norm(w) / np.sqrt(2000)    # E[w . eps] = 0


def test_deeplift_shap_is_the_mean_of_deeplift(case):
    model, x, baselines = case
    ours, delta = mx.deeplift_shap(model, x, [1, 0], baselines, return_delta=True, progress=False)
    expected = np.mean([mx.deeplift(model, x, [1, 0], baseline=b[None]) for b in baselines], axis=0)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-14)
    gap = model(x)[[0, 1], [1, 0]] - model(baselines)[:, [1, 0]].mean(axis=0)
    np.testing.assert_allclose(ours.sum(axis=(1, 2, 3)), gap, rtol=1e-10)      # summation to delta
    assert np.abs(delta).max() <= 1e-10 * np.abs(ours).sum()
    few = mx.deeplift_shap(model, x, [1, 0], baselines, batch_size=2, progress=False)
    np.testing.assert_allclose(few, ours, rtol=1e-12, atol=1e-14)


def test_default_baselines_are_black_and_noise(case):
    model, x, _ = case
    pictures = background(x, model.spec, count=4, seed=0)
    assert pictures.shape == (4, 3, 8, 8)
    np.testing.assert_allclose(pictures[0], mx.baselines.make_baseline("black", x[:1], model.spec)[0])
    assert len({p.tobytes() for p in pictures}) == 4
    ours = mx.deeplift_shap(model, x, 0, progress=False)
    np.testing.assert_allclose(ours, mx.deeplift_shap(model, x, 0, background(x, model.spec), progress=False))


@pytest.mark.parametrize("baselines, message", [
    (np.zeros((1, 3, 8, 8)), "needs at least 2 baselines .* got 1; with one baseline use mx.deeplift"),
    (np.zeros((3, 8, 8)), r"baselines must be an array \(B, C, H, W\)"),
    (np.zeros((2, 3, 8, 4)), r"baselines have shape \(3, 8, 4\) per image, the inputs \(3, 8, 8\)"),
    (np.full((2, 3, 8, 8), np.nan), "baselines contains NaN or infinite values"),
    ("blur", "the 'blur' baseline is one per image"),
])
def test_bad_baselines(case, baselines, message):
    model, x, _ = case
    with pytest.raises(ValueError, match=message):
        mx.deeplift_shap(model, x, 0, baselines, progress=False)


def test_bad_options(case):
    model, x, baselines = case
    with pytest.raises(ValueError, match="stdev must be >= 0"):
        mx.gradient_shap(model, x, 0, baselines, stdev=-1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        mx.gradient_shap(model, x, 0, baselines, n=0)
