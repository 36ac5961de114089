"""The course notebooks (examples/notebooks/) run from top to bottom, offline, each within 90 seconds on a
2-core machine; the time each takes is printed at the end of this module's tests."""
import os
import shutil
import time
from pathlib import Path

import pytest

if os.environ.get("CI"):                        # CI installs the test extra: a missing runner is an error there
    import nbclient
    import nbformat
else:
    nbclient = pytest.importorskip("nbclient", reason="the notebooks run with nbclient (the test extra)")
    nbformat = pytest.importorskip("nbformat", reason="the notebooks run with nbclient (the test extra)")

FOLDER = Path(__file__).resolve().parent.parent / "examples" / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
SEEDS = {"000": ("000_", "001_"), "002": ("002_",), "003": ("003_",), "004": ("004_",)}
TIME_LIMIT = 90                                  # seconds per notebook (issue 15)
SIZE_LIMIT = 40_000                              # bytes per committed notebook: no outputs


@pytest.fixture(scope="module")
def timings(request):
    """Collects {notebook: seconds}; prints them (past pytest's output capture) when the module is done."""
    found = {}
    yield found
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if found and capture is not None:
        with capture.global_and_fixture_disabled():
            print("\ncourse notebooks, run time:")
            for name, seconds in found.items():
                print(f"  {name:<40} {seconds:6.1f} s   (limit {TIME_LIMIT} s)")


def test_the_four_course_notebooks_are_there():
    assert [p.stem[:3] for p in NOTEBOOKS] == ["000", "002", "003", "004"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_time(path, tmp_path, timings):
    """Executed in a copy of the folder, so that what a notebook writes (summit.html) lands in tmp_path."""
    shutil.copy(FOLDER / "course.py", tmp_path)
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=2 * TIME_LIMIT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    timings[path.name] = seconds
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert seconds < TIME_LIMIT, f"{path.name} took {seconds:.0f} s"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_small_and_says_how_to_switch_models(path):
    notebook = nbformat.read(path, as_version=4)
    assert path.stat().st_size < SIZE_LIMIT
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "commit it without outputs"
    assert code[0].source.startswith('MODEL = "shapes"')
    top = notebook.cells[0].source
    assert all(name in top for name in ("vgg16", "resnet50", "inception_v3", "minixai weights fetch"))
    assert all(f"shared/seeds/{prefix}" in top for prefix in SEEDS[path.stem[:3]])
