"""Issue 11 on the command line: every hostile or malformed file of tests/fixtures/hostile.py, handed to
`minixai weights info|convert`, `explain --weights` or, for images, `explain` and `counterfactual`, gives
one line of error and exit status 1, never a traceback; checked in-process through `main` and in fresh
processes through `python -m minixai.cli`."""
import subprocess
import sys

import pytest

from fixtures import hostile
from minixai.cli import main

ONE_LINE_PREFIX = "minixai: error:"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile_cli")
    return directory, hostile.write_corpus(directory, directory / "pwned")


def commands(case, out):
    """The command lines that read `case`'s file."""
    path = str(case.path)
    if case.reader == "image":
        return [["explain", path, "--out", out], ["counterfactual", path, "--target", "1", "--out", out]]
    lines = [["weights", "info", path], ["weights", "convert", path, "--arch", "shapes", "--out", out + ".npz"]]
    if case.path.suffix in (".pth", ".npz"):
        lines.append(["explain", "shapes:0", "--weights", path, "--out", out])
    return lines


def test_every_file_is_one_line_of_error_in_process(corpus, capsys):
    directory, cases = corpus
    out = str(directory / "figure.png")
    runs, problems = 0, []
    for case in cases:
        for argv in commands(case, out):
            code = main(argv)          # an exception escaping main would fail this test with its traceback
            _, err = capsys.readouterr()
            runs += 1
            if code != 1 or not err.startswith(ONE_LINE_PREFIX) or err.count("\n") != 1 or "Traceback" in err:
                problems.append(f"{' '.join(argv)} -> exit {code}: {err!r}")
    with capsys.disabled():
        print(f"\n  CLI runs on the hostile corpus: {runs}, problems: {len(problems)}", end="")
    assert problems == []
    assert not (directory / "pwned").exists()
    assert not (directory / "figure.png").exists() and not (directory / "figure.png.npz").exists()


# one file per item of the issue, each run as its own `python -m minixai.cli` process
REAL_PROCESS = ["build_storage_type_zip", "stride0_1e5", "shared_storage_500", "npz_shape_1e12", "zip_bomb_pth",
                "dev_zero_pth", "fifo_pth", "png_30000x30000", "npz_not_npy_member", "png_as_pth", "npz_nan",
                "pth_complex"]


def test_no_traceback_in_a_real_process(corpus):
    directory, cases = corpus
    chosen = [case for case in cases if case.name in REAL_PROCESS]
    assert len(chosen) == len(REAL_PROCESS)
    out = str(directory / "process.png")
    problems = []
    for case in chosen:
        argv = commands(case, out)[0 if case.reader == "image" else (1 if "fifo" in case.name else 0)]
        done = subprocess.run([sys.executable, "-m", "minixai.cli", *argv], capture_output=True, text=True,
                              timeout=120)
        err = done.stderr.strip()
        if done.returncode != 1 or "Traceback" in done.stderr or "\n" in err or not err.startswith(ONE_LINE_PREFIX):
            problems.append(f"{case.name}: exit {done.returncode}: {done.stderr!r}")
    assert problems == []
