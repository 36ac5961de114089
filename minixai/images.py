"""Images in and out: load a picture as a model input, resize maps."""
import numpy as np

from .spec import InputSpec


def resize_bilinear(maps, size):
    """Bilinear resize of (..., h, w) maps to (..., H, W) with half-pixel centres
    (torch's align_corners=False): source = (target + 0.5) * h / H - 0.5, clamped at the edges."""
    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo).astype(maps.dtype)

    (r0, r1, fr), (c0, c1, fc) = axis(maps.shape[-2], size[0]), axis(maps.shape[-1], size[1])
    rows = maps[..., r0, :] * (1 - fr)[:, None] + maps[..., r1, :] * fr[:, None]
    return rows[..., c0] * (1 - fc) + rows[..., c1] * fc


def load(path, spec=None, size=None):
    """Read an image file as a model input (1, 3, H, W) float32: RGB, resized to the spec's size
    (or `size`), scaled to [0, 1] and normalised with the spec's mean and std."""
    from PIL import Image, UnidentifiedImageError
    spec = spec or InputSpec()
    size = tuple(size or spec.size)
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read {path} as an image: {e}") from None
    return spec.normalize(pixels.transpose(2, 0, 1))[None].astype(np.float32)


def to_pixels(x, spec):
    """Model input (C, H, W) or (1, C, H, W) -> displayable pixels (H, W, C) in [0, 1] (clipped for display)."""
    x = x[0] if x.ndim == 4 else x
    return np.clip(spec.denormalize(x).transpose(1, 2, 0), 0, 1)
