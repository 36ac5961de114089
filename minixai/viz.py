"""Pictures of attributions: channel aggregation, normalisation, heatmaps, overlays, grids and panels.

The methods return attributions (N, C, H, W) and Grad-CAM maps (N, H, W). The drawing functions show ONE
image, so pass a[i:i+1] or a[i] from a batch. Figures are made with pyplot and never shown here: call
plt.show() yourself (a notebook shows them anyway), or `save(fig, "figure.png")`.

Seed 000, Algorithm 1, steps 6-7 (m_ij = max_k |M_ijk|, then normalise to a heatmap):
    m = normalize(aggregate(mx.saliency(model, x, c)))        # (1, H, W) in [0, 1]
    heatmap(mx.saliency(model, x, c))                          # the same map, drawn with a colour bar

The exercises of seed 003, one call each (x = mx.images.load(path, spec=model.spec), a = any attribution):
    other colormap (saliency 3, IG 4)     heatmap(a, cmap="viridis")          # "plasma", "gray", ...
    0-1 normalisation (saliency 4, IG 3)  normalize(aggregate(a))             # heatmap(a) shows exactly this
    overlay with alpha (saliency 5)       show_overlay(x, a, spec=model.spec, cmap="hot", alpha=0.5)
    baselines black/white/grey (IG 1)     panel(x, {b: mx.integrated_gradients(model, x, c, baseline=b)
                                                    for b in ("black", "white", "gray")}, spec=model.spec)
    m_steps 10 vs 100 (IG 2)              panel(x, {f"steps={s}": mx.integrated_gradients(model, x, c, steps=s)
                                                    for s in (10, 100)}, spec=model.spec)
    target-free gradients (IG 5)          panel(x, {"class c": mx.saliency(model, x, c),
                                                    "sum of all logits": mx.saliency(model, x, None)}, spec=model.spec)
    original vs counterfactual            minixai.counterfactual.compare_figure(model, mx.counterfactual(model, x, c))
Seed 004, the first 64 filters of a layer:   filter_grid(mx.maximize_filters(model, "layer3", range(64)))
Seed 004, the activations of a layer:       feature_maps(model, x, "layer1", channels=range(64))
Signed attributions (gradient x input, IG, LRP, DeepLIFT): diverging(a), i.e. heatmap(a, norm="absmax").
"""
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np

from .images import resize_bilinear, to_pixels

AGGREGATIONS = ("maxabs", "sum", "abs_sum", "l2", "positive")
NORMALIZATIONS = ("minmax", "absmax", "percentile")
DIVERGING_CMAP = "bwr"          # white at 0, red for the class, blue against it
COLORBAR_LABELS = {"minmax": "relevance, 0 = min, 1 = max",
                   "absmax": "relevance / max |relevance|",
                   "percentile": "relevance, clipped at p{p:g}"}


# ------------------------------------------------------------------------------------------------ maps

def aggregate(a, how="maxabs"):
    """Collapse the colour channels: (N, C, H, W) -> (N, H, W), (C, H, W) -> (H, W); (H, W) passes through.

        maxabs    m_ij = max_k |M_kij|         seed 000, Algorithm 1 step 6 (Simonyan et al. 2014)
        sum       m_ij = sum_k M_kij           signed; with gradient x input the pixel's share of the score
        abs_sum   m_ij = sum_k |M_kij|
        l2        m_ij = sqrt(sum_k M_kij^2)
        positive  m_ij = sum_k max(M_kij, 0)   only the evidence for the class

    A 3-D array is read as (C, H, W) of one image. Grad-CAM's (N, H, W) needs no aggregation: `heatmap`,
    `overlay` and `panel` take its (1, H, W) as it is, and `normalize` takes the whole batch."""
    a = _array(a, "a")
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; valid: {', '.join(AGGREGATIONS)}")
    if a.ndim == 2:
        return a
    if a.ndim not in (3, 4):
        raise ValueError(f"a must be attributions (N, C, H, W) or (C, H, W), or a map (H, W); got shape {a.shape}")
    k = a.ndim - 3                                                  # the channel axis
    if how == "maxabs":
        return np.abs(a).max(axis=k)
    if how == "sum":
        return a.sum(axis=k)
    if how == "abs_sum":
        return np.abs(a).sum(axis=k)
    if how == "l2":
        return np.sqrt((a * a).sum(axis=k))
    return np.maximum(a, 0).sum(axis=k)


