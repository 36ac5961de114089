"""Data sets that ship with minixai (generated, nothing is downloaded)."""
from . import shapes

__all__ = ["shapes"]
