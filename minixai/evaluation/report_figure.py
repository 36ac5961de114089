"""The figure of `minixai evaluate`: mean deletion and insertion curves per method and the mean Spearman
correlation along the cascading randomisation (top; Adebayo et al. 2018, Fig. 4), and the cascading
randomisation grid (below): one row per method, the image, the trained model's map and then the map after
each further layer is randomised, output first (Adebayo et al. 2018, Fig. 2)."""
import numpy as np


def report_figure(report, image=0):
    """A matplotlib Figure of `report` (an evaluation.report.Report) for its image number `image`."""
    import matplotlib.pyplot as plt
    names = list(report.grid)
    columns = ["image", "trained"] + [f"+ {name}" for name in report.layers]
    cell = 0.95
    fig = plt.figure(figsize=(max(10.0, cell * (len(columns) + 1)), 3.6 + cell * len(names)), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.6, cell * len(names)])
    _curves(top, report)
    _grid(bottom, report, names, columns, image)
    return fig


def _curves(fig, report):
    axes = fig.subplots(1, 3)
    for title, which, ax in (("deletion (to black)", 0, axes[0]), ("insertion (from blur)", 1, axes[1])):
        for name, pair in report.curves.items():
            curve = pair[which]
            ax.plot(curve.fractions, curve.curve.mean(axis=0), label=f"{name} ({curve.auc.mean():.2f})",
                    **_style(name))
        ax.set(title=title, xlabel="share of pixels", ylabel="mean p(target)", ylim=(0, 1))
        ax.legend(fontsize=5, ncols=2)
    steps = np.arange(len(report.layers) + 1)
    for name, values in report.cascade.items():
        axes[2].plot(steps, [1.0, *values], marker=".", label=name, **_style(name))
    axes[2].set_xticks(steps, ["trained", *report.layers], rotation=60, fontsize=6)
    axes[2].set(title="cascading randomisation", ylabel="mean Spearman of |map|", ylim=(-0.1, 1.05))
    axes[2].legend(fontsize=5, ncols=2)


def _style(name):
    """Dotted grey lines for the controls."""
    return {"linestyle": ":", "color": "0.3" if name == "random" else "0.6"} if name in ("random", "edges") else {}


def _grid(fig, report, names, columns, image):
    axes = fig.subplots(len(names), len(columns), squeeze=False)
    pixels = report.images[image].transpose(1, 2, 0)
    pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min())         # min-max scaled for display
    for row, name in zip(axes, names):
        row[0].imshow(pixels)
        for ax, m in zip(row[1:], report.grid[name][:, image]):
            magnitude = np.abs(m)
            peak = magnitude.max()
            ax.imshow(magnitude / peak if peak > 0 else magnitude, cmap="hot", vmin=0, vmax=1)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(name, fontsize=7)
        for ax, title in zip(row if name == names[0] else (), columns):
            ax.set_title(title, fontsize=6)
    fig.suptitle("cascading randomisation: |map| after randomising the layers from the output down", fontsize=8)