def normalize(m, how="minmax", percentile=99):
    """Scale a map for display: a 2-D map as a whole, a batch (N, ...) per item (each image its own scale).

        minmax      (m - min) / (max - min)  -> [0, 1]    seed 003, saliency exercise 4
        absmax      m / max |m|              -> [-1, 1]   sign kept, 0 stays 0: for signed maps
        percentile  clip above the `percentile`-th percentile (e.g. 99), then minmax -> [0, 1],
                    so that a few extreme pixels do not wash out the rest

    A constant map has nothing to show and becomes zeros, never NaN (absmax: only the all-zero map; a
    constant c != 0 is c / |c| = +-1). With "percentile", if more than `percentile` % of the pixels share
    the minimum (a very sparse map), clipping would erase everything, so the clip level is the maximum."""
    m = _array(m, "m")
    if how not in NORMALIZATIONS:
        raise ValueError(f"unknown normalisation {how!r}; valid: {', '.join(NORMALIZATIONS)}")
    if m.ndim < 2:
        raise ValueError(f"m must be a map (H, W) or a batch of maps (N, H, W); got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("m contains NaN or infinite values")
    axes = None if m.ndim == 2 else tuple(range(1, m.ndim))       # per item of a batch
    if how == "absmax":
        return _divide(m, np.abs(m).max(axis=axes, keepdims=True))
    lo, hi = m.min(axis=axes, keepdims=True), m.max(axis=axes, keepdims=True)
    if how == "percentile":
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        clip = np.percentile(m, percentile, axis=axes, keepdims=True).astype(m.dtype)
        hi = np.where(clip > lo, clip, hi)
        m = np.minimum(m, hi)
    return _divide(m - lo, hi - lo)


def _divide(num, den):
    """num / den, and 0 where den == 0 (a constant map)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _array(a, name):
    """A float numpy array (cupy arrays are copied to the host; ints become float32)."""
    if type(a).__module__.startswith("cupy"):
        a = a.get()
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    return a if a.dtype.kind == "f" else a.astype(np.float32)


def _single_map(a, how):
    """One image's map (H, W): (1, C, H, W) and (C, H, W) attributions are aggregated with `how`;
    Grad-CAM's (1, H, W) and a plain (H, W) are taken as they are."""
    a = _array(a, "the map")
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"this draws one image's map; got a batch of {a.shape[0]} {a.shape}: pass a[i:i+1]")
        return aggregate(a, how)[0]
    if a.ndim == 3 and a.shape[0] == 1:
        return a[0]
    return aggregate(a, how)


def _signed_defaults(norm, how, cmap):
    """A signed view (norm="absmax") keeps the sign: channels summed, a diverging colormap centred at 0."""
    signed = norm == "absmax"
    how = how or ("sum" if signed else "maxabs")
    cmap = cmap or (DIVERGING_CMAP if signed else "hot")
    return how, plt.get_cmap(cmap), (-1.0 if signed else 0.0)


# ------------------------------------------------------------------------------------------------ overlay

