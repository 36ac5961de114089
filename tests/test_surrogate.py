"""LIME (minixai/methods/surrogate.py): a linear model's coefficients are recovered exactly, the kernel and
the sampler are the paper's, and the attributions spread each coefficient over its segment."""
import numpy as np
import pytest

import minixai as mx
from minixai.methods.surrogate import lime_kernel, sample_coalitions, weighted_linear_fit
from perturbation_nets import grid_segments, linear_model, linear_weights, tiny_cnn

pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


@pytest.mark.parametrize("baseline", ["zeros", "noise"])
def test_linear_model_recovers_its_coefficients(baseline):
    """F(x) = w . x + b is exactly g(z) = c_0 + sum_k c_k z_k with c_k = sum_{i in S_k} w_i (x_i - x'_i) and
    c_0 = F(x'): the weighted least squares finds it whatever the weights (float64, 1e-10)."""
    model = linear_model(seed=1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 8))
    base = np.zeros_like(x) if baseline == "zeros" else rng.standard_normal(x.shape)
    segments = np.stack([grid_segments((8, 8), 2, 4), grid_segments((8, 8), 3, 3)])     # K = 8 and 9
    ours, values = mx.lime(model, x, [1, 2], segments=segments, n=200, baseline=base, return_values=True,
                           progress=False)
    for i, target in enumerate([1, 2]):
        contribution = (linear_weights(model, target, (3, 8, 8)) * (x[i] - base[i])).sum(axis=0)
        expected = np.bincount(segments[i].ravel(), weights=contribution.ravel())
        np.testing.assert_allclose(values[i], expected, rtol=1e-10, atol=1e-12)
        for k in range(len(expected)):                       # each c_k spread evenly over C * |S_k| entries
            np.testing.assert_allclose(ours[i][:, segments[i] == k], expected[k] / (3 * (segments[i] == k).sum()),
                                       rtol=1e-10, atol=1e-14)


def test_explains_the_logit_not_the_probability():
    """Doubling the logits doubles LIME's coefficients (a probability would not scale so)."""
    model = tiny_cnn(seed=3)
    x = np.random.default_rng(4).standard_normal((1, 3, 8, 8))
    segments = grid_segments((8, 8), 2, 2)
    before = mx.lime(model, x, 0, segments=segments, n=50, progress=False)
    model["fc"].weight, model["fc"].bias = 2 * model["fc"].weight, 2 * model["fc"].bias
    after = mx.lime(model, x, 0, segments=segments, n=50, progress=False)
    np.testing.assert_allclose(after, 2 * before, rtol=1e-10, atol=1e-12)


def test_kernel_is_the_papers_exponential_of_the_cosine_distance():
    z = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    cosine = 1 - z.sum(axis=1) / (np.sqrt(z.sum(axis=1)) * 2)            # 1 - z.1 / (|z| |1|)
    np.testing.assert_allclose(lime_kernel(z, 0.5), np.exp(-cosine ** 2 / 0.25))
    assert lime_kernel(z, 0.5)[0] == 1


def test_sampled_coalitions_start_with_the_image_and_have_uniform_sizes():
    z = sample_coalitions(np.random.default_rng(0), 20001, 5)
    assert z[0].tolist() == [1] * 5
    counts = np.bincount(z[1:].sum(axis=1), minlength=6)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 4000) <= 5 * np.sqrt(4000))


def test_weighted_fit_weights_matter_when_the_model_is_not_linear():
    z = np.array([[0], [1], [1]])
    f = np.array([0.0, 1.0, 3.0])
    assert weighted_linear_fit(z, f, np.array([1.0, 1.0, 1.0]))[1][0] == pytest.approx(2.0)
    assert weighted_linear_fit(z, f, np.array([1.0, 1.0, 0.0]))[1][0] == pytest.approx(1.0)


def test_same_seed_same_result_and_errors():
    model = tiny_cnn(seed=5)
    x = np.random.default_rng(6).standard_normal((1, 3, 8, 8))
    segments = grid_segments((8, 8), 2, 2)
    np.testing.assert_array_equal(mx.lime(model, x, 0, segments=segments, n=30, seed=7, progress=False),
                                  mx.lime(model, x, 0, segments=segments, n=30, seed=7, batch_size=4,
                                          progress=False))
    with pytest.raises(ValueError, match="kernel_width must be > 0"):
        mx.lime(model, x, 0, segments=segments, kernel_width=0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        mx.lime(model, x, 0, segments=segments, n=0)
