"""Images in and out: load a picture as a model input, resize maps."""
import numpy as np

from .backend import array_module
from .spec import InputSpec
from .weights.limits import open_regular


def resize_bilinear(maps, size):
    """Bilinear resize of (..., h, w) maps to (..., H, W) with half-pixel centres
    (torch's align_corners=False): source = (target + 0.5) * h / H - 0.5, clamped at the edges."""
    xp = array_module(maps)

    def axis(n_in, n_out):                 # the source rows (or columns) and weights, made here, copied to xp
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return xp.asarray(lo), xp.asarray(hi), xp.asarray((src - lo).astype(maps.dtype))

    (r0, r1, fr), (c0, c1, fc) = axis(maps.shape[-2], size[0]), axis(maps.shape[-1], size[1])
    rows = maps[..., r0, :] * (1 - fr)[:, None] + maps[..., r1, :] * fr[:, None]
    return rows[..., c0] * (1 - fc) + rows[..., c1] * fc


def load(path, spec=None, size=None):
    """Read an image file as a model input (1, 3, H, W) float32: RGB, resized to the spec's size
    (or `size`), scaled to [0, 1] and normalised with the spec's mean and std.

    Only a regular file is opened, and its pixel count is checked against PIL's limit
    (`PIL.Image.MAX_IMAGE_PIXELS`) before anything is decoded; anything else raises ValueError."""
    spec = spec or InputSpec()
    size = tuple(size or spec.size)
    with open_regular(path, "image", error=ValueError) as f:
        pixels = _decode(f, path, size)
    return spec.normalize(pixels.transpose(2, 0, 1))[None].astype(np.float32)


def _decode(f, path, size):
    """Pixels (H, W, 3) in [0, 1] of the image in file `f`, resized to `size` = (H, W)."""
    import warnings

    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # refused below instead
            img = Image.open(f)   # reads the header only
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: refused before decoding: {e}") from None
    except Exception as e:   # PIL's format plugins raise many types on malformed headers
        raise ValueError(f"cannot read {path} as an image ({type(e).__name__}: {e})") from None
    with img:
        width, height = img.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and width * height > limit:
            raise ValueError(f"{path}: {width}x{height} pixels ({width * height / 1e6:.0f} megapixels) exceed "
                             f"PIL.Image.MAX_IMAGE_PIXELS ({limit / 1e6:.0f} megapixels); refused before "
                             "decoding (a decompression bomb?)")
        try:
            img = img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        except Exception as e:   # truncated or corrupt pixel data
            raise ValueError(f"cannot read {path} as an image ({type(e).__name__}: {e})") from None
        return np.asarray(img, dtype=np.float32) / 255.0


def to_pixels(x, spec):
    """Model input (C, H, W) or (1, C, H, W) -> displayable pixels (H, W, C) in [0, 1] (clipped for display)."""
    x = x[0] if x.ndim == 4 else x
    return np.clip(spec.denormalize(x).transpose(1, 2, 0), 0, 1)
