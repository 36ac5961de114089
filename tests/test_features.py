"""Feature visualisation (seed 004): the objective and the update by hand, the activation rises on the shapes
model and on random-weight VGG-16 / ResNet-50, batched filters equal one at a time, the grid, bad input."""
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import minixai as mx  # noqa: E402
from minixai import models  # noqa: E402
from minixai.features import START_RANGE, filter_objective, l2_normalize, to_uint8  # noqa: E402
from minixai.layers import Conv2d, ReLU, Sequential  # noqa: E402
from minixai.model import Model  # noqa: E402
from minixai.spec import InputSpec  # noqa: E402


@pytest.fixture(scope="module")
def shapes_model():
    return models.load("shapes")


def tiny_model(dead_bias=-100.0):
    """conv(3 -> 2) + ReLU on 12 x 12 inputs; filter 0's bias keeps it below zero everywhere (inactive)."""
    conv = Conv2d(3, 2, 3, padding=1)
    conv.weight = np.random.default_rng(0).standard_normal(conv.weight.shape).astype(np.float32)
    conv.bias = np.array([dead_bias, 0.0], np.float32)
    root = Sequential(Sequential(conv, ReLU()), names=["features"])
    return Model(root, InputSpec(size=(12, 12)), "tiny")


# ------------------------------------------------------------------------------------------ the maths

def test_objective_is_the_mean_without_border():
    act = np.random.default_rng(0).standard_normal((2, 4, 7, 7))
    a, dact = filter_objective(act, np.array([1, 3]), border=2)
    np.testing.assert_allclose(a, [act[0, 1, 2:5, 2:5].mean(), act[1, 3, 2:5, 2:5].mean()])
    assert (dact != 0).sum() == 2 * 9 and dact.max() == pytest.approx(1 / 9)
    assert np.sum(dact * act) == pytest.approx(a.sum())                  # a is linear in act: sum a = <dact, act>


def test_update_is_a_step_of_length_lr_from_the_seeded_start(shapes_model):
    start = mx.maximize_filter(shapes_model, "features.3", 0, steps=1, lr=1e-12).raw
    assert np.abs(start).max() <= START_RANGE and np.abs(start).max() > 0.9 * START_RANGE
    moved = mx.maximize_filter(shapes_model, "features.3", 0, steps=1, lr=10.0).raw
    assert np.linalg.norm(moved - start) == pytest.approx(10.0, rel=1e-4)       # x + lr * g / ||g||
    g = np.random.default_rng(1).standard_normal((3, 2, 4, 4))
    g[2] = 0                                                                   # no gradient: no step, no NaN
    norms = np.sqrt((l2_normalize(g) ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, [1, 1, 0])


def test_to_uint8():
    img = to_uint8(np.random.default_rng(0).standard_normal((1, 3, 10, 12)) * 5 + 3)
    assert img.shape == (10, 12, 3) and img.dtype == np.uint8
    assert abs(img.mean() - 127.5) < 3 and img.min() < 80 and img.max() > 175


# ------------------------------------------------------------------------------------------ activation rises

def gains(results):
    return np.array([r.gain for r in results])


def test_shapes_model_filters_rise(shapes_model):
    """With the seed's step (norm 10 from a faint start) the first step can overshoot, and a few filters of
    the small shapes model end lower than they began; most reach more than 10x their start."""
    g = gains(mx.maximize_filters(shapes_model, "features.6", range(8)))
    assert np.median(g) >= 10 and (g >= 10).mean() >= 0.5


@pytest.mark.slow
def test_vgg16_random_weights_filters_rise():
    model = models.vgg16(weights=None, seed=0)
    results = mx.maximize_filters(model, "features.10", range(4), size=32)
    assert np.all(gains(results) >= 10)
    assert results[0].image.shape == (32, 32, 3) and results[0].history.shape == (31,)


@pytest.mark.slow
def test_resnet50_random_weights_filters_rise():
    """layer2 ends in a ReLU: filters inactive on the start image cannot move (and are reported); every
    active one rises at least 10x."""
    model = models.resnet50(weights=None, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        results = mx.maximize_filters(model, "layer2", range(8), size=64)
    active = [r for r in results if r.history[0] > 0]
    assert len(active) >= 4
    assert np.all(gains(active) >= 10)


def test_inactive_filters_are_reported():
    with pytest.warns(RuntimeWarning, match=r"filters \[0\] have a zero gradient"):
        results = mx.maximize_filters(tiny_model(), "features", [0, 1], border=1, steps=3)
    assert np.all(results[0].history == 0) and results[1].history[-1] > results[1].history[0]


# ------------------------------------------------------------------------------------------ batching, seeds

@pytest.mark.parametrize("options", [{}, {"jitter": 2, "octaves": (0.75, 1.0), "blur": 0.5, "decay": 0.01}])
def test_batched_equals_one_at_a_time(shapes_model, options):
    batched = mx.maximize_filters(shapes_model, "features.6", [0, 5, 9], steps=10, **options)
    chunked = mx.maximize_filters(shapes_model, "features.6", [0, 5, 9], steps=10, batch_size=2, **options)
    for b, c in zip(batched, chunked):
        single = mx.maximize_filter(shapes_model, "features.6", b.filter, steps=10, **options)
        for other in (single, c):
            assert other.filter == b.filter
            np.testing.assert_allclose(other.raw, b.raw, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(other.history, b.history, rtol=1e-4, atol=1e-5)


def test_seed_decides_the_start(shapes_model):
    a, b, c = (mx.maximize_filter(shapes_model, "features.3", 2, steps=2, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.raw, b.raw)
    assert not np.allclose(a.raw, c.raw)


def test_grid_of_64_filters_renders(shapes_model, tmp_path):
    results = mx.maximize_filters(shapes_model, "features.6", range(64), steps=3)
    fig = mx.viz.filter_grid(results, title="features.6")
    assert len([ax for ax in fig.axes if ax.images]) == 64
    assert [ax.get_title() for ax in fig.axes[:3]] == ["0", "1", "2"]
    path = mx.viz.save(fig, tmp_path / "filters.png")
    assert path.stat().st_size > 50_000


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kwargs, error, message", [
    ({"layer": "features.99"}, ValueError, "layer 'features.99' not found; valid: features, pool"),
    ({"filter": 64}, ValueError, "filter 64 is out of range: layer 'features.6' has 64 filters"),
    ({"filter": -1}, ValueError, "filter -1 is out of range"),
    ({"filter": 1.5}, TypeError, "filters must be a non-empty sequence of ints"),
    ({"steps": 0}, ValueError, "steps must be a positive integer"),
    ({"lr": 0}, ValueError, "lr must be a positive number"),
    ({"layer": "classifier"}, ValueError, "not feature maps"),
    ({"border": 8}, ValueError, "nothing is left without a border of 8"),
    ({"size": 0}, ValueError, "size must be a positive int"),
    ({"jitter": -1}, ValueError, "jitter must be an integer >= 0"),
    ({"octaves": ()}, ValueError, "octaves must be None or a non-empty sequence"),
    ({"decay": 1.0}, ValueError, "decay must be in"),
])
def test_bad_input(shapes_model, kwargs, error, message):
    args = {"layer": "features.6", "filter": 0, "steps": 2}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        mx.maximize_filter(shapes_model, **args)


def test_bad_filter_list(shapes_model):
    with pytest.raises(TypeError, match="non-empty sequence"):
        mx.maximize_filters(shapes_model, "features.6", [])
    with pytest.raises(ValueError, match="filter 16 is out of range: layer 'features.0' has 16 filters"):
        mx.maximize_filters(shapes_model, "features.0", range(64))
