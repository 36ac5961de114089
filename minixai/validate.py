"""Checks of user input, with messages that say what was expected."""
import numpy as np

from .backend import array_module


def check_images(x, channels=None, name="x", ndim=4):
    """x must be a finite float array (N, C, H, W) (or (N, features) with ndim=2, for a model cut before
    its dense head); returns it contiguous (float32 stays float32)."""
    xp = array_module(x)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be a numpy array of shape (N, C, H, W), got {type(x).__name__}")
    if ndim == 2 and x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, features) for this model, got shape {tuple(x.shape)}")
    if ndim is None and x.ndim not in (2, 4):
        raise ValueError(f"{name} must have shape (N, C, H, W) or (N, features), got shape {tuple(x.shape)}")
    if ndim == 4 and x.ndim != 4:
        hint = " (add a batch axis: x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}{hint}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels, the model expects {channels}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N = 0)")
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return xp.ascontiguousarray(x)


def check_targets(target, n, num_outputs):
    """An int, or one int per sample, each in [0, num_outputs) -> int array of shape (n,)."""
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must be an int or a sequence of ints, got {target!r}")
    t = np.broadcast_to(t, (n,)) if t.ndim == 0 else t
    if t.shape != (n,):
        raise ValueError(f"target must be one int or {n} ints (one per sample), got shape {t.shape}")
    bad = t[(t < 0) | (t >= num_outputs)]
    if bad.size:
        raise ValueError(f"target {int(bad[0])} is out of range: the model has {num_outputs} outputs "
                         f"(valid: 0..{num_outputs - 1})")
    return t.astype(np.int64)


def check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_nonnegative(value, name, meaning=""):
    """A finite real number >= 0 (not a bool) -> float; `meaning` says what it is, for the message."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not real or not np.isfinite(value) or value < 0:
        about = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} must be a finite number >= 0{about}, got {value!r}")
    return float(value)


def check_layer_name(name, valid):
    if name not in valid:
        shown = ", ".join(valid) if len(valid) <= 40 else ", ".join(valid[:20]) + ", ..., " + ", ".join(valid[-5:])
        raise ValueError(f"layer {name!r} not found; valid: {shown}")
    return name
