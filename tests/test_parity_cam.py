"""Parity of the Grad-CAM family with pytorch-grad-cam's classes of the same names, same weights and inputs,
float64 on both sides (the models and inputs of test_parity_methods; Score-CAM and Ablation-CAM, which run the
network once per channel, on ResNet-18 at 48x48).

pytorch-grad-cam's public output is the map through a ReLU, scaled to [0, 1] per image ((c - min) / (max +
1e-7)) and resized with OpenCV in float32 (test_parity_methods.test_pytorch_grad_cam compares that for
Grad-CAM). Here the maps are compared at the layer's resolution before the scaling: its `get_cam_image` on
the activations and gradients it recorded, through the ReLU, against ours with upsample=False:
max |ours - theirs| <= TOL * max |theirs|. Measured (VGG-16 features.29; ResNet-50 layer4 and layer3):
Grad-CAM++ 0.9e-15-1.3e-15, XGradCAM 2.7e-15-4.1e-15, HiResCAM 1.4e-15-5.1e-15, LayerCAM 0.9e-15-1.3e-15,
Eigen-CAM 1.7e-8-4.4e-8 (pytorch-grad-cam returns its projection in float32, with the same LAPACK sign).
Score-CAM and Ablation-CAM keep the scores in float32 there: see their tests.
"""
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
grad_cam = pytest.importorskip("pytorch_grad_cam")

import minixai as mx  # noqa: E402
from minixai import models  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from test_parity_methods import case, inputs, relative_max_diff  # noqa: E402,F401 (case: the fixture)
from test_parity_torch import randomise  # noqa: E402

pytestmark = pytest.mark.torch

TOL = 1e-10
LAYERS = {"vgg16": ["features.29"], "resnet50": ["layer4", "layer3"]}
GRADIENT_CAMS = {"gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
                 "layercam": "LayerCAM", "eigencam": "EigenCAM"}


def their_raw_map(cam_class, net, layer, x, targets, **options):
    """pytorch-grad-cam's map for `layer` before its ReLU and scaling: get_cam_image on what it recorded."""
    layer = net.get_submodule(layer)
    targets = [ClassifierOutputTarget(t) for t in targets]
    x = inputs(x)
    with getattr(grad_cam, cam_class)(model=net, target_layers=[layer]) as cam:
        for name, value in options.items():
            setattr(cam, name, value)
        if cam.uses_gradients:
            cam(input_tensor=x, targets=targets)                  # forward and backward, as its __call__ does
        else:
            cam.activations_and_grads(x)                          # forward only
        recorded = cam.activations_and_grads
        acts = recorded.activations[0].numpy()
        grads = recorded.gradients[0].numpy() if recorded.gradients else None
        return cam.get_cam_image(x, layer, targets, acts, grads, eigen_smooth=False)


@pytest.mark.parametrize("name", list(GRADIENT_CAMS))
def test_gradient_cams_and_eigencam(case, name):  # noqa: F811 (the fixture)
    for layer in LAYERS[case.arch]:
        theirs = np.maximum(their_raw_map(GRADIENT_CAMS[name], case.net, layer, case.x, case.targets), 0)
        ours = mx.METHODS[name](case.model, case.x, case.targets, layer=layer, upsample=False)
        tol = 1e-6 if name == "eigencam" else TOL               # its projection is returned in float32
        assert relative_max_diff(ours, theirs) <= tol, layer


@pytest.mark.parametrize("case", ["resnet50"], indirect=True)
def test_three_cams_coincide_on_layer4_only(case):  # noqa: F811
    """Before global average pooling + fc, pytorch-grad-cam's GradCAM, XGradCAM and HiResCAM give one map
    (XGradCAM up to its 1e-7), and so do ours; on layer3 they differ."""
    for layer, same in (("layer4", True), ("layer3", False)):
        maps = [np.maximum(their_raw_map(c, case.net, layer, case.x, case.targets), 0)
                for c in ("GradCAM", "XGradCAM", "HiResCAM")]
        differences = [relative_max_diff(m, maps[0]) for m in maps[1:]]
        assert all(d < 1e-5 for d in differences) if same else all(d > 1e-2 for d in differences), layer


# ---- the perturbation CAMs, on ResNet-18 ------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    net = randomise(torchvision.models.resnet18()).eval()
    model = models.from_torchvision(net).astype(np.float64)
    net = net.double()
    for p in net.parameters():
        p.requires_grad_(False)
    x = model.spec.normalize(np.random.default_rng(1).uniform(0, 1, (2, 3, 48, 48)))
    with torch.no_grad():
        targets = [int(t) for t in net(torch.from_numpy(x)).argmax(axis=1)]
    return types.SimpleNamespace(net=net, model=model, x=x, targets=targets)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_scorecam(small):
    """Masks upsampled with corners aligned and scaled by (max - min + 1e-8), raw target logits, a softmax over
    the channels. pytorch-grad-cam turns the scores into float32 (torch.Tensor(list)) before the softmax: the
    weights carry float32 rounding, measured 3.8e-8 of the map's maximum."""
    theirs = np.maximum(their_raw_map("ScoreCAM", small.net, "layer3", small.x, small.targets, batch_size=64), 0)
    ours = mx.scorecam(small.model, small.x, small.targets, layer="layer3", upsample=False, progress=False)
    assert relative_max_diff(ours, theirs) <= 1e-6


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_ablationcam(small):
    """layer3 is a ReLU's output, so pytorch-grad-cam ablates to 0 as ours does. It reruns the whole network
    per channel (ours only layer4 -> fc) and keeps the scores in float32, before (s0 - s_k) / s0: measured
    4.8e-6 of the map's maximum."""
    theirs = np.maximum(their_raw_map("AblationCAM", small.net, "layer3", small.x, small.targets), 0)
    ours = mx.ablationcam(small.model, small.x, small.targets, layer="layer3", upsample=False, progress=False)
    assert relative_max_diff(ours, theirs) <= 3e-5
