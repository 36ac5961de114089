"""The `minixai` command: every subcommand's happy path on the shapes model, and each error case."""
import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from minixai.cli import main
from minixai.data import shapes


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def shape_png(tmp_path):
    path = tmp_path / "star.png"
    pixels = shapes.generate(5, seed=7).pixels[4]
    Image.fromarray((pixels * 255).astype(np.uint8)).save(path)
    return path


def test_demo_writes_figures(capsys, tmp_path):
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path / "demo"), "-n", "2")
    assert code == 0
    figures = sorted((tmp_path / "demo").glob("demo_*.png"))
    assert len(figures) == 2 and all(f.stat().st_size > 20_000 for f in figures)
    assert "wrote 2 figures to" in out and "predicted" in out


def test_explain_shapes_image_json(capsys, tmp_path):
    out_png = tmp_path / "fig.png"
    code, out, _ = run(capsys, "explain", "shapes:3", "--method", "saliency,gradcam", "--out", str(out_png),
                       "--json")
    assert code == 0 and out_png.stat().st_size > 10_000
    report = json.loads(out)
    assert len(report["top5"]) == 5 and report["figure"] == str(out_png)
    probabilities = [row["probability"] for row in report["top5"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(1, abs=1e-5)
    assert {row["name"] for row in report["top5"]} == set(shapes.CLASS_NAMES)


def test_explain_image_file_by_class_name(capsys, tmp_path, shape_png):
    code, out, _ = run(capsys, "explain", str(shape_png), "--target", "circle", "--method", "ig",
                       "--out", str(tmp_path / "f.png"))
    assert code == 0
    assert "top-5 predictions" in out and "explained class 0" in out


def test_weights_list_and_info(capsys):
    code, out, _ = run(capsys, "weights", "list")
    assert code == 0 and "resnet50" in out and "download.pytorch.org" in out
    from minixai.models import SHAPES_WEIGHTS
    code, out, _ = run(capsys, "weights", "info", str(SHAPES_WEIGHTS))
    assert code == 0 and "shapes" in out


@pytest.mark.parametrize("argv, message", [
    (["explain", "no/such/file.png"], "image not found: no/such/file.png"),
    (["explain", "shapes:0", "--model", "lenet"], "unknown model 'lenet'"),
    (["explain", "shapes:0", "--method", "saliency,magic"], "unknown method 'magic'"),
    (["explain", "shapes:0", "--target", "hexagon"], "unknown class 'hexagon'"),
    (["explain", "shapes:0", "--target", "7"], "out of range"),
    (["explain", "shapes:x"], "expected shapes:N"),
    (["weights", "info", "missing.npz"], "missing.npz"),
])
def test_errors_are_one_line(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, *(["--out", str(tmp_path / "f.png")] if argv[0] == "explain" else []))
    assert code == 1
    assert message in err and err.startswith("minixai: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_unreadable_image(capsys, tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    code, _, err = run(capsys, "explain", str(bad), "--out", str(tmp_path / "f.png"))
    assert code == 1 and "cannot read" in err


def test_weights_not_downloaded(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIXAI_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, _, err = run(capsys, "explain", "shapes:0", "--model", "resnet18", "--out", str(tmp_path / "f.png"))
    assert code == 1
    assert "resnet18-f37072fd.pth" in err and str(tmp_path / "cache") in err


def test_usage_error_exit_code(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explain"])
    assert exit_info.value.code == 2


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "minixai.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "explain" in result.stdout and "demo" in result.stdout
