"""Counterfactual explanations (seed 003) on the shipped shapes model: success rate, the history, the valid
pixel range, determinism, the learning-rate comparison, the distance gradients, the figure, bad input."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import minixai as mx  # noqa: E402
from minixai import models  # noqa: E402
from minixai.counterfactual import compare_figure, distance_penalty, total_variation  # noqa: E402
from minixai.training import Adam  # noqa: E402
from minixai.data import shapes  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return models.load("shapes")


@pytest.fixture(scope="module")
def batch():
    return shapes.generate(50, seed=2)


def other_class(batch, i):
    return (int(batch.labels[i]) + 1) % len(batch.class_names)


def test_default_settings_reach_the_target_on_the_test_set(model, batch):
    """The acceptance criterion: >= 90% of the 50 seeded test images reach the next class with the defaults
    (benchmarks/counterfactual.py prints the same number with steps and distances)."""
    reached = [mx.counterfactual(model, batch.images[i:i + 1], other_class(batch, i), progress=False).success
               for i in range(len(batch))]
    assert np.mean(reached) >= 0.9


def test_history_describes_every_image_visited(model, batch):
    cf = mx.counterfactual(model, batch.images[:1], other_class(batch, 0), progress=False)
    p = cf.history["target_probability"]
    assert len(p) == len(cf.history["loss"]) == len(cf.history["l1"]) == cf.steps + 1
    assert p[-1] == cf.probabilities[cf.target_class]                    # the last entry is the result
    assert cf.history["l1"][0] == 0 and cf.history["l1"][-1] == pytest.approx(cf.distance["l1"])
    assert cf.success == (p[-1] >= cf.threshold) and np.all(p[:-1] < cf.threshold)   # stops at the first hit
    assert cf.probabilities.sum() == pytest.approx(1)
    assert cf.original_probabilities.argmax() == np.argmax(model(batch.images[:1]))
    assert cf.success and np.argmax(model(cf.image)) == cf.target_class
    assert cf.distance["l2"] >= cf.distance["l1"] > 0                   # RMS >= mean absolute value


def test_image_stays_in_the_valid_pixel_range(model, batch):
    """With large steps and an unreachable threshold the projection is active: some values sit on the bounds."""
    cf = mx.counterfactual(model, batch.images[1:2], other_class(batch, 1), lr=0.5, steps=15, threshold=1.0,
                           progress=False)
    low, high = model.spec.valid_range()
    assert cf.steps == 15 and not cf.success
    assert np.all(cf.image >= low) and np.all(cf.image <= high)
    assert np.any(cf.image == low) or np.any(cf.image == high)
    pixels = model.spec.denormalize(cf.image)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_deterministic_and_seeded(model, batch):
    x, c = batch.images[2:3], other_class(batch, 2)
    a, b = (mx.counterfactual(model, x, c, progress=False) for _ in range(2))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.steps == b.steps
    s1, s2 = (mx.counterfactual(model, x, c, seed=3, progress=False) for _ in range(2))
    np.testing.assert_array_equal(s1.image, s2.image)
    s3 = mx.counterfactual(model, x, c, seed=4, steps=1, threshold=1.0, progress=False)
    assert not np.array_equal(s3.image, mx.counterfactual(model, x, c, seed=3, steps=1, threshold=1.0,
                                                          progress=False).image)


def test_learning_rate_comparison(model, batch):
    """Seed 003, task 2: lr 0.01 vs 0.1, one call each. The larger steps get there sooner, by a larger change
    (summed over three images, so that one odd image does not decide)."""
    runs = {lr: [mx.counterfactual(model, batch.images[i:i + 1], other_class(batch, i), lr=lr, progress=False)
                 for i in (3, 4, 5)] for lr in (0.01, 0.1)}
    assert all(cf.success for results in runs.values() for cf in results)
    assert sum(cf.steps for cf in runs[0.1]) <= sum(cf.steps for cf in runs[0.01])
    assert sum(cf.distance["l1"] for cf in runs[0.1]) > sum(cf.distance["l1"] for cf in runs[0.01])


def test_already_the_target_takes_no_step(model, batch):
    x = batch.images[4:5]
    predicted = int(np.argmax(model(x)))
    cf = mx.counterfactual(model, x, shapes.CLASS_NAMES[predicted], threshold=0.5, progress=False)
    assert cf.success and cf.steps == 0 and cf.target_class == predicted
    np.testing.assert_array_equal(cf.image, x)


def test_distance_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((1, 3, 5, 6))
    x = x0 + rng.standard_normal(x0.shape)                  # away from the kinks of |.|
    def loss(z):
        return distance_penalty(z, x0, l1=0.7, l2=1.3, tv=0.4)[0]

    _, grad = distance_penalty(x, x0, l1=0.7, l2=1.3, tv=0.4)
    h = 1e-6
    for idx in [(0, 0, 0, 0), (0, 1, 2, 3), (0, 2, 4, 5), (0, 1, 0, 5)]:
        e = np.zeros_like(x)
        e[idx] = h
        assert grad[idx] == pytest.approx((loss(x + e) - loss(x - e)) / (2 * h), rel=1e-5)
    d = np.arange(6.0).reshape(1, 1, 2, 3)                   # rows differ by 3, columns by 1
    assert total_variation(d)[0] == pytest.approx((3 * 3 + 4 * 1) / 6)


def test_image_adam_first_step_is_lr_times_sign():
    x, g = np.zeros(4), np.array([2.0, -0.5, 1e-3, -7.0])
    np.testing.assert_allclose(Adam(lr=0.1).apply("image", x, g), -0.1 * np.sign(g), rtol=1e-4)


def test_compare_figure_renders(model, batch, tmp_path):
    cf = mx.counterfactual(model, batch.images[5:6], other_class(batch, 5), lr=0.1, progress=False)
    path = mx.viz.save(compare_figure(model, cf), tmp_path / "cf.png")
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        compare_figure(model, cf, method="magic")


@pytest.mark.parametrize("change, error, message", [
    ({"x": "nan"}, ValueError, "NaN or infinite"),
    ({"x": "batch"}, ValueError, "one image at a time"),
    ({"x": "bright"}, ValueError, r"pixels outside \[0, 1\]"),
    ({"target_class": 5}, ValueError, "target 5 is out of range"),
    ({"target_class": -1}, ValueError, "target -1 is out of range"),
    ({"target_class": "hexagon"}, ValueError, "unknown class 'hexagon'"),
    ({"target_class": 1.5}, TypeError, "target must be an int"),
    ({"lr": 0}, ValueError, "lr must be a positive number"),
    ({"lr": -0.1}, ValueError, "lr must be a positive number"),
    ({"lr": float("nan")}, ValueError, "lr must be a positive number"),
    ({"steps": 0}, ValueError, "steps must be a positive integer"),
    ({"steps": 2.5}, ValueError, "steps must be a positive integer"),
    ({"l1": -1}, ValueError, "l1 must be a number >= 0"),
    ({"threshold": 1.5}, ValueError, "threshold must be a probability"),
])
def test_bad_input(model, batch, change, error, message):
    args = {"x": batch.images[:1], "target_class": 1, "lr": 0.01, "steps": 5}
    args.update(change)
    if isinstance(args["x"], str) and args["x"] == "nan":
        args["x"] = batch.images[:1].copy()
        args["x"][0, 1, 2, 3] = np.nan
    elif isinstance(args["x"], str) and args["x"] == "bright":
        args["x"] = batch.images[:1] + 10.0
    elif isinstance(args["x"], str):
        args["x"] = batch.images[:2]
    with pytest.raises(error, match=message):
        mx.counterfactual(model, args["x"], args["target_class"], lr=args["lr"], steps=args["steps"],
                          l1=change.get("l1", 10.0), threshold=change.get("threshold", 0.9), progress=False)
