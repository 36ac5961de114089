"""The figure of `minixai evaluate`: mean deletion and insertion curves per method (top), and the
cascading randomisation grid (below): one row per method, the trained model's map and then the map after
each further layer is randomised, output first (Adebayo et al. 2018, Fig. 2)."""
import numpy as np


def report_figure(report, image=0):
    """A matplotlib Figure of `report` (an evaluation.report.Report) for its image number `image`."""
    import matplotlib.pyplot as plt
    names = list(report.grid)
    columns = ["trained"] + [f"+ {name}" for name in report.layers]
    cell = 0.95
    fig = plt.figure(figsize=(max(8.0, cell * (len(columns) + 1)), 3.2 + cell * len(names)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.2, cell * len(names)])
    _curves(top, report)
    _grid(bottom, report, names, columns, image)
    return fig


def _curves(fig, report):
    axes = fig.subplots(1, 2)
    for title, which, ax in (("deletion (to black)", 0, axes[0]), ("insertion (from blur)", 1, axes[1])):
        for name, pair in report.curves.items():
            curve = pair[which]
            style = {"linestyle": ":", "color": "0.3" if name == "random" else "0.6"} if name in ("random", "edges") \
                else {}
            ax.plot(curve.fractions, curve.curve.mean(axis=0), label=f"{name} ({curve.auc.mean():.2f})", **style)
        ax.set(title=title, xlabel="share of pixels", ylabel="mean p(target)", ylim=(0, 1))
        ax.legend(fontsize=6, ncols=2)


def _grid(fig, report, names, columns, image):
    axes = fig.subplots(len(names), len(columns), squeeze=False)
    for row, name in zip(axes, names):
        for col, (ax, m) in enumerate(zip(row, report.grid[name][:, image])):
            magnitude = np.abs(m)
            peak = magnitude.max()
            ax.imshow(magnitude / peak if peak > 0 else magnitude, cmap="hot", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=7)
        for ax, title in zip(row if name == names[0] else (), columns):
            ax.set_title(title, fontsize=6)
    fig.suptitle("cascading randomisation: |map| after randomising the layers from the output down", fontsize=8)
