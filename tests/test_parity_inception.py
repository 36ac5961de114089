"""Parity of Inception v3 with torchvision: a converted model computes the same logits and input gradients.

torchvision's Inception3 carries its own random initialisation (every weight ~ N(0, 0.1^2), torch.manual_seed)
and `randomise` of test_parity_torch (random batch-norm statistics and affine parameters). With that init
the activations grow through the 94 convolutions (logits of order 1e13 here), so the comparison is relative
to the largest value, in float64 on both sides, as test_parity_torch's exact test: max |ours - theirs| <=
TOL * max |theirs|. Measured: logits 1.8e-15 / input gradients 3.3e-15 at 299x299, 3.8e-15 / 2.4e-15 at
139x171, 3.2e-15 / 2.5e-15 with transform_input at 107x107.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from minixai import models  # noqa: E402
from test_parity_torch import (our_logits_and_gradient, randomise, relative_max_diff,  # noqa: E402
                               torch_logits_and_gradient)

pytestmark = pytest.mark.torch

TOL = 1e-12                            # the targets: test_parity_torch's (7 and 123)


def torchvision_inception(seed=0, **options):
    torch.manual_seed(seed)
    return randomise(torchvision.models.inception_v3(init_weights=True, **options)).eval()


@pytest.fixture(scope="module")
def pair():
    """(torchvision Inception3 in float64, eval, its minixai conversion in float64)."""
    net = torchvision_inception()
    model = models.from_torchvision(net).astype(np.float64)
    return net.double(), model


@pytest.mark.parametrize("size", [(299, 299), (139, 171)])
def test_float64_logits_and_input_gradient(pair, size):
    net, model = pair
    x = np.random.default_rng(0).standard_normal((2, 3, *size))
    logits, grad = torch_logits_and_gradient(net, x)
    our_logits, our_grad = our_logits_and_gradient(model, x)
    assert our_grad.dtype == np.float64
    assert relative_max_diff(our_logits, logits) <= TOL
    assert relative_max_diff(our_grad, grad) <= TOL


def test_transform_input():
    """torchvision's transform_input (x * std / 0.5 + (mean - 0.5) / 0.5 per channel) converts and agrees."""
    net = torchvision_inception(seed=1, transform_input=True, aux_logits=False)
    model = models.from_torchvision(net).astype(np.float64)
    assert model.layer_names()[0] == "transform_input" and "AuxLogits" not in model.layer_names()
    x = np.random.default_rng(1).standard_normal((2, 3, 107, 107))
    logits, grad = torch_logits_and_gradient(net.double(), x)
    our_logits, our_grad = our_logits_and_gradient(model, x)
    assert relative_max_diff(our_logits, logits) <= TOL
    assert relative_max_diff(our_grad, grad) <= TOL


def test_auxiliary_head_loads_and_computes_torchvisions_aux_logits(pair):
    """The AuxLogits.* weights load (from_torchvision passes the whole state dict); the head, skipped in a
    pass, computes torchvision's auxiliary logits from Mixed_6e's output."""
    net, model = pair
    theirs = {k: v.numpy() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert model.state_dict().keys() == theirs.keys()
    assert any(k.startswith("AuxLogits.") for k in theirs)
    features = np.random.default_rng(2).standard_normal((2, 768, 17, 17))
    with torch.no_grad():
        aux = net.AuxLogits(torch.from_numpy(features)).numpy()
    assert relative_max_diff(model["AuxLogits"].logits(features), aux) <= TOL


def test_float32_conversion_keeps_torchvisions_numbers():
    """float32 weights are copied bit for bit; the logits agree to float32 rounding."""
    net = torchvision_inception(seed=2)
    model = models.from_torchvision(net)
    for key, value in net.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(model.state_dict()[key], value.numpy())
    x = np.random.default_rng(3).standard_normal((1, 3, 107, 107)).astype(np.float32)
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    assert relative_max_diff(model(x), logits) <= 1e-4


def test_modified_copies_are_refused():
    """A layout that differs from Inception v3's (here one reduction with another stride) is named."""
    net = torchvision_inception(seed=3, aux_logits=False)
    net.Mixed_6a.branch3x3.conv.stride = (1, 1)
    with pytest.raises(ValueError, match="Mixed_6a.branch3x3.conv"):
        models.from_torchvision(net)
