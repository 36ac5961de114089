"""Issue 11: hostile files, bad images and odd paths are refused cleanly, and nothing leaks into the next load.

The corpus (tests/fixtures/hostile.py) is written once per module. Every file must be refused with a
WeightsFileError/ValueError whose message names the file and the culprit, quickly, without running
anything (a payload would create the marker file) and without poisoning a later load.
"""

import collections
import json
import os
import pickle
import re
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import minixai as mx
from fixtures import hostile
from minixai import weights as W
from minixai.weights import standins
from weights_helpers import EXPECTED, FIXTURES

READERS = {"pth": W.load_pth, "npz": W.load_npz, "any": W.load, "image": mx.images.load}
GROUPS = ["code_execution", "build_poisoning", "amplification", "not_regular", "malformed", "images"]
PEAK_LIMIT_MB = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(marker, {group: [Case]}) with every file of the corpus written."""
    directory = tmp_path_factory.mktemp("hostile")
    marker = directory / "pwned"
    groups = {
        "code_execution": hostile.code_execution(directory, marker),
        "build_poisoning": hostile.build_poisoning(directory, marker),
        "amplification": hostile.amplification(directory),
        "not_regular": hostile.not_regular(directory),
        "malformed": hostile.malformed(directory),
        "images": hostile.images(directory),
    }
    return marker, groups


def refusal_problem(case, max_seconds=5.0):
    """None if reading `case` is refused clearly and quickly; otherwise what went wrong."""
    start = time.perf_counter()
    try:
        READERS[case.reader](case.path)
    except ValueError as err:
        message = str(err)
        if str(case.path) not in message:
            return f"{case.name}: message does not name the file: {message}"
        if not re.search(case.match, message):
            return f"{case.name}: expected /{case.match}/ in: {message}"
        if "\n" in message:
            return f"{case.name}: message is not one line: {message!r}"
        if case.reader != "image" and not isinstance(err, W.WeightsFileError):
            return f"{case.name}: {type(err).__name__} is not a WeightsFileError"
    except Exception as err:  # noqa: BLE001 -- anything else is exactly what this test looks for
        return f"{case.name}: {type(err).__name__} instead of a clear error: {err}"
    else:
        return f"{case.name}: was loaded"
    elapsed = time.perf_counter() - start
    return f"{case.name}: took {elapsed:.1f} s" if elapsed > max_seconds else None


@pytest.mark.parametrize("group", GROUPS)
def test_every_file_is_refused_clearly(corpus, group):
    marker, groups = corpus
    problems = [p for case in groups[group] if (p := refusal_problem(case))]
    assert problems == []
    assert not marker.exists()


def test_a_refused_file_leaves_nothing_behind_for_the_next_load(corpus):
    """The poisoning test: every hostile file, then legitimate checkpoints, in one process; bit-exact."""
    marker, groups = corpus
    floats = standins.STORAGE_TYPES["FloatStorage"]
    defaults = standins.rebuild_tensor_v2.__defaults__
    for cases in groups.values():
        for case in cases:
            with pytest.raises(ValueError):
                READERS[case.reader](case.path)
    assert not marker.exists()
    assert floats.name == "FloatStorage" and floats.dtype == np.dtype("<f4")
    assert standins.rebuild_tensor_v2.__defaults__ == defaults
    assert not vars(standins.rebuild_tensor) and not vars(standins.rebuild_tensor_v2)
    for name in ("tiny_zip.pth", "tiny_legacy.pth", "tiny_wrapped.pth"):
        state = W.load_pth(FIXTURES / name)
        assert list(state) == list(EXPECTED), name
        for key, want in EXPECTED.items():
            assert state[key].dtype == want.dtype, (name, key)
            assert state[key].tobytes() == want.tobytes(), (name, key)    # bit-exact


def test_the_poisoning_files_really_poison_a_permissive_reader(corpus):
    """Control: the reader of issue 11 (C unpickler, BUILD allowed, shared mutable stand-ins) is poisoned
    by build_storage_type_zip: after the refusal its FloatStorage stand-in says BFloat16Storage."""
    _, groups = corpus
    case = next(c for c in groups["build_poisoning"] if c.name == "build_storage_type_zip")

    class StandIn:
        name = "FloatStorage"

    shared = StandIn()

    class Permissive(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch", "FloatStorage"):
                return shared
            raise pickle.UnpicklingError(f"refused {module}.{name}")

    with zipfile.ZipFile(case.path) as archive, pytest.raises(pickle.UnpicklingError, match="os.system"):
        Permissive(archive.open("archive/data.pkl")).load()
    assert shared.name == "BFloat16Storage"


def test_the_payloads_are_live(corpus, tmp_path):
    """Control: unpickled without restriction, a payload of the corpus does run its command."""
    marker, groups = corpus
    case = next(c for c in groups["code_execution"] if c.name == "eval_zip")
    with zipfile.ZipFile(case.path) as archive:
        pickle.loads(archive.read("archive/data.pkl"))
    assert marker.exists()
    marker.unlink()


def test_a_member_is_read_only_as_far_as_its_header_declares(tmp_path):
    """A member declaring 96 bytes whose deflate stream would go on to 1 GiB: 96 bytes are read."""
    path = hostile.understated_npz(tmp_path / "understated.npz")
    start = time.perf_counter()
    state, _ = W.load_npz(path)
    assert time.perf_counter() - start < 2
    np.testing.assert_array_equal(state["w"], np.zeros(4, np.float32))


PEAK_PROBE = r"""
import json, sys, time
from pathlib import Path
import minixai as mx
from minixai import weights as W
readers = {"pth": W.load_pth, "npz": W.load_npz, "any": W.load, "image": mx.images.load}
def vm(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
before = vm("VmRSS")
start = time.perf_counter()
try:
    readers[sys.argv[1]](sys.argv[2])
    outcome = "loaded"
except ValueError as err:
    outcome = type(err).__name__
print(json.dumps({"peak_mb": vm("VmHWM"), "before_mb": before, "seconds": time.perf_counter() - start,
                  "outcome": outcome}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_peak_memory_of_the_worst_refusals(corpus, capsys):
    """Each amplification file and image bomb in a fresh process: peak resident memory under 600 MB."""
    _, groups = corpus
    heavy = groups["amplification"] + [c for c in groups["images"] if "x" in c.name]
    rows = {}
    for case in heavy:
        done = subprocess.run([sys.executable, "-c", PEAK_PROBE, case.reader, str(case.path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        rows[case.name] = json.loads(done.stdout)
    with capsys.disabled():
        for name, row in rows.items():
            print(f"\n  {name:<28} peak {row['peak_mb']:6.0f} MB (at start {row['before_mb']:4.0f} MB), "
                  f"{row['seconds']:.2f} s, {row['outcome']}", end="")
    assert all(row["outcome"] != "loaded" for row in rows.values())
    assert max(row["peak_mb"] for row in rows.values()) < PEAK_LIMIT_MB, rows


def test_corpus_counts(corpus, capsys):
    """The numbers of the closing note: files tried, per group, and that all are distinct files."""
    _, groups = corpus
    counts = collections.Counter({group: len(cases) for group, cases in groups.items()})
    paths = [case.path for cases in groups.values() for case in cases]
    with capsys.disabled():
        print(f"\n  hostile/malformed files: {sum(counts.values())} {dict(counts)}", end="")
    assert len(set(paths)) == len(paths) and sum(counts.values()) >= 90
