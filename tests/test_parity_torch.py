"""Parity with torchvision: a converted model computes the same logits and input gradients.

The torchvision models carry their own random initialisation (torch.manual_seed), with random biases and,
for the ResNets, random batch-norm statistics and affine parameters so that nothing is trivial.

Why the float32 gradient is compared with a norm and the float64 one entry by entry: in float32 the two
libraries sum in different orders, so a pre-activation within ~1e-7 of zero can be positive in one and
not in the other. The ReLU (and the max-pool after it) then routes the gradient differently; both answers
are right for their own rounding, and a handful of such flips in a deep network changes many entries of
the input gradient a little (measured: relative L2 error up to ~9e-3, VGG-16 at 224x224, while a real bug
gives errors of order 1). In float64 the flips vanish and the gradients agree to ~1e-15 of max|grad|, which is
where exactness is tested.
"""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from minixai import models  # noqa: E402

pytestmark = pytest.mark.torch

ARCHS = ["alexnet", "resnet18", "resnet50", "vgg16"]
TARGETS = [7, 123]                      # the explained logit of each of the two samples
TOL = 1e-4                              # max abs difference / max abs value


def randomise(net, seed=1):
    """Random biases, and random BN statistics and affine parameters, so that none is 0 or 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.01)
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return net


@pytest.fixture(scope="module", params=ARCHS)
def pair(request):
    """(name, torchvision model in eval mode, its minixai conversion)."""
    torch.manual_seed(0)
    net = randomise(getattr(torchvision.models, request.param)()).eval()
    return request.param, net, models.from_torchvision(net)


def torch_logits_and_gradient(net, x):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    logits = net(xt)
    logits[range(len(TARGETS)), TARGETS].sum().backward()
    return logits.detach().numpy(), xt.grad.numpy()


def our_logits_and_gradient(model, x):
    logits = model(x)
    grad_out = np.zeros_like(logits)
    grad_out[range(len(TARGETS)), TARGETS] = 1
    return logits, model.backward(grad_out)


def relative_max_diff(ours, theirs):
    return np.abs(ours - theirs).max() / np.abs(theirs).max()


@pytest.mark.parametrize("size", [(224, 224), (160, 192)])
def test_float32_logits_and_gradient(pair, size):
    _, net, model = pair
    x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32)
    logits, grad = torch_logits_and_gradient(net, x)
    our_logits, our_grad = our_logits_and_gradient(model, x)
    assert our_logits.dtype == our_grad.dtype == np.float32
    assert relative_max_diff(our_logits, logits) <= TOL
    assert np.linalg.norm(our_grad - grad) / np.linalg.norm(grad) <= 5e-2      # see the module docstring


def test_float64_logits_and_gradient_exact(pair):
    _, net, _ = pair
    net64 = copy.deepcopy(net).double()
    model = models.from_torchvision(net).astype(np.float64)
    x = np.random.default_rng(1).standard_normal((2, 3, 160, 192))
    logits, grad = torch_logits_and_gradient(net64, x)
    our_logits, our_grad = our_logits_and_gradient(model, x)
    assert our_grad.dtype == np.float64
    assert relative_max_diff(our_logits, logits) <= TOL
    assert relative_max_diff(our_grad, grad) <= TOL


def test_converted_model_is_a_copy(pair):
    arch, net, model = pair
    assert model.arch == arch
    theirs = {k: v.numpy() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    ours = model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(np.array_equal(ours[k], theirs[k]) and not np.shares_memory(ours[k], theirs[k]) for k in ours)


def test_other_head_sizes():
    model = models.from_torchvision(torchvision.models.resnet18(num_classes=10).eval())
    assert model.num_outputs == 10 and model.spec.num_classes == 10


@pytest.mark.parametrize("name, options, message", [
    ("vgg11_bn", {}, "VGG with 8 convolutions and batch norm"),
    ("resnext50_32x4d", {}, "layer1.0.conv1"),
    ("resnet50", {"replace_stride_with_dilation": [False, False, True]}, "layer4.0.conv2"),
    ("squeezenet1_0", {}, "SqueezeNet"),
])
def test_unsupported_torchvision_models_are_refused(name, options, message):
    with pytest.raises(ValueError, match=message) as error:
        models.from_torchvision(getattr(torchvision.models, name)(**options))
    assert "resnet50" in str(error.value)


def test_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        models.from_torchvision({"fc.weight": np.zeros((2, 2))})
