"""Shared test setup: let test modules import the helpers that sit beside them (``from gradcheck import ...``),
and a fixture for the modules that run many tiny networks."""
import pathlib
import sys

import pytest

import minixai as mx

sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture(scope="module")
def numpy_backend():
    """The vectorised NumPy kernels for a whole module (``pytest.mark.usefixtures("numpy_backend")``)."""
    with mx.use_backend("numpy"):
        yield
