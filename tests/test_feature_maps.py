"""mx.viz.feature_maps: one layer's activation maps for one image, as a grid."""
import matplotlib
import numpy as np
import pytest

import minixai as mx
from minixai import models
from minixai.data import shapes

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def case():
    return models.load("shapes"), shapes.generate(1, seed=4).images


def test_each_cell_is_one_channel_of_the_layer(case):
    model, x = case
    fig = mx.viz.feature_maps(model, x, "features.4", channels=[3, 0, 17])
    maps = model.activations(x, ["features.4"])["features.4"][0]
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(drawn) == 3
    for k, image in zip([3, 0, 17], drawn):
        np.testing.assert_array_equal(np.asarray(image), maps[k])
    assert [ax.get_title().split()[0] for ax in fig.axes if ax.images] == ["3", "0", "17"]
    matplotlib.pyplot.close(fig)


def test_default_is_the_first_64_or_all(case):
    model, x = case
    fig = mx.viz.feature_maps(model, x, "features.1")                 # 16 channels
    assert sum(1 for ax in fig.axes if ax.images) == 16
    matplotlib.pyplot.close(fig)
    fig = mx.viz.feature_maps(model, x, "features.9", channels=range(64))
    assert sum(1 for ax in fig.axes if ax.images) == 64
    matplotlib.pyplot.close(fig)


def test_bad_arguments(case):
    model, x = case
    with pytest.raises(ValueError, match="channel 16 is out of range.*valid: 0..15"):
        mx.viz.feature_maps(model, x, "features.1", channels=range(17))
    with pytest.raises(ValueError, match="one image"):
        mx.viz.feature_maps(model, np.concatenate([x, x]), "features.1")
    with pytest.raises(ValueError, match="not feature maps"):
        mx.viz.feature_maps(model, x, "classifier.0")
    with pytest.raises(ValueError, match="layer 'features.99' not found"):
        mx.viz.feature_maps(model, x, "features.99")
    with pytest.raises(TypeError, match="channels must be"):
        mx.viz.feature_maps(model, x, "features.1", channels=[0.5])
