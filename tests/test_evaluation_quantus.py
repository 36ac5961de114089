"""Parity with Quantus 0.6 on the same maps: the metrics of minixai.evaluation against Quantus's, in float64
on both sides, Quantus running the torch twin of the model (built from the same weights).

Where Quantus's defaults differ (the docstrings of minixai.evaluation say how), the test sets them to match:
logits instead of softmax (softmax=False), no normalisation, per-image minimum as the baseline
(baseline="minimum" here is Quantus's "black"), perturbations drawn once and given to both.
Tie-free maps: Quantus ranks with an unstable sort, minixai with a stable one; with ties the two orders
differ by design (see minixai.evaluation.maps).
"""
import copy
import warnings
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
quantus = pytest.importorskip("quantus")

import minixai as mx  # noqa: E402
from minixai import evaluation as ev  # noqa: E402
from minixai import models  # noqa: E402
from minixai.images import resize_bilinear  # noqa: E402
from minixai.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential  # noqa: E402
from minixai.evaluation.imputation import noisy_linear_imputation  # noqa: E402
from minixai.evaluation.robustness import sensitivity_noise  # noqa: E402
from minixai.model import Model  # noqa: E402
from minixai.models.initialisation import initialise  # noqa: E402

pytestmark = pytest.mark.torch
TIGHT = {"rtol": 1e-9, "atol": 1e-10}         # what float64 reaches on both sides (measured: ~1e-13)