def overlay(image, a, spec=None, cmap=None, alpha=0.5, how=None, norm="minmax", percentile=99):
    """The map blended over the image: an (H, W, 3) float array in [0, 1] (draw it with `show_overlay`).

        out = (1 - alpha) * pixels + alpha * cmap(normalised map)

    which is what plt.imshow(img); plt.imshow(m, cmap="hot", alpha=0.5) shows (seed 003, saliency exercise 5).
    image: a model input (1, 3, H, W) or (3, H, W) with its `spec` (denormalised by mx.images.to_pixels),
    or pixels (H, W, 3) / (H, W) in [0, 1] (uint8 in 0-255 also). a: any map `heatmap` accepts; it is
    resized (bilinear) to H x W. cmap/how default as in `heatmap`: "hot"/"maxabs", or "bwr"/"sum" for absmax."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    how, cmap, vmin = _signed_defaults(norm, how, cmap)
    pixels = _pixels(image, spec)
    return _blend(pixels, _single_map(a, how), cmap, alpha, norm, percentile, vmin)


def _blend(pixels, m, cmap, alpha, norm, percentile, vmin):
    if m.shape != pixels.shape[:2]:
        m = resize_bilinear(m, pixels.shape[:2])
    m = normalize(m, norm, percentile)
    colours = cmap(matplotlib.colors.Normalize(vmin, 1.0)(m))[..., :3]
    return (1 - alpha) * pixels + alpha * colours


def _pixels(image, spec=None):
    """Displayable pixels (H, W, 3) in [0, 1] from a model input (with its spec) or from pixels."""
    raw = np.asarray(image.get() if type(image).__module__.startswith("cupy") else image)
    img = raw / 255.0 if raw.dtype == np.uint8 else _array(raw, "image")
    if spec is not None:
        if img.ndim == 4 and img.shape[0] == 1:
            img = img[0]
        if img.ndim != 3:
            raise ValueError(f"with a spec, image must be one model input (1, C, H, W) or (C, H, W); got {img.shape}")
        return to_pixels(img, spec)
    if img.ndim == 4 or (img.ndim == 3 and img.shape[-1] != 3 and img.shape[0] in (1, 3)):
        raise ValueError(f"image {img.shape} looks like a model input: pass spec=model.spec to denormalise it, "
                         "or give pixels (H, W, 3) in [0, 1]")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be pixels (H, W, 3) or (H, W), or a model input with spec=; got {img.shape}")
    if img.min() < 0 or img.max() > 1:
        raise ValueError(f"pixels must lie in [0, 1], got [{img.min():.3g}, {img.max():.3g}]; "
                         "for a model input pass spec=model.spec")
    return img


# ------------------------------------------------------------------------------------------------ drawing

def heatmap(a, cmap=None, ax=None, how=None, norm="minmax", colorbar=True, title=None, percentile=99):
    """Draw one image's map; returns the Axes (the Figure is ax.figure).
    a: attributions (1, C, H, W) / (C, H, W), aggregated with `how` (default "maxabs", Algorithm 1), Grad-CAM's
    (1, H, W), or a map (H, W). norm: see `normalize`. cmap: default "hot"; with norm="absmax" the default is the
    diverging "bwr" centred at 0 and how defaults to "sum", so the sign survives."""
    how, cmap, vmin = _signed_defaults(norm, how, cmap)
    m = normalize(_single_map(a, how), norm, percentile)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 3.6), layout="constrained")
    image = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=1.0)
    _bare(ax, title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.9, label=COLORBAR_LABELS[norm].format(p=percentile))
    return ax


def diverging(a, ax=None, cmap=DIVERGING_CMAP, how="sum", colorbar=True, title=None):
    """Draw a signed attribution: channels summed, scaled by max |value| to [-1, 1], diverging colours centred
    at 0 (red: evidence for the class, blue: against, white: no effect). Returns the Axes."""
    return heatmap(a, cmap=cmap, ax=ax, how=how, norm="absmax", colorbar=colorbar, title=title)


def show_overlay(image, a, spec=None, cmap=None, alpha=0.5, ax=None, title=None, how=None, norm="minmax",
                 percentile=99):
    """Draw `overlay(image, a, ...)` (the blended array) and return the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6), layout="constrained")
    ax.imshow(overlay(image, a, spec, cmap, alpha, how, norm, percentile))
    _bare(ax, title)
    return ax


