"""Which explanation can I trust? Metrics that test explanations, batched through the engine.

    r = deletion(model, x, target, a, steps=20, baseline="black")     # .curve (N, steps + 1), .auc (N,)
    r = insertion(model, x, target, a, steps=20, baseline="blur")
    r = pixel_flipping(model, x, target, a, order="morf")             # the target's logit
    r = road(model, x, target, a, order="morf")                       # noisy linear imputation
    infidelity(model, x, target, a), max_sensitivity(model, x, target, "saliency")
    r = randomization(model, x, target, "saliency", order="cascading", similarity="spearman")
                                                                      # .layers (output first), .similarity (N, L)
    random_logit(...), data_randomization(...)                        # the other sanity checks
    sparseness(a), complexity(a)                                      # (N,)
    pointing_game(maps, masks), relevance_mass, relevance_rank, top_k_intersection

One concept per module: faithfulness (deletion, insertion, pixel flipping), road (with imputation),
robustness (infidelity, max-sensitivity), randomization (the sanity checks) with similarity, complexity,
localisation; maps turns attributions into the per-pixel maps they all read, perturbed runs the perturbed
copies through the model in batches, explainers holds the controls (a random map and an edge detector),
report (and report_figure) the table and figure of `minixai evaluate`. NumPy arrays on the CPU.
"""
from .complexity import complexity, sparseness
from .explainers import CONTROLS, edge_map, random_map
from .faithfulness import Curve, deletion, insertion, pixel_flipping
from .localisation import pointing_game, relevance_mass, relevance_rank, top_k_intersection
from .maps import pixel_map, pixel_order
from .randomization import Agreement, Randomization, data_randomization, random_logit, randomization
from .road import RoadCurve, road
from .robustness import infidelity, max_sensitivity, patch_perturbations
from .similarity import similarity

__all__ = ["deletion", "insertion", "pixel_flipping", "road", "Curve", "RoadCurve", "infidelity", "max_sensitivity",
           "patch_perturbations", "randomization", "random_logit", "data_randomization", "Randomization", "Agreement",
           "similarity", "sparseness", "complexity", "pointing_game", "relevance_mass", "relevance_rank",
           "top_k_intersection", "pixel_map", "pixel_order", "random_map", "edge_map", "CONTROLS"]
