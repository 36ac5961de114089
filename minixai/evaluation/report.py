"""One report: every method against every metric, with two controls, on images with ground-truth masks.

    report = evaluate(model, batch, methods=DEFAULT_METHODS)     # batch: images, labels, masks
    print(report.table())                                        # mean over the images, one row per method
    viz.save(report.figure(), "evaluation.png")                  # deletion/insertion curves, randomisation grid

The explained class is each image's true label. The controls are `explainers.random_map` (chance) and
`explainers.edge_map` (an image-only edge detector, which no model-dependent test should pass).
"""
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .complexity import complexity, sparseness
from .explainers import CONTROLS, explainer
from .faithfulness import deletion, insertion, pixel_flipping
from .localisation import pointing_game, relevance_mass, relevance_rank, top_k_intersection
from .maps import pixel_map
from .randomization import data_randomization, random_logit, randomization
from .road import road
from .robustness import infidelity, max_sensitivity

DEFAULT_METHODS = ("saliency", "gxi", "smoothgrad", "ig", "guided", "deconvnet", "gradcam", "guided_gradcam",
                   "lrp", "deeplift")
# SmoothGrad and IG call the network 20 times per image here (not 50, their defaults): the sanity checks and
# max-sensitivity explain every image 15 times more, and this keeps a 200-image report near ten minutes.
OPTIONS = {"smoothgrad": {"n": 20, "batch_size": 1000}, "ig": {"steps": 20, "batch_size": 1000}}
# column -> (header, which way is better: "low" / "high", what it means)
COLUMNS = {
    "deletion": ("deletion", "low", "AUC of p(target) while the top pixels turn black (20 steps)"),
    "insertion": ("insertion", "high", "AUC of p(target) while the top pixels return into a blurred copy"),
    "pf_morf": ("PF MoRF", "low", "AUC of the target logit, most relevant pixels flipped to black first"),
    "pf_lerf": ("PF LeRF", "high", "the same, least relevant first"),
    "road_morf": ("ROAD MoRF", "low", "AUC of the accuracy, most relevant pixels imputed first"),
    "road_lerf": ("ROAD LeRF", "high", "the same, least relevant first"),
    "infidelity": ("infid.", "low", "infidelity, Gaussian perturbations (sigma 0.1, 20 draws), best scale"),
    "sensitivity": ("max-sens.", "low", "max-sensitivity (r 0.2, 5 draws), relative to ||a||"),
    "sparseness": ("Gini", "high", "sparseness (Gini index of the pixel map)"),
    "complexity": ("entropy", "low", "complexity (entropy of the pixel map)"),
    "pointing": ("pointing", "high", "pointing game on the object's mask"),
    "mass": ("mass", "high", "relevance mass on the mask"),
    "rank": ("rank", "high", "relevance rank accuracy on the mask"),
    "top_k": ("top-100", "high", "share of the 100 most relevant pixels on the mask"),
    "random_abs": ("rand |m|", "low", "Spearman with the map after cascading randomisation of all layers, |m|"),
    "random_signed": ("rand m", "low", "the same on signed maps"),
    "logit": ("logit SSIM", "low", "SSIM of the maps for the target and a random other class"),
    "data_abs": ("labels |m|", "low", "Spearman with the map of the model trained on permuted labels, |m|"),
    "data_signed": ("labels m", "low", "the same on signed maps"),
}


@dataclass
class Report:
    """scores[method][column] (N,) per image; curves[method]: (deletion, insertion) Curve; grid[method]
    (L + 1, G, H, W) signed maps of the first G images along the cascade; cascade[method]: (L,) mean
    Spearman of |maps| at each step; layers: the cascade, output first; seconds[method]: time taken."""
    scores: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    cascade: dict = field(default_factory=dict)
    layers: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    images: np.ndarray = None

    def means(self):
        """{method: {column: mean over the images (NaN values, e.g. constant maps, left out)}}."""
        return {name: {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in row.items()}
                for name, row in self.scores.items()}

    def table(self, markdown=False):
        """The mean of every metric per method, as text (or a Markdown table)."""
        means = self.means()
        keys = [k for k in COLUMNS if any(k in row for row in means.values())]
        headers = ["method"] + [f"{COLUMNS[k][0]} {'↓' if COLUMNS[k][1] == 'low' else '↑'}" for k in keys]
        rows = [[name] + [_cell(row.get(k, np.nan), k) for k in keys] for name, row in means.items()]
        return _format(headers, rows, markdown)

    def cascade_table(self, markdown=False):
        """Mean Spearman correlation of |map| with the trained model's, after each step of the cascade."""
        headers = ["method"] + [f"+ {name}" for name in self.layers]
        rows = [[name] + [f"{v:.2f}" for v in values] for name, values in self.cascade.items()]
        return _format(headers, rows, markdown)

    def legend(self):
        """One line per column: header, direction, meaning."""
        return "\n".join(f"{COLUMNS[k][0]}: {COLUMNS[k][2]} ({COLUMNS[k][1]}er is better)" for k in COLUMNS
                         if any(k in row for row in self.scores.values()))

    def figure(self):
        from .report_figure import report_figure
        return report_figure(self)


