"""Bad input gives a clear error, naming what was expected, for every method in mx.METHODS."""
import numpy as np
import pytest

import minixai as mx
from minixai.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minixai.model import Model
from minixai.spec import InputSpec

METHOD_NAMES = sorted(mx.METHODS)


@pytest.fixture(scope="module")
def model():
    """A tiny 3-channel CNN with 4 outputs and an input spec (so the named baselines work)."""
    rng = np.random.default_rng(0)
    layers = [("conv1", Conv2d(3, 4, 3, padding=1)), ("relu1", ReLU()), ("pool", MaxPool2d(2)),
              ("conv2", Conv2d(4, 4, 3, padding=1)), ("relu2", ReLU()), ("gap", AdaptiveAvgPool2d(1)),
              ("flatten", Flatten()), ("fc", Linear(4, 4))]
    net = Model(Sequential(*[l for _, l in layers], names=[n for n, _ in layers]),
                InputSpec(size=(8, 8), class_names=["a", "b", "c", "d"]))
    for _, layer in net.named_layers():
        for attr in layer.parameters():
            setattr(layer, attr, rng.standard_normal(getattr(layer, attr).shape).astype(np.float32))
    return net


@pytest.fixture
def x():
    return np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)


def call(name, model, x, target=1, **options):
    if name in ("smoothgrad", "ig"):
        options.setdefault("progress", False)
    return mx.METHODS[name](model, x, target, **options)


pytestmark = pytest.mark.usefixtures("numpy_backend")      # tiny nets: the numpy kernels (conftest.py)


# ---- every method ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_valid_input_works(name, model, x):
    """The baseline for the error tests: the same call with good input succeeds."""
    out = call(name, model, x, n=2) if name == "smoothgrad" else call(name, model, x)
    assert out.shape[0] == 2 and np.isfinite(out).all()


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_3d_input_asks_for_nchw(name, model, x):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*add a batch axis"):
        call(name, model, x[0])


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("bad", [lambda x: x[0, 0], lambda x: x[None]], ids=["2d", "5d"])
def test_wrong_ndim(name, bad, model, x):
    with pytest.raises(ValueError, match=r"must have shape \(N, C, H, W\)"):
        call(name, model, bad(x))


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float16, bool])
def test_wrong_dtype(name, dtype, model, x):
    with pytest.raises(TypeError, match="float32 or float64"):
        call(name, model, x.astype(dtype))


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_wrong_channel_count(name, model, x):
    with pytest.raises(ValueError, match="has 1 channels, the model expects 3"):
        call(name, model, x[:, :1])


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_input(name, value, model, x):
    x[1, 2, 3, 4] = value
    with pytest.raises(ValueError, match="NaN or infinite"):
        call(name, model, x)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_empty_batch(name, model, x):
    with pytest.raises(ValueError, match="empty batch"):
        call(name, model, x[:0])


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("bad", [[[1.0]], "cat", None], ids=["list", "str", "none"])
def test_non_array_input(name, bad, model):
    with pytest.raises(TypeError, match="must be a numpy array"):
        call(name, model, bad)


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("target", [4, -1, 1000, [0, 7]])
def test_target_out_of_range(name, target, model, x):
    with pytest.raises(ValueError, match=r"out of range: the model has 4 outputs \(valid: 0\.\.3\)"):
        call(name, model, x, target)


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("target", [[0, 1, 2], [0], [[0, 1]]])
def test_target_list_of_wrong_length(name, target, model, x):
    with pytest.raises(ValueError, match=r"one int or 2 ints \(one per sample\)"):
        call(name, model, x, target)


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("target", [1.0, "b", [0.5, 1.5]])
def test_target_not_an_int(name, target, model, x):
    with pytest.raises(TypeError, match="target must be an int or a sequence of ints"):
        call(name, model, x, target)


# ---- options of single methods -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gradcam", "guided_gradcam"])
def test_unknown_layer_lists_the_valid_names(name, model, x):
    with pytest.raises(ValueError, match=r"layer 'layer4' not found; valid: conv1, relu1, pool, conv2, relu2, gap"):
        call(name, model, x, layer="layer4")


@pytest.mark.parametrize("steps", [0, -3, 2.5, "10", True])
def test_ig_steps_must_be_a_positive_integer(steps, model, x):
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        call("ig", model, x, steps=steps)


