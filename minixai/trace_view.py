"""The two views of a Trace (minixai.trace): a text table and a figure of bars and maps."""
import numpy as np

KIND_COLOURS = {"Conv2d": "tab:blue", "Linear": "tab:purple", "ReLU": "tab:orange", "MaxPool2d": "tab:green",
                "AvgPool2d": "tab:olive", "AdaptiveAvgPool2d": "tab:olive", "Add": "tab:red",
                "BatchNorm2d": "tab:brown", "Identity (folded BN)": "tab:gray", "Flatten": "tab:pink",
                "Dropout": "tab:gray"}
OTHER_COLOUR = "tab:cyan"
DEFAULT_MAPS = 4                      # how many layers' maps `plot` draws when none are named


def _check_sample(t, sample):
    n = t.sums.shape[0]
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or not 0 <= sample < n:
        raise ValueError(f"sample must be an image index in 0..{n - 1}, got {sample!r}")
    return int(sample)


def _target_text(t, sample, class_names):
    if t.targets is None:
        return "the sum of all logits"
    c = int(t.targets[sample])
    return f"target {c}" + (f" '{class_names[c]}'" if class_names is not None and c < len(class_names) else "")


def _split_text(t, name, sample):
    """'main 61% | shortcut 39%' for a residual join: the share of the quantity entering each input."""
    parts = t.splits[name][sample]
    total = parts.sum()
    if len(parts) == 2:
        labels = ("main", "shortcut")
    else:
        labels = tuple(f"input {k}" for k in range(len(parts)))
    if total == 0:
        return " | ".join(f"{label} {p:.4g}" for label, p in zip(labels, parts))
    return " | ".join(f"{label} {100 * p / total:.0f}%" for label, p in zip(labels, parts))


def table(t, sample=0, class_names=None):
    """One row per layer, backward order: name, type, output shape, the total below the layer (`t.sums`) and
    that as a share of the value at the logits, what enters the layer's own input where that differs (inside
    a branch), and the layer's change (entering its input - arriving at its output)."""
    sample = _check_sample(t, sample)
    start = float(t.start[sample])
    shapes = [str(shape) for shape in t.shapes]
    width = max(len("layer"), *(len(name) for name in t.layers))
    kind_width = max(len("type"), *(len(kind) for kind in t.kinds))
    shape_width = max(len("output shape"), *(len(s) for s in shapes))
    lines = [f"{t.method}: {t.quantity} below each layer (image {sample}, {_target_text(t, sample, class_names)})",
             f"at the logits: {start:.6g}",
             f"{'layer':<{width}}  {'type':<{kind_width}}  {'output shape':<{shape_width}}  "
             f"{'total':>12}  {'of logits':>9}  {'own input':>12}  {'change':>10}"]
    for i, name in enumerate(t.layers):
        total, own, change = float(t.sums[sample, i]), float(t.local[sample, i]), float(t.change[sample, i])
        share = f"{100 * total / start:8.2f}%" if start != 0 else f"{'-':>9}"
        same = abs(own - total) <= 1e-6 * max(abs(start), abs(total), 1e-30)
        own_text = "" if same else f"{own:.6g}"
        row = (f"{name:<{width}}  {t.kinds[i]:<{kind_width}}  {shapes[i]:<{shape_width}}  {total:>12.6g}  "
               f"{share}  {own_text:>12}  {change:>+10.3g}")
        if name in t.splits:
            row += "   " + _split_text(t, name, sample)
        lines.append(row)
    attributed = float(t.attribution[sample].sum(dtype=np.float64))
    lines.append(f"at the input: the attribution sums to {attributed:.6g}; change over the whole pass "
                 f"{attributed - start:+.3g}")
    return "\n".join(lines)


def default_maps(t, count=DEFAULT_MAPS):
    """`count` layers whose input is a feature map of at least 2x2, spread from the input to the deepest."""
    forward = [name for name in reversed(t.layers) if name in t.maps and min(t.maps[name].shape[1:]) >= 2]
    if len(forward) <= count:
        return forward
    picks = np.unique(np.linspace(0, len(forward) - 1, count).round().astype(int))
    return [forward[i] for i in picks]


