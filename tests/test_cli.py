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


# ---- what the command reports and writes (issue 11) --------------------------------------------------
def test_out_without_a_suffix_reports_the_file_really_written(capsys, tmp_path):
    code, out, _ = run(capsys, "explain", "shapes:1", "--method", "saliency", "--out", str(tmp_path / "a"), "--json")
    assert code == 0
    assert json.loads(out)["figure"] == str(tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 10_000 and not (tmp_path / "a").exists()


def test_out_with_a_suffix_matplotlib_cannot_write(capsys, tmp_path):
    code, _, err = run(capsys, "explain", "shapes:1", "--method", "saliency", "--out", str(tmp_path / "a.xyz"))
    assert code == 1 and "unknown figure format '.xyz'; valid: " in err and "png" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def shapes_pth(path, state):
    """The shapes model's weights as a torch-style zip checkpoint, written without torch."""
    from fixtures import craft_pth as craft
    obj = {key: craft.tensor(craft.storage(str(i), "FloatStorage", value.size), 0, value.shape,
                             [int(s) // 4 for s in value.strides])
           for i, (key, value) in enumerate(state.items())}
    storages = {str(i): np.ascontiguousarray(value, "<f4").tobytes() for i, value in enumerate(state.values())}
    return craft.write_zip(path, obj, storages)


def test_weights_convert_checks_the_architecture_before_writing(capsys, tmp_path):
    from minixai import models
    state = {k: np.ascontiguousarray(v) for k, v in models.load("shapes").state_dict().items()}
    good = shapes_pth(tmp_path / "shapes.pth", state)
    code, out, _ = run(capsys, "weights", "convert", str(good), "--arch", "shapes", "--out", str(tmp_path / "s"))
    assert code == 0 and out.strip() == f"wrote {tmp_path / 's.npz'}"
    reloaded = models.shapes(weights=tmp_path / "s.npz").state_dict()
    assert all(np.array_equal(reloaded[k], v) for k, v in state.items())

    code, _, err = run(capsys, "weights", "convert", str(good), "--arch", "nope")
    assert code == 1 and "unknown architecture 'nope'; valid: alexnet, vgg11" in err
    wrong = shapes_pth(tmp_path / "wrong.pth", {**state, "classifier.2.weight": np.zeros((7, 64), np.float32)})
    code, _, err = run(capsys, "weights", "convert", str(wrong), "--arch", "shapes")
    assert code == 1 and "does not fit shapes: wrong shapes: classifier.2.weight: shapes needs (5, 64)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "shapes.pth", "wrong.pth"]   # nothing else


def test_nan_weights_are_blamed_on_the_file_and_key_not_on_x(capsys, tmp_path):
    from minixai import models
    state = dict(models.load("shapes").state_dict())
    key = next(iter(state))
    state[key] = state[key].copy()
    state[key].flat[3] = np.nan
    np.savez(tmp_path / "nan.npz", **state)
    code, _, err = run(capsys, "explain", "shapes:0", "--weights", str(tmp_path / "nan.npz"),
                       "--out", str(tmp_path / "f.png"))
    assert code == 1 and f"nan.npz: entry '{key}'" in err and "1 NaN" in err and "x contains" not in err


def test_a_png_given_as_weights_is_named_as_such(capsys, tmp_path, shape_png):
    code, _, err = run(capsys, "weights", "info", str(shape_png))
    assert code == 1 and "not a PyTorch checkpoint" in err and "looks like a PNG image" in err
