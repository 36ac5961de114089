"""Parity of the attribution methods with Captum, Zennit and pytorch-grad-cam, same weights, same inputs.

VGG-16 and ResNet-50 carry torchvision's random initialisation, with random biases and (ResNet) random
batch-norm statistics and affine parameters (`randomise` of test_parity_torch). Everything runs in float64,
both the torch model (`.double()`) and minixai's conversion (`.astype(np.float64)`): in float32 the two
libraries round differently, a pre-activation within ~1e-7 of zero can switch a ReLU in one and not in the
other, and the ReLU-masked methods then differ in many entries (see test_parity_torch). In float64 they agree
entry by entry, which is what is tested: max |ours - theirs| <= TOL * max |theirs|. Measured, both
networks: ~2e-15 for every method, except where a docstring says otherwise (a peer rounding to float32).

Making Captum compute the method it names on torchvision's models (`captum_ready`, and test_deeplift):
- torchvision's Bottleneck calls its one `self.relu` module three times. Captum's DeepLift stores one
  input/output per hooked module and its backward hooks keep one output gradient per module, so a module
  that runs several times per pass is wrong there (DeepLift refuses it). Each Bottleneck gets two more ReLU
  modules (relu1, relu2: one per call site, as minixai's blocks have) by switching it to a subclass whose
  forward uses them; inplace is turned off everywhere.
- Where a hooked ReLU feeds a hooked MaxPool2d directly (every VGG stage, ResNet's stem), both modules'
  tensor hooks sit on the same tensor and run in registration order: the ReLU records its output gradient
  *before* the max-pool's hook has replaced it with the DeepLIFT multipliers, so Captum's ReLU rescales
  the plain max-pool gradient. Its attributions then miss summation-to-delta (measured, VGG-16, the
  inputs of test_deeplift: sum(A) = 0.163 for F(x) - F(x') = 0.0076) and differ from ours by 93%. A forward
  pre-hook on every MaxPool2d that clones its input gives the two hooks different tensors, and Captum sums
  to delta (checked in the test).
The subclass and the hooks change no value (checked in the fixture), and the subclass keeps Zennit's
ResNetCanonizer working (it recognises Bottleneck and temporarily overrides the forward with its own); the
same torch model serves every peer.

Targets: the top class of each image (random weights: for other classes the Grad-CAM map at layer4 is often
all negative, hence all zero after the ReLU, and nothing would be compared). Size: two 64x96 images; float64
torch on two cores is slow, and VGG-16's 100M-weight first dense layer costs ~1 s per pass at any size.
"""
import copy
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
captum_attr = pytest.importorskip("captum.attr")

import minixai as mx  # noqa: E402
from minixai import models  # noqa: E402
from minixai.methods.integrated import quadrature  # noqa: E402
from test_parity_torch import randomise  # noqa: E402
from torch_peers import captum_maxpool2d_summing, captum_ready  # noqa: E402

pytestmark = [pytest.mark.torch,                       # and Captum's notices that it sets hooks:
              pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU"),
              pytest.mark.filterwarnings("ignore:Setting forward, backward hooks")]

SIZE = (64, 96)
TOL = 1e-4                              # max abs difference / max abs value of the reference
IG_STEPS = 16
CAM_LAYER = {"vgg16": "features.29", "resnet50": "layer4"}     # minixai's default Grad-CAM layers


# ---- the torch model as the peers need it ----------------------------------------------------------------
@pytest.fixture(scope="module", params=["vgg16", "resnet50"])
def case(request):
    """arch, net (torch, float64, eval, captum_ready), model (minixai, float64), x (2, 3, H, W) float64 (images
    of uniform random pixels, normalised), black (its black baseline), targets (top class of each image)."""
    arch = request.param
    torch.manual_seed(0)
    net = randomise(getattr(torchvision.models, arch)()).eval()
    model = models.from_torchvision(net).astype(np.float64)
    plain = copy.deepcopy(net).double()
    net = captum_ready(net.double())
    for p in net.parameters():
        p.requires_grad_(False)
    x = model.spec.normalize(np.random.default_rng(0).uniform(0, 1, (2, 3, *SIZE)))
    with torch.no_grad():
        logits = net(tensor(x)).numpy()
        assert np.array_equal(logits, plain(tensor(x)).numpy())       # captum_ready changes nothing
    assert relative_max_diff(model(x), logits) <= 1e-10
    black = model.spec.normalize(np.zeros_like(x))
    targets = [int(t) for t in logits.argmax(axis=1)]
    return types.SimpleNamespace(arch=arch, net=net, model=model, x=x, black=black, targets=targets)


def tensor(a):
    return torch.from_numpy(np.array(a))


