"""Parity of the perturbation and Shapley methods with Captum, float64 on both sides.

For Occlusion, Lime, KernelShap and GradientShap Captum runs on minixai's own model: its `forward_func` is
minixai's forward pass (and, for GradientShap, a torch.autograd.Function whose backward is minixai's input
gradient). The network is then the same by construction and what is compared is the method: window
positions, averaging, sampling, the regression. DeepLiftShap needs Captum's hooks on torch modules, so it
runs on a torchvision VGG-11 and its minixai conversion (tests/torch_peers.py prepares the torch model as
for tests/test_parity_methods.py).

- Occlusion: the same numbers up to Captum's final cast to float32 (its `format_result` divides
  `attrib.float()` by the counts): TOL_FLOAT32. Measured 4.4e-8.
- DeepLiftShap: exact; measured 2.9e-14.
- GradientShap: random on both sides (Captum draws from np.random and torch); both are checked against the
  expectation, the mean over the baselines of IG, within their own Monte-Carlo errors.
- Lime / KernelShap: Captum gives every element of a segment the segment's full value, minixai spreads it
  over the segment's C * |S_k| entries; on a linear model both recover the exact coefficients. Captum's
  KernelShap (sampled) converges to minixai's exact Shapley values.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
captum_attr = pytest.importorskip("captum.attr")

import minixai as mx  # noqa: E402
from minixai import models  # noqa: E402
from perturbation_nets import grid_segments, linear_model, tiny_cnn  # noqa: E402
from test_parity_torch import randomise  # noqa: E402
from torch_peers import captum_ready  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("numpy_backend"),
              pytest.mark.filterwarnings("ignore:Setting forward, backward hooks"),
              pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")]

TOL_FLOAT32 = 1e-6                      # max |ours - theirs| / max |theirs|, Captum's result in float32
TOL = 1e-10


def relative_max_diff(ours, theirs):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape and np.abs(theirs).max() > 0
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def forward_func(model):
    """minixai's forward pass as a function of torch tensors (for the gradient-free Captum methods)."""
    return lambda t: torch.from_numpy(model(t.detach().numpy().copy()))


class MinixaiNet(torch.autograd.Function):
    """minixai's forward pass, and its input gradient as the backward: Captum's gradient methods then
    differentiate minixai's model."""

    @staticmethod
    def forward(ctx, t, model):
        ctx.model, ctx.tape = model, model.record(t.detach().numpy().copy())
        return torch.from_numpy(ctx.tape.output.copy())

    @staticmethod
    def backward(ctx, grad):
        return torch.from_numpy(ctx.model.backward(grad.numpy().copy(), tape=ctx.tape)), None


# ---- Occlusion ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("window, stride", [((3, 4, 4), (3, 2, 2)),       # shapes-like, no border cut
                                            ((3, 5, 4), (3, 3, 3)),       # last windows cut at the border
                                            ((2, 6, 3), (1, 4, 2))])      # channel windows overlap
@pytest.mark.parametrize("baseline", ["zeros", "noise"])
def test_occlusion(window, stride, baseline):
    model = tiny_cnn(seed=0, size=(14, 11))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 14, 11))
    base = np.zeros_like(x) if baseline == "zeros" else rng.standard_normal(x.shape)
    theirs = captum_attr.Occlusion(forward_func(model)).attribute(
        torch.from_numpy(x), sliding_window_shapes=window, strides=stride, baselines=torch.from_numpy(base),
        target=[2, 0], perturbations_per_eval=16)
    ours = mx.occlusion(model, x, [2, 0], window=window, stride=stride, baseline=base, progress=False)
    assert theirs.dtype == torch.float32 and ours.dtype == np.float64        # Captum casts at the end
    assert relative_max_diff(ours, theirs) <= TOL_FLOAT32


# ---- DeepLiftShap ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_deeplift_shap_on_vgg():
    """VGG-11 (random weights and biases) at 32 x 32, two images, three baselines of seeded noise (a black
    baseline gives max-pool windows of equal values, whose winner each library picks by its own rounding:
    see test_parity_methods.test_deeplift). About 20 s, most of it making and converting VGG-11's 133M
    weights. It runs the Numba kernels (the NumPy backend of the other tests here takes 9 s for the attributions)."""
    torch.manual_seed(0)
    net = randomise(torchvision.models.vgg11()).eval()
    model = models.from_torchvision(net).astype(np.float64)
    net = captum_ready(net.double())
    for p in net.parameters():
        p.requires_grad_(False)
    x = model.spec.normalize(np.random.default_rng(0).uniform(0, 1, (2, 3, 32, 32)))
    baselines = np.concatenate([mx.baselines.make_baseline("uniform", x[:1], model.spec, seed=s) for s in (1, 2, 3)])
    targets = [int(t) for t in model(x).argmax(axis=1)]
    theirs = captum_attr.DeepLiftShap(net).attribute(torch.from_numpy(x).requires_grad_(),
                                                     baselines=torch.from_numpy(baselines), target=targets)
    with mx.use_backend("numba"):
        ours, delta = mx.deeplift_shap(model, x, targets, baselines, return_delta=True, progress=False)
    assert relative_max_diff(ours, theirs) <= TOL
    assert np.abs(delta).max() <= 1e-10 * np.abs(ours).sum()


