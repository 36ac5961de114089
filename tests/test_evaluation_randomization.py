"""The sanity checks (minixai.evaluation.randomization) on the shapes model and on tiny models."""
import copy

import numpy as np
import pytest

import minixai as mx
from minixai import evaluation as ev
from minixai import models
from minixai.evaluation.randomization import parameter_layers


@pytest.fixture(scope="module")
def shapes():
    batch = mx.data.shapes.generate(4, seed=2)
    return models.load("shapes"), batch.images, batch.labels


def test_layers_are_listed_output_first(shapes):
    model, _, _ = shapes
    assert parameter_layers(model) == ["classifier.2", "classifier.0", "features.9", "features.6", "features.3",
                                       "features.0"]
    assert parameter_layers(models.resnet18(weights=None))[:3] == ["fc", "layer4.1.bn2", "layer4.1.conv2"]


def test_the_model_is_left_as_it_was(shapes):
    model, x, y = shapes
    before = copy.deepcopy(model.state_dict())
    ev.randomization(model, x, y, "saliency", progress=False)
    ev.randomization(model, x, y, "gradcam", order="independent", progress=False)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_cascading_randomisation_of_the_gradient(shapes):
    model, x, y = shapes
    result = ev.randomization(model, x, y, "saliency", keep_maps=True, progress=False)
    assert result.layers == parameter_layers(model) and result.similarity.shape == (4, 6)
    assert result.maps.shape == (7, 4, 64, 64)
    np.testing.assert_allclose(result.maps[0], mx.saliency(model, x, y).sum(axis=1), rtol=1e-6)
    # the saliency map of a fully random network is not the trained network's
    assert result.similarity[:, -1].mean() < 0.5 and np.abs(result.signed[:, -1]).mean() < 0.2


def test_the_step_maps_are_the_maps_of_randomised_copies(shapes):
    """Step l of the cascade explains the model whose layers 0..l (output first) hold fresh He/uniform
    weights drawn from `seed`: rebuild that model by hand and compare its map."""
    model, x, y = shapes
    result = ev.randomization(model, x, y, "saliency", seed=3, keep_maps=True, progress=False)
    rng = np.random.default_rng(3)
    manual = copy.deepcopy(model)
    for name in parameter_layers(model):            # drawn once per layer, output first, as documented
        layer = manual[name]
        if name.startswith("features"):
            K, _, R, S = layer.weight.shape
            weight = rng.standard_normal(layer.weight.shape, dtype=np.float32) * np.float32(np.sqrt(2 / (K * R * S)))
            bias = np.zeros_like(layer.bias)
        else:
            bound = np.float32(1 / np.sqrt(layer.in_features))
            weight = (2 * rng.random(layer.weight.shape, dtype=np.float32) - 1) * bound
            bias = (2 * rng.random(layer.bias.shape, dtype=np.float32) - 1) * bound
        layer.weight, layer.bias = weight, bias
        if name == "features.9":                    # the third step of the cascade
            np.testing.assert_allclose(result.maps[3], mx.saliency(manual, x, y).sum(axis=1), rtol=1e-5)


def test_independent_order_randomises_one_layer_at_a_time(shapes):
    model, x, y = shapes
    cascade = ev.randomization(model, x, y, "gradcam", seed=1, keep_maps=True, progress=False)
    single = ev.randomization(model, x, y, "gradcam", order="independent", seed=1, keep_maps=True, progress=False)
    np.testing.assert_allclose(single.maps[1], cascade.maps[1])        # the first step is the same
    assert not np.allclose(single.maps[2], cascade.maps[2])


def test_seed_is_the_only_randomness(shapes):
    model, x, y = shapes
    runs = [ev.randomization(model, x, y, "gxi", seed=s, similarity="ssim", progress=False).similarity
            for s in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_model_independent_controls_fail_the_sanity_checks(shapes):
    model, x, y = shapes
    for control in (ev.edge_map, ev.random_map):
        result = ev.randomization(model, x, y, control, similarity="hog", progress=False)
        np.testing.assert_allclose(result.similarity, 1)
        np.testing.assert_allclose(ev.random_logit(model, x, y, control).similarity, 1)


def test_random_logit_explains_another_class(shapes):
    model, x, y = shapes
    result = ev.random_logit(model, x, y, "saliency", seed=2)
    assert (result.classes != y).all() and ((0 <= result.classes) & (result.classes < 5)).all()
    expected = ev.similarity(mx.saliency(model, x, y).sum(axis=1), mx.saliency(model, x, result.classes).sum(axis=1),
                             "ssim")
    np.testing.assert_allclose(result.signed, expected)


def test_data_randomisation_is_a_one_liner_on_the_shapes_model(shapes):
    model, x, y = shapes
    result = ev.data_randomization(model, x, y, "saliency")
    random_model = models.shapes(weights=models.SHAPES_WEIGHTS.with_name("shapes_permuted.npz"))
    expected = ev.similarity(np.abs(mx.saliency(model, x, y).sum(1)), np.abs(mx.saliency(random_model, x, y).sum(1)))
    np.testing.assert_allclose(result.similarity, expected)


def test_the_permuted_label_model_learned_nothing_that_generalises():
    model = models.shapes(weights=models.SHAPES_WEIGHTS.with_name("shapes_permuted.npz"))
    batch = mx.data.shapes.generate(200, seed=2)
    accuracy = (model(batch.images).argmax(axis=1) == batch.labels).mean()
    assert accuracy < 0.3                                   # chance is 0.2 (the trained model: 0.988)


def test_batch_norms_are_reset_and_only_the_chosen_layers_change():
    model = models.resnet18(weights=None, seed=0, num_classes=4)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    result = ev.randomization(model, x, 1, "saliency", layers=["fc", "layer4.1.bn2"], keep_maps=True, progress=False)
    assert result.layers == ["fc", "layer4.1.bn2"]
    # a freshly initialised resnet's batch norms are already at their reset values: that step changes nothing
    np.testing.assert_allclose(result.maps[2], result.maps[1], rtol=1e-5)
    assert not np.allclose(result.maps[1], result.maps[0])


def test_bad_randomisation_input_is_named(shapes):
    model, x, y = shapes
    with pytest.raises(ValueError, match="unknown order 'bottom_up'; valid: cascading, independent"):
        ev.randomization(model, x, y, "saliency", order="bottom_up")
    with pytest.raises(ValueError, match="unknown similarity 'pearson'; valid: spearman, ssim, hog"):
        ev.randomization(model, x, y, "saliency", similarity="pearson")
    with pytest.raises(ValueError, match="unknown method 'Saliency'; valid: saliency, gxi"):
        ev.randomization(model, x, y, "Saliency")
    with pytest.raises(ValueError, match="layers must be names of layers with weights; valid: classifier.2"):
        ev.randomization(model, x, y, "saliency", layers=["features.1"])
    with pytest.raises(ValueError, match="only the shapes model ships a twin"):
        ev.data_randomization(models.resnet18(weights=None), np.zeros((1, 3, 32, 32), np.float32), 0, "saliency")
