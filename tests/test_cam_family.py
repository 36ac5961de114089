"""The Grad-CAM family (minixai.methods.cam_gradients, cam_perturbation, eigencam) against slow re-implementations
written from the papers' formulas (loops over channels and positions, the activations and gradients captured
in one full pass, each masked or ablated network run on its own), the layer choice and bad input.

The network is summit's tiny CNN (float64): relu3 is followed by global average pooling and one dense layer,
relu2 by a convolution."""
import math

import numpy as np
import pytest

import minixai as mx
from minixai.methods import cam_perturbation
from minixai.methods.eigencam import first_component
from test_summit import tiny_cnn

TARGETS = [0, 2]
CAMS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam", "eigencam"]


@pytest.fixture(scope="module")
def model():
    return tiny_cnn(3)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(4).normal(size=(2, 3, 12, 10))


def captured(model, x, layer):
    """(A, g) at `layer` from one full forward and backward pass (not the cut network the methods use)."""
    tape = model.record(x, capture=[layer])
    seed = np.zeros_like(tape.output)
    seed[[0, 1], TARGETS] = 1
    model.backward(seed, tape=tape)
    return tape.outputs[layer], tape.grads[layer]


def weighted(weights, A):
    """ReLU(sum_k w[n, k] A[n, k]) with a loop over the channels."""
    cam = np.zeros((A.shape[0], *A.shape[2:]))
    for n in range(A.shape[0]):
        for k in range(A.shape[1]):
            cam[n] += weights[n, k] * A[n, k]
    return np.maximum(cam, 0)


def slow_gradcam_plus_plus(A, g):
    w = np.zeros(A.shape[:2])
    for n, k in np.ndindex(*A.shape[:2]):
        total = A[n, k].sum()
        for i, j in np.ndindex(*A.shape[2:]):
            d = g[n, k, i, j]
            alpha = 0.0 if d == 0 else d ** 2 / (2 * d ** 2 + total * d ** 3 + 1e-6)     # eq. 19
            w[n, k] += alpha * max(d, 0.0)
    return weighted(w, A)


def slow_xgradcam(A, g):
    w = np.array([[(g[n, k] * A[n, k]).sum() / (A[n, k].sum() + 1e-7) for k in range(A.shape[1])]
                  for n in range(A.shape[0])])
    return weighted(w, A)


def slow_gradcam(A, g):
    return weighted(g.mean(axis=(2, 3)), A)


def slow_hirescam(A, g):
    return np.maximum(sum(g[:, k] * A[:, k] for k in range(A.shape[1])), 0)


def slow_layercam(A, g):
    return np.maximum(sum(np.maximum(g[:, k], 0) * A[:, k] for k in range(A.shape[1])), 0)


def bilinear_corners(a, H, W):
    """One map a (h, w) upsampled with corners aligned, pixel by pixel from the definition."""
    h, w = a.shape
    out = np.zeros((H, W))
    for i, j in np.ndindex(H, W):
        y, x = i * (h - 1) / (H - 1), j * (w - 1) / (W - 1)
        y0, x0 = min(int(y), h - 1), min(int(x), w - 1)
        y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
        fy, fx = y - y0, x - x0
        out[i, j] = ((1 - fy) * (1 - fx) * a[y0, x0] + (1 - fy) * fx * a[y0, x1]
                     + fy * (1 - fx) * a[y1, x0] + fy * fx * a[y1, x1])
    return out


def slow_scorecam(model, x, A):
    w = np.zeros(A.shape[:2])
    for n, k in np.ndindex(*A.shape[:2]):
        m = bilinear_corners(A[n, k], *x.shape[2:])
        m = (m - m.min()) / (m.max() - m.min() + 1e-8)
        w[n, k] = model(x[n:n + 1] * m)[0, TARGETS[n]]
    for n in range(A.shape[0]):
        e = [math.exp(s - w[n].max()) for s in w[n]]
        w[n] = [v / sum(e) for v in e]
    return weighted(w, A)


def slow_ablationcam(model, x, layer, A, value=0.0):
    head = model.submodel(start=layer)
    w = np.zeros(A.shape[:2])
    for n, k in np.ndindex(*A.shape[:2]):
        base = head(A[n:n + 1])[0, TARGETS[n]]
        ablated = A[n:n + 1].copy()
        ablated[0, k] = value
        w[n, k] = (base - head(ablated)[0, TARGETS[n]]) / base
    return weighted(w, A)