# ---- GradientShap ------------------------------------------------------------------------------------------
def captum_gradient_shap(model, x, target, baselines, n, seed):
    np.random.seed(seed)                  # Captum picks baselines and alphas with np.random
    torch.manual_seed(seed)
    explainer = captum_attr.GradientShap(lambda t: MinixaiNet.apply(t, model))
    return explainer.attribute(torch.from_numpy(x).requires_grad_(), baselines=torch.from_numpy(baselines),
                               n_samples=n, stdevs=0.0, target=target).detach().numpy()


def test_gradient_shap_in_expectation():
    """stdev 0, three baselines: E[A] = mean_b IG(x; b) for both libraries. Each runs 12 times with n = 300;
    the squared distance of the mean of its runs to the expectation is at most 4 times the Monte-Carlo
    variance of that mean measured from the runs (measured: 0.84 minixai, 1.08 Captum), which is below 1e-3
    of |E[A]|^2, and the sums agree with F(x) - mean_b F(b) within 5 standard errors (measured: 0.5 and 1.3
    minixai, 0.3 and 0.6 Captum)."""
    model = tiny_cnn(seed=2)
    rng = np.random.default_rng(3)
    x, baselines = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((3, 3, 8, 8))
    targets = [1, 2]
    expected = np.mean([mx.integrated_gradients(model, x, targets, baseline=b[None], steps=2000,
                                                method="riemann_middle", progress=False) for b in baselines], axis=0)
    gap = model(x)[[0, 1], targets] - model(baselines)[:, targets].mean(axis=0)
    ours = np.stack([mx.gradient_shap(model, x, targets, baselines, n=300, seed=s, progress=False)
                     for s in range(12)])
    theirs = np.stack([captum_gradient_shap(model, x, targets, baselines, 300, s) for s in range(12)])
    for runs in (ours, theirs):
        mean, se = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
        assert (se ** 2).sum() <= 1e-2 * (expected ** 2).sum()
        assert ((mean - expected) ** 2).sum() <= 4 * (se ** 2).sum()
        sums = runs.sum(axis=(2, 3, 4))
        assert np.all(np.abs(sums.mean(axis=0) - gap) <= 5 * sums.std(axis=0, ddof=1) / np.sqrt(len(runs)))


# ---- Lime, KernelShap --------------------------------------------------------------------------------------
def test_lime_and_kernel_shap_recover_a_linear_model_like_captum():
    """Captum's Lime with an exact linear regression and its KernelShap on F(x) = w . x + b: the segment's
    coefficient in every element (Captum) equals ours times the segment's C * |S_k| entries. Captum fits
    in float32 (its Lime casts samples and scores with .float()): measured 3.2e-7 (Lime), 1.7e-7 (KernelShap)."""
    linear_model_cls = pytest.importorskip("captum._utils.models.linear_model")
    model = linear_model(seed=4)
    rng = np.random.default_rng(5)
    x, base = rng.standard_normal((1, 3, 8, 8)), rng.standard_normal((1, 3, 8, 8))
    segments = grid_segments((8, 8), 2, 3)
    mask = torch.from_numpy(segments)[None, None]
    entries = 3 * np.bincount(segments.ravel())[segments]              # C * |S_k| at every pixel
    lime = captum_attr.Lime(forward_func(model), interpretable_model=linear_model_cls.SkLearnLinearRegression())
    theirs = lime.attribute(torch.from_numpy(x), baselines=torch.from_numpy(base), target=1, feature_mask=mask,
                            n_samples=60)
    ours = mx.lime(model, x, 1, segments=segments, n=60, baseline=base, progress=False)
    assert relative_max_diff(ours * entries, theirs) <= 1e-5
    theirs = captum_attr.KernelShap(forward_func(model)).attribute(
        torch.from_numpy(x), baselines=torch.from_numpy(base), target=1, feature_mask=mask, n_samples=60)
    ours = mx.kernel_shap(model, x, 1, segments=segments, baseline=base, progress=False)
    assert relative_max_diff(ours * entries, theirs) <= 1e-5


def test_captum_kernel_shap_converges_to_the_exact_values():
    """On a nonlinear model Captum's sampled KernelShap (n = 4000, K = 6) lands near minixai's exact values
    (measured relative L2 difference 0.025; the test allows 0.1)."""
    model = tiny_cnn(seed=6)
    rng = np.random.default_rng(7)
    x, base = rng.standard_normal((1, 3, 8, 8)), rng.standard_normal((1, 3, 8, 8))
    segments = grid_segments((8, 8), 2, 3)
    torch.manual_seed(0)
    theirs = captum_attr.KernelShap(forward_func(model)).attribute(
        torch.from_numpy(x), baselines=torch.from_numpy(base), target=0,
        feature_mask=torch.from_numpy(segments)[None, None], n_samples=4000, perturbations_per_eval=500,
        return_input_shape=False).numpy()[0]
    exact = mx.kernel_shap(model, x, 0, segments=segments, baseline=base, return_values=True, progress=False)[1][0]
    assert np.linalg.norm(theirs - exact) <= 0.1 * np.linalg.norm(exact)
