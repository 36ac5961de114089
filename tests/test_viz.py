"""Tests of minixai.viz: aggregation and normalisation by hand, overlay blending, figures that save."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from minixai import viz  # noqa: E402
from minixai.spec import InputSpec  # noqa: E402

# three channels, one row, two pixels: pixel 0 has (1, -3, 0), pixel 1 has (-5, 2, 4)
A = np.array([[[1.0, -5.0]], [[-3.0, 2.0]], [[0.0, 4.0]]])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def blob(h=32, w=32, centre=(10, 20), sigma=4.0):
    yy, xx = np.mgrid[:h, :w]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma ** 2))


def pixels(h=32, w=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (h, w, 3))


# ---------------------------------------------------------------- aggregate

@pytest.mark.parametrize("how, expected", [
    ("maxabs", [3.0, 5.0]),                       # Algorithm 1: the largest magnitude, whatever its sign
    ("sum", [-2.0, 1.0]),
    ("abs_sum", [4.0, 11.0]),
    ("l2", [np.sqrt(10.0), np.sqrt(45.0)]),
    ("positive", [1.0, 6.0]),
])
def test_aggregate_by_hand(how, expected):
    np.testing.assert_allclose(viz.aggregate(A, how), [expected])            # (C, H, W) -> (H, W)
    np.testing.assert_allclose(viz.aggregate(A[None], how), [[expected]])    # (N, C, H, W) -> (N, H, W)


def test_aggregate_batch_per_image_and_passthrough():
    a = np.stack([A, -2 * A])
    np.testing.assert_allclose(viz.aggregate(a, "sum"), [[[-2.0, 1.0]], [[4.0, -2.0]]])
    m = np.arange(6.0).reshape(2, 3)
    assert viz.aggregate(m) is m


def test_aggregate_bad_input():
    with pytest.raises(ValueError, match="unknown aggregation 'max'.*maxabs"):
        viz.aggregate(A, "max")
    with pytest.raises(ValueError, match="shape"):
        viz.aggregate(np.zeros(5))
    with pytest.raises(ValueError, match="shape"):
        viz.aggregate(np.zeros((1, 1, 3, 4, 4)))
    with pytest.raises(TypeError, match="numeric"):
        viz.aggregate(np.array([["a", "b"], ["c", "d"]]))


# ---------------------------------------------------------------- normalize

def test_minmax_range_and_per_image():
    m = np.stack([blob() * 5 - 1, blob(centre=(5, 5)) * 0.01])
    out = viz.normalize(m)
    assert out.shape == m.shape
    for item in out:                                    # each image reaches 0 and 1 on its own scale
        assert item.min() == 0 and item.max() == pytest.approx(1)


def test_absmax_keeps_sign_and_zero():
    m = np.array([[-2.0, 0.0], [1.0, 4.0]])
    np.testing.assert_allclose(viz.normalize(m, "absmax"), [[-0.5, 0.0], [0.25, 1.0]])


def test_percentile_clips_outliers():
    m = np.linspace(0, 1, 100).reshape(10, 10)
    m[-1, -1] = 1000.0                                 # one hot pixel would squash the rest to ~0
    out = viz.normalize(m, "percentile", percentile=90)
    clip = np.percentile(m, 90)
    np.testing.assert_allclose(out, np.minimum(m, clip) / clip)
    assert out.max() == 1 and (out == 1).sum() >= 10
    assert viz.normalize(m, "percentile", percentile=100).max() == 1


def test_percentile_of_a_sparse_map_keeps_the_signal():
    m = np.zeros((20, 20))
    m[3, 4] = 2.0                                       # 99.75 % of the pixels are at the minimum
    np.testing.assert_allclose(viz.normalize(m, "percentile"), m / 2)


@pytest.mark.parametrize("how", ["minmax", "percentile", "absmax"])
def test_constant_map_gives_zeros(how):
    zeros = viz.normalize(np.zeros((4, 4)), how)
    assert not np.isnan(zeros).any() and (zeros == 0).all()
    if how != "absmax":                                 # absmax: 3 / |3| = 1 is well defined
        assert (viz.normalize(np.full((2, 4, 4), 3.0), how) == 0).all()


def test_normalize_bad_input():
    with pytest.raises(ValueError, match="unknown normalisation"):
        viz.normalize(blob(), "zscore")
    with pytest.raises(ValueError, match="NaN"):
        viz.normalize(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="percentile"):
        viz.normalize(blob(), "percentile", percentile=0)
    with pytest.raises(ValueError, match="shape"):
        viz.normalize(np.ones(3))


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
              elements=st.floats(-1e6, 1e6)),
       st.sampled_from(["minmax", "percentile"]))
def test_normalize_stays_in_unit_interval(m, how):
    out = viz.normalize(m, how)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


# ---------------------------------------------------------------- overlay

def test_overlay_shape_dtype_range_and_resize():
    img = pixels(32, 32)
    out = viz.overlay(img, np.random.default_rng(1).normal(size=(1, 3, 8, 8)))     # map smaller than the image
    assert out.shape == (32, 32, 3) and out.dtype.kind == "f"
    assert out.min() >= 0 and out.max() <= 1


def test_overlay_alpha_ends():
    img, m = pixels(), blob()
    np.testing.assert_allclose(viz.overlay(img, m, alpha=0), img)
    expected = plt.get_cmap("hot")(viz.normalize(m))[..., :3]
    np.testing.assert_allclose(viz.overlay(img, m, alpha=1), expected)
    np.testing.assert_allclose(viz.overlay(img, m, alpha=0.5), (img + expected) / 2)


def test_overlay_model_input_is_denormalised():
    spec = InputSpec(size=(32, 32))
    img = pixels()
    x = spec.normalize(img.transpose(2, 0, 1))[None].astype(np.float32)
    np.testing.assert_allclose(viz.overlay(x, blob(), spec=spec, alpha=0), img, atol=1e-6)
    np.testing.assert_allclose(viz.overlay(x[0], blob(), spec=spec, alpha=0), img, atol=1e-6)
    uint8 = (img * 255).astype(np.uint8)
    np.testing.assert_allclose(viz.overlay(uint8, blob(), alpha=0), uint8 / 255.0)


def test_overlay_bad_input():
    spec = InputSpec(size=(32, 32))
    x = spec.normalize(pixels().transpose(2, 0, 1))[None]
    with pytest.raises(ValueError, match="spec=model.spec"):
        viz.overlay(x, blob())                           # a model input without its spec
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        viz.overlay(pixels() * 3, blob())
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(pixels(), blob(), alpha=1.5)
    with pytest.raises(ValueError, match="batch of 2"):
        viz.overlay(pixels(), np.zeros((2, 3, 32, 32)))
    with pytest.raises(ValueError, match="not a valid value"):
        viz.overlay(pixels(), blob(), cmap="no-such-map")


# ---------------------------------------------------------------- drawing

def test_heatmap_and_diverging_draw_one_map():
    ax = viz.heatmap(np.random.default_rng(0).normal(size=(1, 3, 16, 16)), cmap="viridis", title="saliency")
    image = ax.get_images()[0]
    assert image.get_cmap().name == "viridis" and image.get_clim() == (0.0, 1.0)
    assert ax.get_title() == "saliency" and len(ax.figure.axes) == 2        # the map and its colour bar
    ax = viz.diverging(np.random.default_rng(0).normal(size=(3, 16, 16)), colorbar=False)
    image = ax.get_images()[0]
    assert image.get_cmap().name == viz.DIVERGING_CMAP and image.get_clim() == (-1.0, 1.0)
    assert image.get_array().min() < 0                                      # the sign survived
    np.testing.assert_allclose(viz.heatmap(blob()[None]).get_images()[0].get_array(), viz.normalize(blob()))


def test_panel_saves_a_png(tmp_path):
    img = pixels(48, 48)
    maps = {"saliency": np.random.default_rng(0).normal(size=(1, 3, 48, 48)),
            "gradcam": blob(6, 6, centre=(2, 3), sigma=1.5)[None]}
    fig = viz.panel(img, maps, title="class 'circle'")
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 2 * 3 + 1                   # image + 2 heatmaps, their overlays, one colour bar
    path = viz.save(fig, tmp_path / "panel.png", dpi=80)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert not plt.fignum_exists(fig.number)            # save closed it
    fig = viz.panel(img, maps, overlay=False, norm="absmax")
    assert len(fig.axes) == 3 + 1


def test_panel_wraps_many_methods_into_bands():
    maps = {f"method {i}": blob(8, 8, centre=(i % 8, 3))[None] for i in range(9)}
    fig = viz.panel(pixels(16, 16), maps, per_row=4)            # bands of 4, 4 and 1 methods, 5 columns
    assert len(fig.axes) == 3 * 2 * 5 + 1                       # a map row and an overlay row per band, colour bar
    drawn = [ax for ax in fig.axes if ax.get_images()]
    assert len(drawn) == 3 + 2 * 9                              # the image at the start of each band, maps, overlays
    assert [ax.get_title() for ax in drawn if ax.get_title().startswith("method")] == list(maps)
    with pytest.raises(ValueError, match="per_row must be a positive integer"):
        viz.panel(pixels(16, 16), maps, per_row=0)


def test_grid_of_64_filters_saves_a_png(tmp_path):
    filters = np.random.default_rng(0).normal(size=(64, 3, 12, 12))           # seed 004: raw input-space images
    fig = viz.grid(filters, titles=[f"filter {i}" for i in range(64)], ncols=8)
    assert len(fig.axes) == 64
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (12, 12, 3) and shown.min() == 0 and shown.max() == 1   # rescaled per image
    path = tmp_path / "grid.png"
    viz.save(fig, path, dpi=60)
    assert path.stat().st_size > 10_000
    fig = viz.grid([blob(), pixels(), filters[0]], ncols=2)                   # mixed items, one empty cell
    assert len(fig.axes) == 4 and not fig.axes[3].axison


def test_drawing_bad_input():
    with pytest.raises(ValueError, match="batch of 2"):
        viz.heatmap(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="non-empty dict"):
        viz.panel(pixels(), {})
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        viz.grid([blob()] * 3, titles=["a", "b"])
    with pytest.raises(ValueError, match="ncols"):
        viz.grid([blob()], ncols=0)
    with pytest.raises(ValueError, match="grid items"):
        viz.grid([np.zeros((5, 8, 8))])
    with pytest.raises(TypeError, match="Figure or Axes"):
        viz.save("not a figure", "x.png")