def test_ig_trapezoid_needs_two_steps(model, x):
    with pytest.raises(ValueError, match="riemann_trapezoid needs steps >= 2"):
        call("ig", model, x, steps=1, method="riemann_trapezoid")


@pytest.mark.parametrize("n", [0, -1, 1.5])
def test_smoothgrad_n_must_be_a_positive_integer(n, model, x):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        call("smoothgrad", model, x, n=n)


@pytest.mark.parametrize("sigma", [-0.1, np.nan, np.inf, None, "0.1", True, [0.1]])
def test_smoothgrad_sigma_must_be_a_finite_non_negative_number(sigma, model, x):
    """sigma=nan once blamed x ("x contains NaN"), None gave a raw numpy error: the message names sigma."""
    with pytest.raises(ValueError, match=r"sigma must be a finite number >= 0 \(the noise level .*\), got"):
        call("smoothgrad", model, x, sigma=sigma)


def test_smoothgrad_sigma_zero_and_numpy_scalars_are_accepted(model, x):
    saliency = call("saliency", model, x)
    np.testing.assert_allclose(call("smoothgrad", model, x, n=2, sigma=0), saliency, rtol=1e-6)
    assert call("smoothgrad", model, x, n=2, sigma=np.float32(0.1)).shape == x.shape


def test_unknown_ig_method_lists_the_valid_ones(model, x):
    with pytest.raises(ValueError, match="unknown method 'simpson'; valid: riemann_left, .*gausslegendre"):
        call("ig", model, x, method="simpson")


@pytest.mark.parametrize("name", ["ig", "deeplift"])
def test_unknown_baseline_lists_the_valid_ones(name, model, x):
    with pytest.raises(ValueError, match="unknown baseline 'pink'; valid: black, white, gray, zeros, blur, uniform"):
        call(name, model, x, baseline="pink")


@pytest.mark.parametrize("name", ["ig", "deeplift"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 3, 8, 8), (2, 2, 8, 8), (8, 9)])
def test_baseline_of_wrong_shape(name, shape, model, x):
    with pytest.raises(ValueError, match=r"baseline of shape .* does not fit the input of shape \(2, 3, 8, 8\)"):
        call(name, model, x, baseline=np.zeros(shape, np.float32))


@pytest.mark.parametrize("name", ["ig", "deeplift"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_baseline(name, value, model, x):
    baseline = np.zeros_like(x)
    baseline[0, 1, 2, 3] = value
    with pytest.raises(ValueError, match="baseline contains NaN or infinite values"):
        call(name, model, x, baseline=baseline)


@pytest.mark.parametrize("name", ["ig", "deeplift"])
@pytest.mark.parametrize("baseline, shown", [(None, "got None"), (["black"], "dtype <U5"),
                                             (np.zeros((3, 1, 1), np.complex64), "dtype complex64")])
def test_baseline_must_be_a_name_or_real_array(name, baseline, shown, model, x):
    with pytest.raises(TypeError, match=f"baseline must be one of black, white, .* or an array.*{shown}"):
        call(name, model, x, baseline=baseline)


@pytest.mark.parametrize("name", ["ig", "deeplift"])
def test_broadcastable_baseline_is_accepted(name, model, x):
    """A (C, 1, 1) or (1, C, H, W) array is a valid baseline: it broadcasts to x."""
    for baseline in (np.zeros((3, 1, 1), np.float32), np.zeros((1, 3, 8, 8), np.float32)):
        np.testing.assert_allclose(call(name, model, x, baseline=baseline), call(name, model, x, baseline="zeros"),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ig", "deeplift"])
def test_pixel_space_baseline_needs_a_spec(name, model, x):
    cut = model.submodel(start=None, end=None)
    cut.spec = None
    with pytest.raises(ValueError, match="needs the model's input spec"):
        call(name, cut, x, baseline="black")


def test_unknown_composite_lists_the_valid_ones(model, x):
    with pytest.raises(ValueError, match="unknown composite 'epsilon_plus'; valid: epsilon_plus_flat, "):
        call("lrp", model, x, composite="epsilon_plus")


@pytest.mark.parametrize("method", ["smoothgrad", "ig"])
@pytest.mark.parametrize("batch_size", [0, -3, 2.5])
def test_batch_size_must_be_positive(method, batch_size, model, x):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        call(method, model, x, batch_size=batch_size)
