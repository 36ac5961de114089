"""Infidelity and max-sensitivity (minixai.evaluation.robustness) on a linear model, where both are known:
the gradient of f(x) = W x + b explains every perturbation exactly and never moves."""
import numpy as np
import pytest
from evaluation_helpers import linear_model, logits

import minixai as mx
from minixai import evaluation as ev
from minixai.evaluation.robustness import sensitivity_noise


@pytest.fixture
def setup():
    model, W, b = linear_model()
    rng = np.random.default_rng(1)
    return model, W, b, rng.standard_normal((3, 2, 4, 4)), np.array([0, 2, 1])


def test_the_gradient_of_a_linear_model_has_zero_infidelity(setup):
    model, W, _, x, y = setup
    a = W[y].reshape(x.shape)                          # I . a = f(x) - f(x - I) for every I
    assert np.abs(ev.infidelity(model, x, y, a, n=8, progress=False)).max() < 1e-20
    assert np.abs(ev.infidelity(model, x, y, 3 * a, n=8, normalize=True, progress=False)).max() < 1e-20
    assert ev.infidelity(model, x, y, 3 * a, n=8, progress=False).min() > 0      # the scale counts without it


def test_infidelity_is_the_mean_squared_error_over_given_perturbations(setup):
    model, W, b, x, y = setup
    rng = np.random.default_rng(2)
    deltas, a = rng.standard_normal((5, *x.shape)), rng.standard_normal(x.shape)     # I_k, k = 1..5
    drop = np.stack([logits(W, b, x)[np.arange(3), y] - logits(W, b, x - d)[np.arange(3), y] for d in deltas], 1)
    dots = np.einsum("knchw,nchw->nk", deltas, a)
    np.testing.assert_allclose(ev.infidelity(model, x, y, a, perturbation=deltas, progress=False),
                               ((dots - drop) ** 2).mean(axis=1), rtol=1e-12)
    beta = (dots * drop).mean(axis=1, keepdims=True) / (dots ** 2).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(ev.infidelity(model, x, y, a, perturbation=deltas, normalize=True, progress=False),
                               ((beta * dots - drop) ** 2).mean(axis=1), rtol=1e-12)


def test_gaussian_infidelity_is_seeded_and_batching_free(setup):
    model, _, _, x, y = setup
    a = np.random.default_rng(3).standard_normal(x.shape)
    one = ev.infidelity(model, x, y, a, n=6, seed=4, batch_size=1, progress=False)
    np.testing.assert_allclose(one, ev.infidelity(model, x, y, a, n=6, seed=4, batch_size=None, progress=False),
                               rtol=1e-12, atol=0)        # last bits: BLAS rounds edge blocks by batch size
    assert not np.allclose(one, ev.infidelity(model, x, y, a, n=6, seed=5, progress=False))


def test_patch_perturbations_remove_squares_cumulatively():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4) + 1
    deltas = ev.patch_perturbations(x, patch=2)
    assert deltas.shape == (4, 2, 1, 4, 4)
    perturbed = x - deltas[1]                                     # the first two squares at the image's minimum
    assert (perturbed[:, :, :2, :] == x.min(axis=(1, 2, 3))[:, None, None, None]).all()
    np.testing.assert_array_equal(perturbed[:, :, 2:], x[:, :, 2:])
    np.testing.assert_array_equal(deltas[-1], x - x.min(axis=(1, 2, 3), keepdims=True))


def test_max_sensitivity_of_the_gradient_of_a_linear_model_is_zero(setup):
    model, _, _, x, y = setup
    np.testing.assert_array_equal(ev.max_sensitivity(model, x, y, "saliency", n=4, progress=False), 0)


def test_max_sensitivity_of_gradient_times_input_is_the_largest_noise_times_w(setup):
    model, W, _, x, y = setup
    w = W[y].reshape(x.shape)
    a = x * w                                                # gxi moves by d * w exactly
    moves = np.stack([np.linalg.norm((sensitivity_noise(x, 0.3, 9, k) * w).reshape(3, -1), axis=1)
                      for k in range(5)])
    ours = ev.max_sensitivity(model, x, y, "gxi", radius=0.3, n=5, seed=9, batch_size=4, relative=False,
                              progress=False)
    np.testing.assert_allclose(ours, moves.max(axis=0), rtol=1e-12)
    relative = ev.max_sensitivity(model, x, y, mx.gradient_x_input, radius=0.3, n=5, seed=9, progress=False)
    np.testing.assert_allclose(relative, ours / np.linalg.norm(a.reshape(3, -1), axis=1), rtol=1e-12)


def test_sensitivity_noise_is_uniform_in_the_ball():
    d = sensitivity_noise(np.zeros((4, 3, 16, 16)), 0.2, 0, 0)
    assert np.abs(d).max() <= 0.2 and d.std() == pytest.approx(0.2 / np.sqrt(3), rel=0.05)
    np.testing.assert_array_equal(d, sensitivity_noise(np.zeros((4, 3, 16, 16)), 0.2, 0, 0))


def test_bad_robustness_input_is_named(setup):
    model, _, _, x, y = setup
    with pytest.raises(ValueError, match="unknown perturbation 'square'; valid: gaussian"):
        ev.infidelity(model, x, y, x, perturbation="square")
    with pytest.raises(ValueError, match=r"perturbation array must have shape \(n, 3, 2, 4, 4\)"):
        ev.infidelity(model, x, y, x, perturbation=np.zeros((2, 3, 2, 4)))
    with pytest.raises(ValueError, match="unknown method 'grads'; valid: saliency"):
        ev.max_sensitivity(model, x, y, "grads")
    with pytest.raises(ValueError, match="radius must be > 0"):
        ev.max_sensitivity(model, x, y, "saliency", radius=0)
    with pytest.raises(ValueError, match="patch 3 must divide the image size 4x4"):
        ev.patch_perturbations(x, patch=3)
