"""The `minixai counterfactual` and `minixai filters` subcommands: happy paths on the shapes model, and errors."""
import json

import pytest

from minixai.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_counterfactual_writes_the_comparison_figure(capsys, tmp_path):
    out_png = tmp_path / "cf.png"
    code, out, _ = run(capsys, "counterfactual", "shapes:3", "--target", "star", "--lr", "0.1", "--steps", "200",
                       "--out", str(out_png))
    assert code == 0 and out_png.stat().st_size > 10_000
    assert "-> star (shapes, lr 0.1)" in out and "success after" in out and "L1 distance" in out


def test_counterfactual_json(capsys, tmp_path):
    code, out, _ = run(capsys, "counterfactual", "shapes:0", "--target", "2", "--out", str(tmp_path / "cf.png"),
                       "--json")
    assert code == 0
    report = json.loads(out)
    assert report["target"] == 2 and report["target_name"] == "triangle" and report["success"] is True
    assert report["probability"] >= 0.9 and 0 <= report["steps"] <= 500 and report["l1_distance"] >= 0


def test_filters_writes_the_grid(capsys, tmp_path):
    out_png = tmp_path / "grid.png"
    code, out, _ = run(capsys, "filters", "--model", "shapes", "--layer", "features.6", "--count", "16",
                       "--steps", "5", "--out", str(out_png))
    assert code == 0 and out_png.stat().st_size > 20_000
    assert "16 filters of features.6 (shapes), 5 steps" in out and "grid written to" in out


def test_filters_json(capsys, tmp_path):
    code, out, _ = run(capsys, "filters", "--layer", "features.3", "--count", "4", "--steps", "3",
                       "--out", str(tmp_path / "g.png"), "--json")
    assert code == 0
    report = json.loads(out)
    assert [f["filter"] for f in report["filters"]] == [0, 1, 2, 3] and report["layer"] == "features.3"


@pytest.mark.parametrize("argv, message", [
    (["counterfactual", "shapes:0", "--target", "hexagon"], "unknown class 'hexagon'"),
    (["counterfactual", "shapes:0", "--target", "7"], "out of range"),
    (["counterfactual", "shapes:0", "--target", "1", "--lr", "0"], "lr must be a positive number"),
    (["counterfactual", "shapes:0", "--target", "1", "--method", "magic"], "unknown method 'magic'"),
    (["counterfactual", "no/such/file.png", "--target", "1"], "image not found"),
    (["filters", "--layer", "features.99"], "layer 'features.99' not found; valid: features, pool"),
    (["filters", "--layer", "features.0", "--count", "64"], "filter 16 is out of range"),
    (["filters", "--layer", "features.6", "--steps", "0"], "steps must be a positive integer"),
    (["filters", "--layer", "features.6", "--count", "0"], "--count must be a positive integer"),
])
def test_errors_are_one_line(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, "--out", str(tmp_path / "f.png"))
    assert code == 1
    assert message in err and err.startswith("minixai: error:") and err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["counterfactual", "shapes:0", "--target", "2", "--steps", "5"],
    ["filters", "--layer", "features.3", "--count", "2", "--steps", "2"],
])
def test_out_without_a_suffix_reports_the_file_really_written(capsys, tmp_path, argv):
    code, out, _ = run(capsys, *argv, "--out", str(tmp_path / "a"), "--json")
    assert code == 0 and json.loads(out)["figure"] == str(tmp_path / "a.png")
    assert (tmp_path / "a.png").is_file() and not (tmp_path / "a").exists()
    code, out, _ = run(capsys, *argv, "--out", str(tmp_path / "b"))
    assert code == 0 and f"written to {tmp_path / 'b.png'}" in out and (tmp_path / "b.png").is_file()


def test_an_image_claiming_900_megapixels_is_one_line_of_error(capsys, tmp_path):
    from fixtures import hostile
    bomb = next(case for case in hostile.images(tmp_path) if case.name == "png_30000x30000")
    assert bomb.path.stat().st_size < 100
    code, _, err = run(capsys, "counterfactual", str(bomb.path), "--target", "1", "--out", str(tmp_path / "c.png"))
    assert code == 1 and err.startswith("minixai: error:") and err.count("\n") == 1
    assert "900000000 pixels" in err and "decompression bomb" in err