def evaluate(model, batch, methods=DEFAULT_METHODS, controls=True, batch_size=64, grid_images=1,
             random_model=None, seed=0, progress=True):
    """A Report of `methods` (names of mx.METHODS) and the controls on batch.images (N, C, H, W), explaining
    batch.labels, localisation against batch.masks (N, H, W). batch_size: images per forward pass of the
    perturbation metrics; random_model: the model trained on permuted labels (None: the shipped one for the
    shapes model, else the data randomisation column is left out)."""
    x, y, masks = batch.images, np.asarray(batch.labels), batch.masks
    names = list(methods) + (list(CONTROLS) if controls else [])
    if random_model is None and model.arch == "shapes":
        from .randomization import permuted_labels_model
        random_model = permuted_labels_model(model)
    report = Report(images=x[:grid_images])
    for name in tqdm(names, desc="evaluate", disable=not progress):
        start = time.perf_counter()
        method, options = (name, OPTIONS.get(name)) if name not in CONTROLS else (CONTROLS[name], None)
        explain, registered = explainer(method, options)
        a = explain(model, x, y)
        scores = _faithfulness(model, x, y, a, registered, batch_size, seed, report.curves, name)
        scores.update(_complexity_and_localisation(a, registered, masks))
        scores.update(_sanity(model, x, y, method, options, random_model, seed, report, name, grid_images))
        scores["sensitivity"] = max_sensitivity(model, x, y, method, radius=0.2, n=5, options=options, seed=seed,
                                                batch_size=len(x), progress=False)
        report.scores[name] = scores
        report.seconds[name] = time.perf_counter() - start
    return report


def _faithfulness(model, x, y, a, method, batch_size, seed, curves, name):
    common = {"method": method, "batch_size": batch_size, "progress": False}
    removed, inserted = deletion(model, x, y, a, **common), insertion(model, x, y, a, **common)
    curves[name] = (removed, inserted)
    return {"deletion": removed.auc, "insertion": inserted.auc,
            "pf_morf": pixel_flipping(model, x, y, a, steps=10, order="morf", **common).auc,
            "pf_lerf": pixel_flipping(model, x, y, a, steps=10, order="lerf", **common).auc,
            "road_morf": _road_accuracy(model, x, y, a, "morf", seed, common),
            "road_lerf": _road_accuracy(model, x, y, a, "lerf", seed, common),
            "infidelity": infidelity(model, x, y, a, n=20, sigma=0.1, normalize=True, seed=seed,
                                     batch_size=batch_size, progress=False)}


def _road_accuracy(model, x, y, a, order, seed, common):
    result = road(model, x, y, a, percentages=(10, 30, 50, 70, 90), order=order, seed=seed, **common)
    return np.trapezoid(result.correct.astype(np.float64), result.fractions, axis=1)


def _complexity_and_localisation(a, method, masks):
    m = pixel_map(a, method)
    return {"sparseness": sparseness(m), "complexity": complexity(m),
            "pointing": pointing_game(m, masks).astype(np.float64), "mass": relevance_mass(m, masks),
            "rank": relevance_rank(m, masks), "top_k": top_k_intersection(m, masks, k=100)}


def _sanity(model, x, y, method, options, random_model, seed, report, name, grid_images):
    cascade = randomization(model, x, y, method, similarity="spearman", seed=seed, options=options,
                            keep_maps=True, progress=False)
    report.layers = cascade.layers
    report.grid[name] = cascade.maps[:, :grid_images]
    report.cascade[name] = np.nanmean(cascade.similarity, axis=0)
    scores = {"random_abs": cascade.similarity[:, -1], "random_signed": cascade.signed[:, -1],
              "logit": random_logit(model, x, y, method, similarity="ssim", seed=seed, options=options).signed}
    if random_model is not None:
        labels = data_randomization(model, x, y, method, random_model, options=options)
        scores.update(data_abs=labels.similarity, data_signed=labels.signed)
    return scores


def _format(headers, rows, markdown):
    """A table as aligned text, or as Markdown."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [headers, *rows])


def _cell(value, key):
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.1%}" if key in ("pointing", "mass", "rank", "top_k") else f"{value:.3g}"