def inputs(a):
    """A fresh input tensor that requires gradients (as Captum wants)."""
    return tensor(a).requires_grad_()


def relative_max_diff(ours, theirs):
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert np.abs(theirs).max() > 0, "nothing to compare: the reference is all zero"
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def torch_layer(net, name):
    return net.get_submodule(name)


# ---- Captum: gradients ------------------------------------------------------------------------------------
def test_saliency(case):
    theirs = captum_attr.Saliency(case.net).attribute(inputs(case.x), target=case.targets, abs=False)
    assert relative_max_diff(mx.saliency(case.model, case.x, case.targets), theirs) <= TOL


def test_gradient_x_input(case):
    theirs = captum_attr.InputXGradient(case.net).attribute(inputs(case.x), target=case.targets)
    assert relative_max_diff(mx.gradient_x_input(case.model, case.x, case.targets), theirs) <= TOL


def test_captum_trapezoid_nodes_are_ours_with_weights_scaled():
    """Captum's riemann_trapezoid: the nodes are linspace(0, 1, n) (ours), the weights are ours times
    (n - 1) / n (its step sizes sum to (n - 1) / n instead of 1). torch.linspace rounds to float32."""
    from captum.attr._utils.approximation_methods import approximation_parameters
    steps_fn, alphas_fn = approximation_parameters("riemann_trapezoid")
    alphas, weights = quadrature(IG_STEPS, "riemann_trapezoid")
    assert np.allclose(alphas_fn(IG_STEPS), alphas, rtol=0, atol=1e-7)
    assert np.allclose(np.array(steps_fn(IG_STEPS)) * IG_STEPS / (IG_STEPS - 1), weights, rtol=1e-15, atol=0)
    steps_fn, alphas_fn = approximation_parameters("gausslegendre")
    alphas, weights = quadrature(IG_STEPS, "gausslegendre")
    assert np.allclose(alphas_fn(IG_STEPS), alphas, rtol=1e-15) and np.allclose(steps_fn(IG_STEPS), weights)


def test_integrated_gradients_gausslegendre(case):
    """Same nodes and weights; Captum rounds its weights to float32 (`torch.tensor(step_sizes).float()`):
    measured 1.4e-8 (VGG-16), 5e-9 (ResNet-50)."""
    x, black = case.x[:1], case.black[:1]                  # one image: 16 path points per pass
    theirs = captum_attr.IntegratedGradients(case.net).attribute(
        inputs(x), baselines=tensor(black), target=case.targets[0], n_steps=IG_STEPS, method="gausslegendre")
    ours = mx.integrated_gradients(case.model, x, case.targets[0], baseline=black, steps=IG_STEPS,
                                   progress=False)
    assert relative_max_diff(ours, theirs) <= TOL


def test_integrated_gradients_trapezoid(case):
    """Captum's trapezoid result times n / (n - 1) (see the test above). The baseline is seeded noise, not
    black: the trapezoid evaluates the gradient AT the baseline, and a constant image gives max-pool windows
    of equal values (ties broken by rounding, differently in each library), where the gradient is not
    defined; there the two gradients differ by 97% (VGG-16), which would show through the weight h/2.
    Captum's nodes are float32 (torch.linspace), but a ReLU network's gradient is piecewise constant and its
    weights 1/16, 1/32 are exact in float32: measured 1e-15."""
    x = case.x[:1]
    noise = mx.baselines.make_baseline("uniform", x, case.model.spec, seed=1)
    theirs = captum_attr.IntegratedGradients(case.net).attribute(
        inputs(x), baselines=tensor(noise), target=case.targets[0], n_steps=IG_STEPS, method="riemann_trapezoid")
    ours = mx.integrated_gradients(case.model, x, case.targets[0], baseline=noise, steps=IG_STEPS,
                                   method="riemann_trapezoid", progress=False)
    assert relative_max_diff(ours, theirs * IG_STEPS / (IG_STEPS - 1)) <= TOL


@pytest.mark.parametrize("ours, theirs", [(mx.guided_backprop, captum_attr.GuidedBackprop),
                                          (mx.deconvnet, captum_attr.Deconvolution)])
def test_modified_relu_backprop(case, ours, theirs):
    reference = theirs(case.net).attribute(inputs(case.x), target=case.targets)
    assert relative_max_diff(ours(case.model, case.x, case.targets), reference) <= TOL