@pytest.fixture(autouse=True)
def float64_torch():
    """Quantus feeds the model torch.Tensor(x), which has torch's default dtype: make it float64."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    warnings.filterwarnings("ignore", module="quantus")
    yield
    torch.set_default_dtype(before)


def torch_twin(model, in_channels=3):
    """The shapes CNN's architecture in torch (same module names), loaded with `model`'s weights."""
    features, channels = [], in_channels
    for stage, width in enumerate((16, 32, 64, 64)):
        features += [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU()]
        if stage < 3:
            features.append(torch.nn.MaxPool2d(2))
        channels = width
    classifier = [torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, model.num_outputs)]
    net = torch.nn.Sequential(OrderedDict(features=torch.nn.Sequential(*features), pool=torch.nn.MaxPool2d(8),
                                          flatten=torch.nn.Flatten(), classifier=torch.nn.Sequential(*classifier)))
    net.load_state_dict({k: torch.from_numpy(np.array(v, np.float64)) for k, v in model.state_dict().items()})
    return net.double().eval()


def grey_shapes_cnn(seed=0):
    """The shapes CNN for one-channel images, seeded random weights, float64 (Quantus's ROAD needs one
    channel: with three it indexes the flattened (C, H, W) map into an (H, W) mask)."""
    layers, channels = [], 1
    for stage, width in enumerate((16, 32, 64, 64)):
        layers += [Conv2d(channels, width, 3, padding=1), ReLU()] + ([MaxPool2d(2)] if stage < 3 else [])
        channels = width
    root = Sequential(Sequential(*layers), MaxPool2d(8), Flatten(), Sequential(Linear(64, 64), ReLU(), Linear(64, 5)),
                      names=["features", "pool", "flatten", "classifier"])
    return initialise(Model(root, None, "grey"), seed, linear="uniform").astype(np.float64)


@pytest.fixture(scope="module")
def shapes64():
    model = copy.deepcopy(models.load("shapes")).astype(np.float64)
    batch = mx.data.shapes.generate(3, seed=2)
    return model, torch_twin(model), batch.images.astype(np.float64), batch.labels


def tie_free_maps(shape, seed=0):
    m = np.random.default_rng(seed).random(shape)
    assert len(np.unique(m)) == m.size                  # the two sorts agree only without ties
    return m


def test_twin_computes_the_same_logits(shapes64):
    model, net, x, _ = shapes64
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), model(x), **TIGHT)


def test_pixel_flipping_matches_quantus(shapes64):
    """72x72 images, so that a step can flip whole pixels: Quantus needs features_in_step to divide H*W and
    to be a multiple of the 3 channels to flip whole pixels (impossible for 64*64 = 2^12)."""
    model, net, x, y = shapes64
    x72 = resize_bilinear(x, (72, 72))
    maps = tie_free_maps((3, 72, 72))
    steps = 36                                           # 144 pixels = 432 features per step
    ours = ev.pixel_flipping(model, x72, y, maps, steps=steps, baseline="minimum", progress=False)
    theirs = quantus.PixelFlipping(features_in_step=3 * 72 * 72 // steps, normalise=False, abs=False,
                                   disable_warnings=True)(net, x72, y, a_batch=maps[:, None], softmax=False)
    np.testing.assert_allclose(ours.curve[:, 1:], np.array(theirs), **TIGHT)   # Quantus has no k = 0 point
    lerf = ev.pixel_flipping(model, x72, y, maps, steps=steps, order="lerf", baseline="minimum", progress=False)
    theirs_lerf = quantus.PixelFlipping(features_in_step=3 * 72 * 72 // steps, normalise=False,
                                        disable_warnings=True)(net, x72, y, a_batch=1 - maps[:, None], softmax=False)
    np.testing.assert_allclose(lerf.curve[:, 1:], np.array(theirs_lerf), **TIGHT)


def test_road_matches_quantus_without_noise():
    model = grey_shapes_cnn()
    net = torch_twin(model, in_channels=1)
    x = np.random.default_rng(1).standard_normal((3, 1, 64, 64))
    y = model(x).argmax(axis=1)                         # explain the predicted class: accuracy starts at 1
    maps = tie_free_maps((3, 64, 64), seed=2)
    percentages = [5, 30, 60, 90]
    ours = ev.road(model, x, y, maps, percentages=percentages, noise=0.0, progress=False)
    metric = quantus.ROAD(percentages=percentages, noise=0.0, normalise=False, disable_warnings=True)
    theirs = metric(net, x, y, a_batch=maps[:, None])        # {percentage: accuracy over the batch}
    np.testing.assert_array_equal(ours.correct.mean(axis=0), [theirs[p] for p in percentages])
    imputed = quantus.functions.perturb_func.noisy_linear_imputation   # the imputed image itself
    order = np.argsort(-maps[0].ravel(), kind="stable")
    removed = np.zeros(64 * 64, bool)
    removed[order[:int(64 * 64 * 0.6)]] = True
    np.testing.assert_allclose(noisy_linear_imputation(x[0], removed.reshape(64, 64)),
                               imputed(x[0], np.flatnonzero(removed), noise=0.0), **TIGHT)


def test_infidelity_matches_quantus_on_its_patch_perturbations(shapes64):
    model, net, x, y = shapes64
    maps = tie_free_maps((3, 64, 64), seed=3) - 0.5
    perturbations = ev.patch_perturbations(x, patch=16)     # Quantus's set: 16 squares, cumulative, to the minimum
    ours = ev.infidelity(model, x, y, maps, perturbation=perturbations, progress=False)
    theirs = quantus.Infidelity(perturb_patch_sizes=[16], n_perturb_samples=1, normalise=False, abs=False,
                                disable_warnings=True)(net, x, y, a_batch=maps[:, None], softmax=False)
    np.testing.assert_allclose(ours, theirs, **TIGHT)


def test_max_sensitivity_matches_quantus_on_the_same_noise(shapes64):
    model, net, x, y = shapes64
    n, radius, seed = 4, 0.2, 5
    ours = ev.max_sensitivity(model, x, y, "saliency", radius=radius, n=n, seed=seed, progress=False)
    draws = iter(sensitivity_noise(x, radius, seed, k) for k in range(n))

    def same_noise(arr, indices, **kwargs):              # Quantus's perturb_func: arr (N, C*H*W)
        return arr + next(draws).reshape(len(arr), -1)

    def minixai_saliency(model, inputs, targets, **kwargs):     # Quantus hands in the torch model: unused
        return mx.saliency(shapes64[0], np.asarray(inputs, np.float64), np.asarray(targets))

    metric = quantus.MaxSensitivity(nr_samples=n, perturb_func=same_noise, normalise=False, abs=False,
                                    disable_warnings=True)
    a = minixai_saliency(None, x, y)
    theirs = metric(net, x, y, a_batch=a, explain_func=minixai_saliency)
    np.testing.assert_allclose(ours, theirs, **TIGHT)


def test_sparseness_and_complexity_match_quantus():
    maps = tie_free_maps((4, 32, 32), seed=4) - 0.3
    maps[0, :16] = 0.0                                  # exact zeros: 0 log 0
    a = maps[:, None]
    x = np.zeros_like(a)
    gini = quantus.Sparseness(normalise=False, disable_warnings=True)(None, x, np.zeros(4, int), a_batch=a)
    entropy = quantus.Complexity(normalise=False, disable_warnings=True)(None, x, np.zeros(4, int), a_batch=a)
    # Quantus adds 1e-7 to |a| before its Gini: the exact Gini of |a| + 1e-7 is its number
    np.testing.assert_allclose(ev.sparseness(np.abs(maps) + 1e-7), gini, **TIGHT)
    np.testing.assert_allclose(ev.sparseness(np.abs(maps)), gini, rtol=1e-6)   # the 1e-7's effect on these maps
    # Quantus takes log(p + 1e-12): exact where p > 0 up to 1e-12 / p, and 0 log 0 = 0 either way
    np.testing.assert_allclose(ev.complexity(np.abs(maps)), entropy, rtol=1e-8)
