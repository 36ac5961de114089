"""Activation maps of one layer for one image, as a grid (seed 004, learning goal 2: "visualise the
activations of chosen convolutional layers for given inputs"). ``mx.viz.feature_maps`` is this function.

    fig = mx.viz.feature_maps(model, x, "layer1", channels=range(64))

Each cell is one channel k of the layer's output A^k (h, w) for the image x, drawn with its own colour
scale (a channel that never fires is uniform); the title gives k and the channel's maximum.
"""
import numpy as np

from .backend import to_host

MAX_CHANNELS = 64                     # channels=None: the first 64 (seed 004's grid of the first 64 filters)


def feature_maps(model, x, layer, channels=None, ncols=8, cmap="viridis", cell=1.3):
    """A Figure with the activation maps A^k of `layer` (a name of model.layer_names()) for the image x
    (1, C, H, W): one cell per channel k in `channels` (default: the first 64, or all if the layer has fewer)."""
    from .viz import grid
    if not hasattr(x, "shape") or x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image (1, C, H, W); got {getattr(x, 'shape', type(x).__name__)}: "
                         "pass x[i:i+1]")
    out = to_host(model.activations(x, [layer])[layer])
    if out.ndim != 4:
        raise ValueError(f"layer {layer!r} outputs shape {out.shape}, not feature maps (1, K, h, w): choose a "
                         "convolutional layer")
    picked = _channels(channels, out.shape[1], layer)
    maps = out[0, picked]
    titles = [f"{k}  max {m.max():.2g}" for k, m in zip(picked, maps)]
    title = f"{layer}: {len(picked)} of {out.shape[1]} channels, {out.shape[2]}x{out.shape[3]}"
    return grid(list(maps), titles=titles, ncols=ncols, cmap=cmap, title=title, cell=cell)


def _channels(channels, count, layer):
    """Channel indices (int array), each within the layer's `count` channels."""
    if channels is None:
        return np.arange(min(MAX_CHANNELS, count))
    picked = np.asarray([channels] if isinstance(channels, (int, np.integer)) else list(channels))
    if picked.size == 0 or picked.ndim != 1 or picked.dtype.kind not in "iu":
        raise TypeError(f"channels must be None, an int or a non-empty sequence of ints, got {channels!r}")
    outside = [int(k) for k in picked if not 0 <= k < count]
    if outside:
        raise ValueError(f"channel {outside[0]} is out of range: layer {layer!r} has {count} channels "
                         f"(valid: 0..{count - 1})")
    return picked.astype(np.int64)