def test_deeplift(case, monkeypatch):
    """Captum's default Rescale rule, eps = 1e-10 as ours; measured 3e-14 (both networks).

    Two things stand between Captum and the method on these networks. The ReLU -> max-pool hook order is
    handled by captum_ready. And Captum sends the max-pool's multipliers back with F.max_unpool2d, which
    assigns instead of summing: with ResNet's overlapping 3x3/2 stem pool an input that wins two windows
    keeps one window's share (the same bug, fixed in a port of this code: jmschrei/tangermeme#95). Its
    attributions then miss summation-to-delta (measured, ResNet-50: sum(A) = -12.7 for F(x) - F(x') = 4.2,
    sum |A| = 1480) and differ from ours by 72%; here its rule runs with a summing unpool, otherwise unchanged.
    The baseline is seeded noise: on the black image VGG-16's reference pass has max-pool windows of equal
    values, whose winner (chosen by rounding, differently in each library) receives the reference's share;
    both results then sum to delta exactly and still differ by 23% (measured, VGG-16)."""
    from captum.attr._core import deep_lift
    monkeypatch.setitem(deep_lift.SUPPORTED_NON_LINEAR, torch.nn.MaxPool2d, captum_maxpool2d_summing)
    noise = mx.baselines.make_baseline("uniform", case.x, case.model.spec, seed=1)
    theirs, delta = captum_attr.DeepLift(case.net).attribute(
        inputs(case.x), baselines=tensor(noise), target=case.targets, return_convergence_delta=True)
    ours, our_delta = mx.deeplift(case.model, case.x, case.targets, baseline=noise, return_delta=True)
    scale = np.abs(ours).sum(axis=(1, 2, 3))
    assert np.all(np.abs(delta.numpy()) <= 1e-10 * scale) and np.all(np.abs(our_delta) <= 1e-10 * scale)
    assert relative_max_diff(ours, theirs) <= TOL


# ---- Captum: Grad-CAM -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def captum_cam(case):
    """Captum's LayerGradCam at minixai's default layer, (N, 1, h, w)."""
    layer = torch_layer(case.net, CAM_LAYER[case.arch])
    return captum_attr.LayerGradCam(case.net, layer).attribute(inputs(case.x), target=case.targets,
                                                               relu_attributions=True)


@pytest.fixture(scope="module")
def coarse_cam(case):
    return mx.gradcam(case.model, case.x, case.targets, upsample=False)


@pytest.fixture(scope="module")
def upsampled_cam(case):
    return mx.gradcam(case.model, case.x, case.targets)


def test_gradcam_coarse(case, captum_cam, coarse_cam):
    assert relative_max_diff(coarse_cam, captum_cam[:, 0]) <= TOL


def test_gradcam_upsampled(case, captum_cam, upsampled_cam):
    """Both bilinear with half-pixel centres (align_corners=False)."""
    theirs = captum_attr.LayerAttribution.interpolate(captum_cam, SIZE, interpolate_mode="bilinear")
    assert relative_max_diff(upsampled_cam, theirs[:, 0]) <= TOL


def test_guided_gradcam(case):
    layer = torch_layer(case.net, CAM_LAYER[case.arch])
    theirs = captum_attr.GuidedGradCam(case.net, layer).attribute(inputs(case.x), target=case.targets,
                                                                  interpolate_mode="bilinear")
    assert relative_max_diff(mx.guided_gradcam(case.model, case.x, case.targets), theirs) <= TOL


# ---- pytorch-grad-cam ---------------------------------------------------------------------------------------
def min_max(maps, low=None, high=None):
    """pytorch-grad-cam's scale_cam_image without the resize: (c - min) / (1e-7 + max - min) per map, the
    statistics taken from (low, high) when given."""
    low = maps.min(axis=(1, 2), keepdims=True) if low is None else low
    high = maps.max(axis=(1, 2), keepdims=True) if high is None else high
    return (maps - low) / (1e-7 + (high - low))


def test_pytorch_grad_cam(case, coarse_cam, upsampled_cam):
    """Its GradCAM returns, in float32, ReLU(cam) min-max normalised, resized with cv2 (bilinear, half-pixel
    centres), and normalised again. Compared twice: the un-normalised map from its internals (get_cam_image
    on the activations and gradients it recorded) with our coarse map; and its public output with our
    upsampled map put through the same two normalisations, the first with the coarse map's min and max
    (an affine map commutes with bilinear resizing, so this is exactly its order of operations; normalising
    only after resizing would differ by 1e-7 / max(cam), here up to 1.3e-5). Measured: raw 2e-15,
    public 1.3e-7 (its float32)."""
    grad_cam = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    layer = torch_layer(case.net, CAM_LAYER[case.arch])
    targets = [ClassifierOutputTarget(t) for t in case.targets]
    x = inputs(case.x)                                     # the model's weights do not require gradients
    with grad_cam.GradCAM(model=case.net, target_layers=[layer]) as cam:
        public = cam(input_tensor=x, targets=targets)
        acts, grads = cam.activations_and_grads.activations[0], cam.activations_and_grads.gradients[0]
        raw = cam.get_cam_image(x, layer, targets, acts.numpy(), grads.numpy())
    assert relative_max_diff(coarse_cam, np.maximum(raw, 0)) <= TOL

    low, high = coarse_cam.min(axis=(1, 2), keepdims=True), coarse_cam.max(axis=(1, 2), keepdims=True)
    ours = min_max(min_max(upsampled_cam, low, high))
    assert public.shape == ours.shape == (2, *SIZE)
    assert relative_max_diff(ours, public) <= TOL


