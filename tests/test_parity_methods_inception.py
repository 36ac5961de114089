"""Parity of the methods with Captum and Zennit on Inception v3, as tests/test_parity_methods.py does for VGG-16
and ResNet-50: the same torchvision weights (its init, random batch-norm statistics), float64 on both sides,
max |ours - theirs| <= TOL * max |theirs|.

torchvision's Inception3 calls F.relu, F.avg_pool2d and F.max_pool2d, which Captum's hooks and Zennit's rules
do not see; tests/inception_peers.py gives each call a module (the fixture checks that the logits are
unchanged), and captum_ready (tests/torch_peers.py) makes every max-pool read a copy of its input. Measured
at 107x123: saliency 3.1e-15, gradient x input 2.3e-15, guided backprop 4.6e-16, DeconvNet 2.4e-15,
DeepLIFT 1.3e-13, Grad-CAM at Mixed_7c 5.6e-15, LRP epsilon-plus-flat 1.3e-15.
"""
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
captum_attr = pytest.importorskip("captum.attr")

import minixai as mx  # noqa: E402
from inception_peers import modules_for_peers  # noqa: E402
from minixai import models  # noqa: E402
from test_parity_methods import exact_canonizers, inputs, relative_max_diff, tensor  # noqa: E402
from test_parity_methods import test_deeplift as deeplift_parity  # noqa: E402 (not collected under this name)
from test_parity_torch import randomise  # noqa: E402
from torch_peers import captum_ready  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU"),
              pytest.mark.filterwarnings("ignore:Setting forward, backward hooks")]

SIZE = (107, 123)
TOL = 1e-10


@pytest.fixture(scope="module")
def case():
    """net (torch, float64, eval, modules for the peers), model (minixai, float64), x (2, 3, H, W), targets."""
    torch.manual_seed(0)
    net = randomise(torchvision.models.inception_v3(init_weights=True)).eval()
    model = models.from_torchvision(net).astype(np.float64)
    net = net.double()
    x = model.spec.normalize(np.random.default_rng(0).uniform(0, 1, (2, 3, *SIZE)))
    with torch.no_grad():
        plain = net(tensor(x)).numpy()
        net = captum_ready(modules_for_peers(net))
        for p in net.parameters():
            p.requires_grad_(False)
        logits = net(tensor(x)).numpy()
    assert np.array_equal(logits, plain)                        # the modules change nothing
    assert relative_max_diff(model(x), logits) <= 1e-12
    targets = [int(t) for t in logits.argmax(axis=1)]
    return types.SimpleNamespace(net=net, model=model, x=x, targets=targets)


@pytest.mark.parametrize("ours, theirs", [(mx.saliency, captum_attr.Saliency),
                                          (mx.gradient_x_input, captum_attr.InputXGradient),
                                          (mx.guided_backprop, captum_attr.GuidedBackprop),
                                          (mx.deconvnet, captum_attr.Deconvolution)])
def test_gradient_methods(case, ours, theirs):
    options = {"abs": False} if theirs is captum_attr.Saliency else {}
    reference = theirs(case.net).attribute(inputs(case.x), target=case.targets, **options)
    assert relative_max_diff(ours(case.model, case.x, case.targets), reference) <= TOL


def test_deeplift(case, monkeypatch):
    """test_parity_methods' DeepLIFT test, on Inception: Captum's Rescale rule with its max-pool unpooling
    summing (the overlapping 3x3/2 pools of the stem and of blocks B and D need it), a seeded noise baseline,
    summation to delta on both sides, parity to its 1e-4 (measured: 1.3e-13)."""
    deeplift_parity(case, monkeypatch)


def test_gradcam_on_mixed_7c(case):
    layer = case.net.get_submodule("Mixed_7c")
    theirs = captum_attr.LayerGradCam(case.net, layer).attribute(inputs(case.x), target=case.targets,
                                                                 relu_attributions=True)
    assert relative_max_diff(mx.gradcam(case.model, case.x, case.targets, upsample=False), theirs[:, 0]) <= TOL


def test_lrp_epsilon_plus_flat(case):
    """Zennit's EpsilonPlusFlat; batch norms merged exactly (exact_canonizers, whose ResNet
    bottleneck part finds nothing to do here). Zennit sees the average pools as modules: Norm rule, as ours."""
    zennit_composites = pytest.importorskip("zennit.composites")
    from zennit.attribution import Gradient
    canonizers = exact_canonizers("resnet")
    one_hot = torch.zeros(2, 1000, dtype=torch.float64)
    one_hot[range(2), case.targets] = 1
    with Gradient(model=case.net, composite=zennit_composites.EpsilonPlusFlat(canonizers=canonizers)) as attr:
        _, theirs = attr(tensor(case.x), lambda out: one_hot * out.detach())
    assert relative_max_diff(mx.lrp(case.model, case.x, case.targets, composite="epsilon_plus_flat"), theirs) <= TOL