SLOW_GRADIENT = {"gradcam": slow_gradcam, "gradcam++": slow_gradcam_plus_plus, "xgradcam": slow_xgradcam,
                 "hirescam": slow_hirescam, "layercam": slow_layercam}


@pytest.mark.parametrize("layer", ["relu2", "relu3"])
@pytest.mark.parametrize("name", list(SLOW_GRADIENT))
def test_gradient_cams_match_their_formulas(model, x, layer, name):
    A, g = captured(model, x, layer)
    expected = SLOW_GRADIENT[name](A, g)
    assert expected.max() > 0, "nothing to compare"
    np.testing.assert_allclose(mx.METHODS[name](model, x, TARGETS, layer=layer, upsample=False), expected,
                               rtol=1e-10, atol=1e-12 * expected.max())


@pytest.mark.parametrize("layer", ["relu2", "relu3"])
def test_scorecam_matches_its_formula(model, x, layer):
    A, _ = captured(model, x, layer)
    ours = mx.scorecam(model, x, TARGETS, layer=layer, upsample=False, batch_size=3, progress=False)
    np.testing.assert_allclose(ours, slow_scorecam(model, x, A), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("layer", ["relu2", "relu3"])
def test_ablationcam_matches_its_formula(model, x, layer):
    A, _ = captured(model, x, layer)
    ours = mx.ablationcam(model, x, TARGETS, layer=layer, upsample=False, batch_size=3, progress=False)
    np.testing.assert_allclose(ours, slow_ablationcam(model, x, layer, A), rtol=1e-10, atol=1e-14)


def test_eigencam_is_the_first_principal_component(model, x):
    """The projection on the top eigenvector of the positions' covariance (sign aside), through a ReLU; the
    target does not matter."""
    A, _ = captured(model, x, "relu2")
    for n in range(2):
        V = A[n].reshape(A.shape[1], -1).T
        V = V - V.mean(axis=0)
        top = np.linalg.eigh(V.T @ V)[1][:, -1]
        projection = first_component(A[n]).ravel()
        sign = np.sign(projection @ (V @ top))
        np.testing.assert_allclose(projection, sign * (V @ top), rtol=1e-8, atol=1e-10)
    ours = mx.eigencam(model, x, TARGETS, layer="relu2", upsample=False)
    np.testing.assert_allclose(ours, np.maximum(np.stack([first_component(a) for a in A]), 0), rtol=1e-13)
    np.testing.assert_array_equal(mx.eigencam(model, x, [1, 1], layer="relu2"), mx.eigencam(model, x, None,
                                                                                             layer="relu2"))


def test_gradcam_xgradcam_hirescam_coincide_before_global_pooling_only(model, x):
    """Before global average pooling and one dense layer the gradient is constant over each map: the three
    maps are the same (XGradCAM's 1e-7 aside). One convolution earlier they are not."""
    maps = {layer: [mx.METHODS[n](model, x, TARGETS, layer=layer, upsample=False)
                    for n in ("gradcam", "xgradcam", "hirescam")] for layer in ("relu2", "relu3")}
    grad, xgrad, hires = maps["relu3"]
    assert grad.max() > 0
    np.testing.assert_allclose(hires, grad, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(xgrad, grad, rtol=1e-5, atol=1e-8 * grad.max())
    grad, xgrad, hires = maps["relu2"]
    for other in (xgrad, hires):
        assert np.abs(other - grad).max() > 0.05 * grad.max()


def test_score_masks_of_a_constant_channel_are_zero():
    A = np.zeros((2, 3, 4))
    A[1] = np.arange(12.0).reshape(3, 4)
    masks = cam_perturbation.score_masks(A, (6, 8))
    assert not masks[0].any()
    assert masks[1].min() == 0 and masks[1].max() == pytest.approx(1, abs=1e-8)
    np.testing.assert_allclose(cam_perturbation.upsample_align_corners(A[1], (6, 8)),
                               bilinear_corners(A[1], 6, 8), rtol=1e-13)


@pytest.mark.parametrize("name", CAMS)
def test_shapes_and_default_layer(model, x, name):
    """(N, H, W) upsampled, (N, h, w) at the layer; layer=None is the last conv stage (relu3 here)."""
    options = {"progress": False} if name in ("scorecam", "ablationcam") else {}
    full = mx.METHODS[name](model, x, TARGETS, **options)
    coarse = mx.METHODS[name](model, x, TARGETS, upsample=False, **options)
    assert full.shape == (2, 12, 10) and coarse.shape == (2, 4, 3)
    np.testing.assert_array_equal(coarse, mx.METHODS[name](model, x, TARGETS, layer="relu3", upsample=False,
                                                           **options))
    np.testing.assert_allclose(full, mx.images.resize_bilinear(coarse, (12, 10)), rtol=1e-12)


@pytest.mark.parametrize("name", ["scorecam", "ablationcam"])
def test_batch_size_changes_nothing(model, x, name):
    maps = [mx.METHODS[name](model, x, TARGETS, layer="relu2", upsample=False, batch_size=b, progress=False)
            for b in (1, 4, 100)]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-12)
    np.testing.assert_allclose(maps[0], maps[2], rtol=1e-12)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        mx.METHODS[name](model, x, TARGETS, batch_size=0)


@pytest.mark.parametrize("name", CAMS)
def test_bad_layers_are_named(model, x, name):
    method = mx.METHODS[name]
    with pytest.raises(ValueError, match=r"layer 'relu9' not found; valid: .*relu3"):
        method(model, x, TARGETS, layer="relu9")
    with pytest.raises(ValueError, match=r"spatial maps \(N, K, h, w\); 'fc' gives the model's output"):
        method(model, x, TARGETS, layer="fc")
    with pytest.raises(ValueError, match=r"spatial maps \(N, K, h, w\); 'flatten' outputs \(2, 5\)"):
        method(model, x, TARGETS, layer="flatten", **({"progress": False} if name in ("scorecam", "ablationcam")
                                                      else {}))
    with pytest.raises(ValueError, match="out of range"):
        method(model, x, 7)


def test_ablationcam_needs_a_layer_on_the_main_path():
    model = mx.models.resnet18(seed=0)
    x = np.random.default_rng(5).normal(size=(1, 3, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="'layer4.1.bn2' is inside a block. Valid: conv1, .*layer4"):
        mx.ablationcam(model, x, 1, layer="layer4.1.bn2")
    cam = mx.ablationcam(model, x, 1, layer="layer3", upsample=False, progress=False)
    assert cam.shape == (1, 2, 2)


def test_value_sets_what_an_ablated_channel_becomes(model, x):
    """value=v ablates to v: pytorch-grad-cam's choice on a layer without exact zeros is its minimum - 1e7."""
    A, _ = captured(model, x, "relu3")
    low = float(A.min()) - 1e7
    ours = mx.ablationcam(model, x, TARGETS, layer="relu3", upsample=False, value=low, progress=False)
    expected = slow_ablationcam(model, x, "relu3", A, value=low)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-14)
    assert np.abs(ours - mx.ablationcam(model, x, TARGETS, layer="relu3", upsample=False, progress=False)).max() > 0


def test_the_command_line_knows_the_new_names(capsys, tmp_path):
    """`minixai explain` draws every new CAM in its panel (the shapes model, one held-out image)."""
    from minixai.cli import main
    out = tmp_path / "cams.png"
    names = "gradcam++,xgradcam,hirescam,layercam,scorecam,ablationcam,eigencam"
    assert main(["explain", "shapes:3", "--method", names, "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert main(["explain", "shapes:3", "--method", "gradcam+++", "--out", str(out)]) == 1
    assert "unknown method 'gradcam+++'; valid: " in capsys.readouterr().err


@pytest.mark.parametrize("layer", ["layer3", "layer2.1.conv1"])
def test_guided_gradcam_is_guided_backprop_times_the_upsampled_gradcam(layer):
    """Its one shared forward pass (a main-path layer) and its two passes (a layer inside a block) give
    the definition: the two methods run on their own, multiplied."""
    model = mx.models.resnet18(seed=0).astype(np.float64)
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64))
    expected = mx.guided_backprop(model, x, TARGETS) * mx.gradcam(model, x, TARGETS, layer)[:, None]
    np.testing.assert_allclose(mx.guided_gradcam(model, x, TARGETS, layer), expected, rtol=1e-12,
                               atol=1e-12 * np.abs(expected).max())