# ---- Zennit: LRP ------------------------------------------------------------------------------------------
def zennit_lrp(case, composite, n=2):
    """Zennit's relevance at the first n inputs for R_out = one-hot * logits (where minixai's lrp starts)."""
    from zennit.attribution import Gradient
    one_hot = torch.zeros(n, 1000, dtype=torch.float64)
    one_hot[range(n), case.targets[:n]] = 1
    with Gradient(model=case.net, composite=composite) as attributor:
        _, relevance = attributor(tensor(case.x[:n]), lambda out: one_hot * out.detach())
    return relevance.detach().numpy()


def exact_canonizers(arch):
    """Zennit's canonizers for `arch`, with batch norms merged exactly.

    Zennit's MergeBatchNorm folds each batch norm into the convolution before it and then sets the batch
    norm's statistics to mean 0, variance 1, but keeps its eps: the batch norm still divides by
    sqrt(1 + 1e-5): the canonized ResNet-50 is not the original network (every merged batch norm scales by
    1 - 5e-6), and its relevance differs from ours by 1.7e-4 of the maximum (test_zennit_resnet_canonizer). With
    eps = 0 after the merge the batch norm is the identity, as minixai's merge_batchnorm makes it."""
    from zennit.canonizers import CompositeCanonizer, SequentialMergeBatchNorm
    from zennit.torchvision import ResNetBottleneckCanonizer, VGGCanonizer

    class ExactMergeBatchNorm(SequentialMergeBatchNorm):
        def register(self, linears, batch_norm):
            super().register(linears, batch_norm)
            self.eps, batch_norm.eps = batch_norm.eps, 0.0

        def remove(self):
            super().remove()
            self.batch_norm.eps = self.eps

    if arch.startswith("resnet"):
        return [CompositeCanonizer((ExactMergeBatchNorm(), ResNetBottleneckCanonizer()))]
    return [VGGCanonizer()]                        # no batch norm in VGG-16: nothing to merge


def test_lrp_epsilon_plus_flat(case):
    composites = pytest.importorskip("zennit.composites")
    theirs = zennit_lrp(case, composites.EpsilonPlusFlat(canonizers=exact_canonizers(case.arch)))
    ours = mx.lrp(case.model, case.x, case.targets, composite="epsilon_plus_flat")
    assert relative_max_diff(ours, theirs) <= TOL


def test_lrp_epsilon_gamma_box(case):
    """low/high: the images of pixels 0 and 1 (minixai's ZBox default, from the model's input spec). Measured
    1e-15 (VGG-16), 7e-14 (ResNet-50); 2.4e-8 before ZBox took its default bounds in float64."""
    composites = pytest.importorskip("zennit.composites")
    low, high = (torch.from_numpy(b[None].astype(np.float64)) for b in case.model.spec.valid_range(np.float64))
    theirs = zennit_lrp(case, composites.EpsilonGammaBox(low=low, high=high,
                                                         canonizers=exact_canonizers(case.arch)))
    ours = mx.lrp(case.model, case.x, case.targets, composite="epsilon_gamma_box")
    assert relative_max_diff(ours, theirs) <= TOL


@pytest.mark.parametrize("case", ["resnet50"], indirect=True)          # VGG-16 has no batch norm
def test_zennit_resnet_canonizer(case):
    """With Zennit's own ResNetCanonizer, whose merged batch norms still divide by sqrt(1 + eps) (see
    exact_canonizers): measured 1.7e-4 of the maximum at 64x96, a scale difference of the network, not a rule."""
    composites = pytest.importorskip("zennit.composites")
    from zennit.torchvision import ResNetCanonizer
    theirs = zennit_lrp(case, composites.EpsilonPlusFlat(canonizers=[ResNetCanonizer()]), n=1)
    ours = mx.lrp(case.model, case.x[:1], case.targets[:1], composite="epsilon_plus_flat")
    assert relative_max_diff(ours, theirs) <= 1e-3
