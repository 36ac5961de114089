"""model.summary(): shapes, parameters and multiply-adds against the numbers torchvision publishes."""
import numpy as np
import pytest

from minixai import models
from minixai.cli import main
from minixai.layers import Conv2d, Flatten, Linear, ReLU, Sequential
from minixai.model import Model

# torchvision's model cards (IMAGENET1K_V1 weights): parameters and "GFLOPS" (multiply-adds of Conv2d and
# Linear, per 224 x 224 image; 299 x 299 for Inception v3)
PUBLISHED = {"resnet50": (25_557_032, 4.09), "vgg16": (138_357_544, 15.47), "inception_v3": (27_161_264, 5.71),
             "resnet18": (11_689_512, 1.81), "alexnet": (61_100_840, 0.71)}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_totals_match_torchvision(arch):
    s = models.load(arch, weights=None).summary()
    params, gmacs = PUBLISHED[arch]
    assert s.total_params == params
    assert round(s.total_madds / 1e9, 2) == gmacs


def small_model():
    root = Sequential(Sequential(Conv2d(3, 4, 3, stride=2, padding=1), ReLU()), Flatten(), Linear(4 * 4 * 4, 5),
                      names=["features", "flatten", "fc"])
    return Model(root, arch="small")


def test_every_row_by_hand():
    s = small_model().summary((2, 3, 8, 8))
    assert [(r.name, r.kind, r.depth, r.shape, r.params, r.madds) for r in s.rows] == [
        ("features", "Sequential", 0, (2, 4, 4, 4), 4 * 3 * 9 + 4, 64 * 27),
        ("features.0", "Conv2d", 1, (2, 4, 4, 4), 4 * 3 * 9 + 4, 64 * 27),   # 64 outputs, 27 products each
        ("features.1", "ReLU", 1, (2, 4, 4, 4), 0, 0),
        ("flatten", "Flatten", 0, (2, 64), 0, 0),
        ("fc", "Linear", 0, (2, 5), 64 * 5 + 5, 5 * 64)]
    assert s.total_params == 112 + 325 and s.total_madds == 64 * 27 + 320     # containers counted once


def test_the_table_lists_layers_and_totals():
    s = models.load("shapes").summary()
    text = str(s)
    assert text.splitlines()[0] == "shapes: input (1, 3, 64, 64)"
    for r in s.rows:
        assert f"{r.name}" in text
    assert "(1, 16, 64, 64)" in text and f"parameters: {s.total_params:,}" in text
    assert repr(s) == text


def test_depth_hides_deeper_rows_but_keeps_the_totals():
    model = models.resnet18(seed=0)
    full, top = model.summary(), model.summary(depth=0)
    text = str(top)
    assert "layer1.0.conv1" not in text and "layer1 " in text
    assert full.total_params == top.total_params and full.total_madds == top.total_madds
    assert "not listed" in text


def test_inception_aux_head_is_listed_but_did_not_run():
    s = models.inception_v3(weights=None).summary()
    aux = [r for r in s.rows if r.name.startswith("AuxLogits.")]       # the head skipped inside the block
    assert aux and all(r.shape is None and r.madds == 0 for r in aux)
    assert sum(r.params for r in aux if not r.container) > 0
    assert "not run" in str(s)


def test_another_input_size_changes_shapes_and_madds_not_params():
    model = models.load("shapes")
    a, b = model.summary(), model.summary((3, 128, 128))
    assert a.total_params == b.total_params and b.total_madds > 3.9 * a.total_madds
    assert b.rows[1].shape == (1, 16, 128, 128)


def test_bad_arguments():
    model = models.load("shapes")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\)"):
        model.summary((64, 64))
    with pytest.raises(ValueError, match="depth"):
        model.summary(depth=-1)
    with pytest.raises(ValueError, match="1 channels, the model expects 3"):
        model.summary((1, 1, 64, 64))
    with pytest.raises(ValueError, match="input_shape is needed"):
        model.submodel(start="features.2").summary()
    assert np.isfinite(model.summary().total_madds)


def test_cli_summary(capsys):
    assert main(["summary", "--model", "resnet50", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 25,557,032" in out and "layer4.2" in out and "layer4.2.conv1" not in out
    assert main(["summary", "--model", "shapes", "--input-size", "96x128"]) == 0
    assert "(1, 16, 96, 128)" in capsys.readouterr().out
    assert main(["summary", "--model", "resnet51"]) == 1
    assert "valid: alexnet" in capsys.readouterr().err
    assert main(["summary", "--input-size", "big"]) == 1
