"""Shared test setup: let test modules import the helpers that sit beside them (``from gradcheck import ...``)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