def plot(t, sample=0, maps=None, title=None):
    """Bars of the quantity entering each layer (forward order, input left), bars of each layer's change
    below them, and the chosen maps at the bottom."""
    import matplotlib.pyplot as plt
    sample = _check_sample(t, sample)
    maps = default_maps(t) if maps is None else [maps] if isinstance(maps, str) else list(maps)
    missing = [name for name in maps if name not in t.maps]
    if missing:
        raise ValueError(f"no map for layer {missing[0]!r} (its input is not a feature map, or it is not in the "
                         f"trace); layers with maps: {', '.join(reversed([n for n in t.layers if n in t.maps]))}")
    ncols = max(len(maps), 1)
    rows, ratios = (3, [1.2, 0.7, 1.1]) if maps else (2, [1.2, 0.7])
    fig = plt.figure(figsize=(max(9.0, 2.4 * ncols), 8.0 if maps else 5.0), layout="constrained")
    grid = fig.add_gridspec(rows, ncols, height_ratios=ratios)
    top = fig.add_subplot(grid[0, :])
    bottom = fig.add_subplot(grid[1, :], sharex=top)
    _bars(top, bottom, t, sample)
    for j, name in enumerate(maps):
        _map(fig.add_subplot(grid[2, j]), t, name, sample)
    fig.suptitle(title or f"{t.method}: {t.quantity} below each layer")
    return fig


def _bars(top, bottom, t, sample):
    order = list(reversed(range(len(t.layers))))           # forward order: the input layer on the left
    kinds = [t.kinds[i] for i in order]
    colours = [KIND_COLOURS.get(kind, OTHER_COLOUR) for kind in kinds]
    x = np.arange(len(order))
    top.bar(x, t.sums[sample, order], color=colours, width=0.8)
    own = t.local[sample, order]
    inside = ~np.isclose(own, t.sums[sample, order], rtol=1e-6, atol=1e-9 * abs(float(t.start[sample])))
    if inside.any():                                        # layers inside a branch: their own share
        top.plot(x[inside], own[inside], "k_", markersize=6, label="own input (in a branch)")
    top.axhline(float(t.start[sample]), color="k", linestyle="--", linewidth=0.8, label="at the logits")
    top.set_ylabel(f"{t.quantity}\nbelow the layer")
    top.tick_params(labelbottom=False)
    handles = [_patch(KIND_COLOURS.get(kind, OTHER_COLOUR), kind) for kind in dict.fromkeys(kinds)]
    top.legend(handles=[*handles, *top.get_legend_handles_labels()[0]], fontsize=7, loc="upper left",
               bbox_to_anchor=(1.0, 1.0))
    bottom.bar(x, t.change[sample, order], color=colours, width=0.8)
    bottom.axhline(0, color="k", linewidth=0.5)
    bottom.set_ylabel("change at the layer\n(< 0: absorbed)")
    names = [t.layers[i] for i in order]
    every = max(1, len(names) // 60)                       # at most ~60 labels
    bottom.set_xticks(x[::every])
    bottom.set_xticklabels(names[::every], rotation=90, fontsize=6 if len(names) > 30 else 8)
    bottom.set_xlim(-0.6, len(names) - 0.4)


def _patch(colour, label):
    from matplotlib.patches import Patch
    return Patch(color=colour, label=label)


def _map(ax, t, name, sample):
    m = t.maps[name][sample]
    limit = float(np.abs(m).max()) or 1.0
    ax.imshow(m, cmap="bwr", vmin=-limit, vmax=limit)
    ax.set_xticks([])
    ax.set_yticks([])
    where = "the input" if name == t.layers[-1] else f"into {name}"
    ax.set_title(f"{where} {m.shape[0]}x{m.shape[1]}\nsum {float(m.sum(dtype=np.float64)):.4g}", fontsize=8)