def grid(images, titles=None, ncols=8, cmap=None, spec=None, title=None, cell=1.6):
    """A Figure with one image or map per cell, row by row (seed 004: the first 64 filters, ncols=8).
    images: a sequence, or an array with the items along axis 0. Each item is drawn as
        (H, W)      a map, with `cmap` (default "viridis"), scaled to its own range
        (H, W, 3)   pixels (e.g. from `overlay`); if outside [0, 1], min-max scaled per image
        (3, H, W)   a model input: denormalised with `spec` if given, else min-max scaled per image
                    (seed 004's "rescale to [0, 255]" for filter visualisations)
    A leading batch axis of one, (1, ...), is dropped. cell: inches per cell."""
    items = [_grid_item(_array(item, "image"), spec) for item in images]
    if not items:
        raise ValueError("grid needs at least one image")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"got {len(titles)} titles for {len(items)} images")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(ncols, len(items))
    nrows = -(-len(items) // ncols)
    height = cell * nrows + (0.25 * nrows if titles is not None else 0) + (0.4 if title else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, height), squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i >= len(items):
            ax.set_axis_off()
            continue
        ax.imshow(items[i], cmap=cmap if items[i].ndim == 2 else None)
        _bare(ax, None if titles is None else str(titles[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def filter_grid(images, titles=None, ncols=8, title=None, cell=1.2):
    """Seed 004 (e): filter visualisations in a grid, 8 per row; returns the Figure.
    images: FilterVisualization objects (from mx.maximize_filters; titled with their filter index) or
    uint8 pixels (H, W, 3) in 0-255, drawn as they are (no further rescaling)."""
    items = list(images)
    if titles is None and items and all(hasattr(v, "filter") for v in items):
        titles = [str(v.filter) for v in items]
    pixels = [np.asarray(getattr(v, "image", v)) for v in items]
    return grid([p / 255.0 if p.dtype == np.uint8 else p for p in pixels], titles=titles, ncols=ncols,
                title=title, cell=cell)


def _grid_item(img, spec):
    if img.ndim in (3, 4) and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[-1] == 3:
        return img if img.min() >= 0 and img.max() <= 1 else normalize(img[None])[0]
    if img.ndim == 3 and img.shape[0] == 3:
        return to_pixels(img, spec) if spec is not None else normalize(img[None])[0].transpose(1, 2, 0)
    raise ValueError(f"grid items must be maps (H, W), pixels (H, W, 3) or model inputs (3, H, W); got {img.shape}")


def panel(image, maps, spec=None, title=None, cmap=None, overlay=True, alpha=0.5, how=None, norm="minmax",
          percentile=99, cell=2.6, per_row=7):
    """The comparison figure (the CLI `minixai explain` writes it as FIGURE.png): the image, then for each
    method its heatmap and, with overlay=True, below it the heatmap laid over the image; more than `per_row`
    methods wrap into further bands, each starting with the image again.
    image: as in `overlay` (a model input with its spec, or pixels). maps: {method name: that image's map},
    any shape `heatmap` accepts, in the order given. Every heatmap is normalised on its own, so they share one
    colour bar; the raw value range of each map (after aggregation, before normalisation) is written under it,
    so that scales can still be compared (e.g. IG with 10 vs 100 steps)."""
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a non-empty dict {method name: map}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if isinstance(per_row, bool) or not isinstance(per_row, int) or per_row < 1:
        raise ValueError(f"per_row must be a positive integer (methods per band), got {per_row!r}")
    how, cmap, vmin = _signed_defaults(norm, how, cmap)
    pixels = _pixels(image, spec)
    raw = {name: _single_map(a, how) for name, a in maps.items()}
    names = list(raw)
    bands = [names[i:i + per_row] for i in range(0, len(names), per_row)]

    height = 2 if overlay else 1                                  # rows per band
    nrows, ncols = height * len(bands), 1 + len(bands[0])
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols + 0.8, cell * nrows + (0.5 if title else 0.2)),
                             squeeze=False, layout="constrained")
    for b, band in enumerate(bands):
        top = b * height
        axes[top, 0].imshow(pixels)
        _bare(axes[top, 0], "image")
        for j, name in enumerate(band, start=1):
            m = raw[name]
            shown = axes[top, j].imshow(normalize(m, norm, percentile), cmap=cmap, vmin=vmin, vmax=1.0)
            _bare(axes[top, j], name)
            axes[top, j].set_xlabel(f"raw range [{m.min():.3g}, {m.max():.3g}]", fontsize=8)
            if overlay:
                axes[top + 1, j].imshow(_blend(pixels, m, cmap, alpha, norm, percentile, vmin))
                _bare(axes[top + 1, j], None)
        for row in range(top, top + height):                      # the last band's empty cells
            for j in range(1 + len(band), ncols):
                axes[row, j].set_axis_off()
        if overlay:
            axes[top + 1, 0].set_axis_off()
            axes[top + 1, 0].text(0.5, 0.5, f"overlay\n(alpha = {alpha:g})", ha="center", va="center",
                                  transform=axes[top + 1, 0].transAxes)
    fig.colorbar(shown, ax=axes[:, 1:].ravel().tolist(), shrink=0.85 / len(bands) ** 0.5,
                 label=COLORBAR_LABELS[norm].format(p=percentile))
    if title:
        fig.suptitle(title)
    return fig


def _bare(ax, title, fontsize=None):
    """No ticks (an image, not a plot), a thin grey frame so that white maps keep their edges."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set(color="0.8", linewidth=0.6)
    if title:
        ax.set_title(title, fontsize=fontsize)


def save(fig, path, dpi=150):
    """Write the figure (or an Axes' figure) to `path` with a tight bounding box and close it; the format
    follows the file's extension (PNG when it has none). Returns the path."""
    if isinstance(fig, plt.Axes):
        fig = fig.figure
    if not isinstance(fig, plt.Figure):
        raise TypeError(f"save needs a matplotlib Figure or Axes, got {type(fig).__name__}")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


# seed 004's activation maps of one layer live in their own module; they belong to viz's drawings
from .feature_maps import feature_maps  # noqa: E402,F401
