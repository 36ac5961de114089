"""minixai.images.load: a picture becomes a normalised (1, 3, H, W) input; odd paths and bombs are refused."""
import numpy as np
import pytest
from PIL import Image

import minixai as mx
from minixai.spec import InputSpec
from weights_helpers import ODD_KINDS, odd_path, within


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "red.png"
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[..., 0] = 255
    Image.fromarray(pixels).save(path)
    return path


def test_load_resizes_scales_and_normalises(png):
    spec = InputSpec(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), size=(8, 12))
    x = mx.images.load(png, spec=spec)
    assert x.shape == (1, 3, 8, 12) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], (1 - 0.5) / 0.25)     # red channel: pixel value 1
    np.testing.assert_allclose(x[0, 1:], (0 - 0.5) / 0.25)    # green and blue: 0


@pytest.mark.parametrize("kind", ODD_KINDS)
def test_only_regular_files_are_opened(tmp_path, kind):
    path = odd_path(kind, tmp_path, ".png")
    with within(10), pytest.raises(ValueError, match=ODD_KINDS[kind]):
        mx.images.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image not found"):
        mx.images.load(tmp_path / "nope.png")


def test_pixel_count_is_checked_before_decoding(png, monkeypatch):
    """The limit is PIL's MAX_IMAGE_PIXELS (monkeypatched small here); PIL itself would only warn below 2x."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(ValueError, match=r"30x20 pixels .* exceed PIL.Image.MAX_IMAGE_PIXELS"):
        mx.images.load(png)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)       # no limit: the same file loads
    assert mx.images.load(png, size=(4, 4)).shape == (1, 3, 4, 4)


def test_a_truncated_image_is_a_value_error(png, tmp_path):
    cut = tmp_path / "cut.png"
    cut.write_bytes(png.read_bytes()[:60])
    with pytest.raises(ValueError, match="cannot read"):
        mx.images.load(cut)
