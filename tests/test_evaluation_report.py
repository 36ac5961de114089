"""The report of every method against every metric (minixai.evaluation.report) and `minixai evaluate`."""
import numpy as np
import pytest

import minixai as mx
from minixai import evaluation as ev
from minixai import models
from minixai.cli import main
from minixai.evaluation.report import COLUMNS, evaluate


@pytest.fixture(scope="module")
def report():
    batch = mx.data.shapes.generate(6, seed=2)
    return evaluate(models.load("shapes"), batch, methods=("saliency", "gradcam"), batch_size=64, progress=False), batch


def test_every_method_and_control_gets_every_metric(report):
    result, _ = report
    assert list(result.scores) == ["saliency", "gradcam", "random", "edges"]
    for row in result.scores.values():
        assert set(row) == set(COLUMNS) and all(v.shape == (6,) for v in row.values())
    assert result.grid["saliency"].shape == (7, 1, 64, 64) and len(result.layers) == 6
    assert result.cascade["saliency"].shape == (6,) and "+ classifier.2" in result.cascade_table()


def test_the_report_calls_the_metrics_as_documented(report):
    result, batch = report
    model, x, y = models.load("shapes"), batch.images, batch.labels
    a = mx.saliency(model, x, y)
    row = result.scores["saliency"]
    np.testing.assert_allclose(row["deletion"], ev.deletion(model, x, y, a, progress=False).auc, rtol=1e-6)
    np.testing.assert_allclose(row["insertion"], ev.insertion(model, x, y, a, progress=False).auc, rtol=1e-6)
    np.testing.assert_allclose(row["sparseness"], ev.sparseness(a), rtol=1e-6)
    np.testing.assert_allclose(row["pointing"], ev.pointing_game(ev.pixel_map(a), batch.masks))


def test_the_controls_fail_the_sanity_checks_and_the_random_map_localises_by_chance(report):
    result, _ = report
    for control in ("random", "edges"):
        for column in ("random_abs", "random_signed", "logit", "data_abs"):
            np.testing.assert_allclose(result.scores[control][column], 1.0)
    assert result.scores["random"]["mass"].mean() < 0.15                   # the masks cover about 6%


def test_table_legend_and_figure(report, tmp_path):
    result, _ = report
    text, markdown = result.table(), result.table(markdown=True)
    assert text.splitlines()[0].startswith("method") and "gradcam" in text and "edges" in text
    assert markdown.count("\n") == 5 and "| deletion ↓ |" in markdown
    assert "insertion: AUC of p(target)" in result.legend()
    assert mx.viz.save(result.figure(), tmp_path / "report.png").stat().st_size > 10_000


def test_cli_evaluate_prints_the_table_and_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "evaluation.png"
    assert main(["evaluate", "--methods", "gxi", "--images", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 held-out shapes images" in printed and "\ngxi " in printed and out.is_file()


def test_cli_evaluate_refuses_what_it_cannot_do(capsys):
    assert main(["evaluate", "--model", "resnet18"]) == 1
    assert "only --model shapes" in capsys.readouterr().err
    assert main(["evaluate", "--images", "0"]) == 1
    assert main(["evaluate", "--methods", "sal"]) == 1
    assert "unknown method 'sal'; valid: saliency" in capsys.readouterr().err
