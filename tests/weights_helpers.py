"""Shared by the weights tests (tests/test_weights.py, tests/test_weights_pth.py): the fixture directory,
torch's own values for its tensors, and a pickle that runs a command when loaded."""

import os
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = dict(np.load(FIXTURES / "tiny_expected.npz"))


class Touch:
    """Unpickling this runs `touch <marker>` through os.system: what a hostile checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)
