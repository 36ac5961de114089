"""Every method on Inception v3 (small inputs: the network needs >= 75x75): the rules through its Concat joins,
Grad-CAM on Mixed_7c, SUMMIT across Mixed_* layers, filter visualisation of one branch of a block.

The model has He-normal weights, no biases and batch norm at its initial statistics (shift 0), so it is a
positively homogeneous ReLU network: LRP conserves relevance exactly up to its stabilisers, and SUMMIT's
Integrated Gradients are complete without quadrature error."""
import numpy as np
import pytest

import minixai as mx
from minixai import models
from minixai.methods.cam import default_layer
from test_summit import assert_complete

SIZE = (83, 91)


@pytest.fixture(scope="module")
def model():
    net = models.inception_v3(seed=0).astype(np.float64)
    net["fc"].bias = np.zeros_like(net["fc"].bias)
    return net


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((2, 3, *SIZE))


@pytest.fixture(scope="module")
def targets(model, x):
    return [int(t) for t in model(x).argmax(axis=1)]


@pytest.mark.parametrize("composite", ["epsilon", "epsilon_plus_flat", "epsilon_gamma_box"])
def test_lrp_conserves_across_the_branches(model, x, targets, composite):
    """sum_i R_i = f_c(x): every Concat splits the relevance by channels and adds its branches' inputs back."""
    R = mx.lrp(model, x, targets, composite=composite)
    logits = model(x)[[0, 1], targets]
    np.testing.assert_allclose(R.sum(axis=(1, 2, 3)), logits, rtol=1e-4)


def test_deeplift_sums_to_delta(model, x, targets):
    attributions, delta = mx.deeplift(model, x, targets, baseline="black", return_delta=True)
    assert np.abs(delta).max() <= 1e-10 * np.abs(attributions).sum(axis=(1, 2, 3)).max()


@pytest.mark.parametrize("method", [mx.guided_backprop, mx.deconvnet])
def test_modified_backprop_runs_fused_and_as_written(model, x, targets, method):
    """The fused kernels and the rules run layer by layer agree through every block (float64)."""
    fused = method(model, x, targets)
    with mx.unfused():
        plain = method(model, x, targets)
    assert fused.shape == x.shape and np.abs(fused).max() > 0
    np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12 * np.abs(plain).max())
    assert np.abs(fused - mx.saliency(model, x, targets)).max() > 1e-3 * np.abs(fused).max()


def test_gradcam_defaults_to_mixed_7c(model, x, targets):
    """Grad-CAM at Mixed_7c, from the activations and gradients captured in one full pass."""
    assert default_layer(model) == "Mixed_7c"
    tape = model.record(x, capture=["Mixed_7c"])
    seed = np.zeros_like(tape.output)
    seed[[0, 1], targets] = 1
    model.backward(seed, tape=tape)
    A, dA = tape.outputs["Mixed_7c"], tape.grads["Mixed_7c"]
    expected = np.maximum((A * dA.mean(axis=(2, 3), keepdims=True)).sum(axis=1), 0)
    np.testing.assert_allclose(mx.gradcam(model, x, targets, upsample=False), expected, rtol=1e-12, atol=1e-14)
    assert mx.gradcam(model, x, targets).shape == (2, *SIZE)


@pytest.mark.parametrize("layer", ["Mixed_6e", "Mixed_7b.branch3x3dbl_3a"])
def test_cam_family_runs_on_blocks_and_branches(model, x, targets, layer):
    """Every CAM on a block's output and inside a block (an E branch), at the layer's resolution."""
    h = model.activations(x, [layer])[layer].shape[2:]
    for name in ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"):
        cam = mx.METHODS[name](model, x, targets, layer=layer, upsample=False)
        assert cam.shape == (2, *h) and np.all(cam >= 0) and np.isfinite(cam).all(), name


def test_scorecam_inside_a_block(model, x, targets):
    """Score-CAM on a 32-channel branch (one masked input per channel and image: 64 passes in one batch)."""
    cam = mx.scorecam(model, x, targets, layer="Mixed_5b.branch_pool", batch_size=64, progress=False)
    assert cam.shape == (2, *SIZE) and np.all(cam >= 0) and cam.max() > 0


def test_ablationcam_on_mixed_7c(model, x, targets):
    """Ablation-CAM reruns only avgpool -> fc above Mixed_7c; its weights are the score drops, here checked
    against the linear head directly (the score is linear in each channel's mean)."""
    cam = mx.ablationcam(model, x, targets, upsample=False, progress=False)
    A = model.activations(x, ["Mixed_7c"])["Mixed_7c"]
    w = model["fc"].weight[targets]                                        # (N, K)
    score = (A.mean(axis=(2, 3)) * w).sum(axis=1)
    drop = w * A.mean(axis=(2, 3)) / score[:, None]                        # (s - s_k) / s
    expected = np.maximum(np.einsum("nk,nkij->nij", drop, A), 0)
    np.testing.assert_allclose(cam, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def test_summit_across_mixed_layers(model, x):
    """An attribution graph over three Mixed_* blocks; its edges are complete (exact here, see above)."""
    layers = ["Mixed_6d", "Mixed_6e", "Mixed_7a"]
    graph = mx.summit(model, x, layers, clusters=3, steps=4, seed=0, progress=False)
    assert graph.layers == layers and len(graph.nodes) == 9
    assert_complete(model, x, graph, atol=1e-8)


@pytest.mark.filterwarnings("ignore:filters .* have a zero gradient")
def test_filter_visualisation_of_one_branch(model):
    """Channel first + k of Mixed_5b is filter k of its branch_pool: the ascent on the block's channel raises
    that branch's mean activation (the filters that start inactive behind the ReLU cannot move)."""
    first, stop = model["Mixed_5b"].channels_of()["branch_pool"]
    assert stop - first == 32
    results = mx.maximize_filters(model, "Mixed_5b", filters=range(first, stop), steps=3, size=SIZE)
    active = [r for r in results if r.history[0] > 0]
    assert len(active) >= 4
    for r in active[:4]:
        branch = model.activations(r.raw, ["Mixed_5b.branch_pool"])["Mixed_5b.branch_pool"]
        crop = branch[0, r.filter - first, 2:-2, 2:-2].mean()             # the objective's 2-pixel border
        assert crop == pytest.approx(float(r.history[-1]), rel=1e-6)
        assert r.history[-1] > r.history[0]


def test_runs_on_a_device(model, x, targets):
    """On the stand-in GPU of tests/fake_device.py (which refuses any host array in a device computation):
    Concat, the input transform and the CAMs use only their inputs' array module, and agree with the CPU."""
    import copy

    from fake_device import fake
    from minixai.backend import to_host
    cpu = models.inception_v3(seed=0, transform_input=True).astype(np.float64)
    device = copy.deepcopy(cpu).to(fake)
    for name in ("saliency", "lrp", "gradcam++", "eigencam"):
        expected = mx.METHODS[name](cpu, x, targets)
        got = to_host(mx.METHODS[name](device, fake.asarray(x), targets))
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
