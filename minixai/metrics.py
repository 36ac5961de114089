"""Localisation scores against ground-truth masks: moved to minixai.evaluation (localisation, maps).
This module keeps the old import path: ``from minixai.metrics import pixel_map, pointing_game, ...``."""
from .evaluation.localisation import pointing_game, relevance_mass, relevance_rank, top_k_intersection
from .evaluation.maps import SIGNED, pixel_map

__all__ = ["SIGNED", "pixel_map", "pointing_game", "relevance_mass", "relevance_rank", "top_k_intersection"]
