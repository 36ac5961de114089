"""The controls and the method lookup of the metrics (minixai.evaluation.explainers)."""
import numpy as np
import pytest

import minixai as mx
from minixai import evaluation as ev
from minixai.evaluation.explainers import explainer


def test_edge_map_finds_a_step_edge_and_ignores_model_and_target():
    x = np.zeros((1, 3, 8, 8))
    x[:, :, :, 4:] = 1.0                                    # a vertical edge between columns 3 and 4
    m = ev.edge_map(None, x, None)
    assert m.shape == (1, 8, 8) and set(np.argmax(m[0], axis=1)) <= {3, 4}
    np.testing.assert_array_equal(m[0, :, :2], 0)           # flat regions have no gradient


def test_random_map_is_seeded_uniform_noise():
    x = np.zeros((2, 3, 16, 16), np.float32)
    m = ev.random_map(None, x, None)
    assert m.shape == (2, 16, 16) and m.dtype == np.float32 and 0 <= m.min() and m.max() < 1
    np.testing.assert_array_equal(m, ev.random_map(None, x, None))
    assert not np.array_equal(m, ev.random_map(None, x, None, seed=1))


def test_explainer_looks_up_names_and_passes_options():
    explain, name = explainer("smoothgrad", {"n": 2})
    assert name == "smoothgrad" and explain.func is mx.smoothgrad and explain.keywords == {"n": 2, "progress": False}
    explain, name = explainer(ev.edge_map)
    assert name is None and explain.func is ev.edge_map
    with pytest.raises(ValueError, match="unknown method 'edges'; valid: saliency, .* or a callable"):
        explainer("edges")
