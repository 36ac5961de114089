"""Shared by the weights tests (tests/test_weights.py, tests/test_weights_pth.py, tests/test_images.py): the
fixture directory, torch's own values for its tensors, a pickle that runs a command when loaded, and
the odd paths (FIFO, /dev/zero, directory) that readers must refuse without blocking."""

import contextlib
import os
import signal
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = dict(np.load(FIXTURES / "tiny_expected.npz"))


class Touch:
    """Unpickling this runs `touch <marker>` through os.system: what a hostile checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@contextlib.contextmanager
def within(seconds):
    """Fail with TimeoutError instead of hanging (a FIFO read blocks forever): SIGALRM, Unix only."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def odd_path(kind, directory, suffix):
    """A path that is not a regular file: "fifo", "dev_zero" (a symlink to /dev/zero) or "directory"."""
    path = directory / f"{kind}{suffix}"
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this system")
        os.mkfifo(path)
    elif kind == "dev_zero":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero on this system")
        os.symlink("/dev/zero", path)
    else:
        path.mkdir()
    return path


ODD_KINDS = {"fifo": "a FIFO", "dev_zero": "character device", "directory": "directory"}
