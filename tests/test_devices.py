"""The GPU path, tested on every machine: one test class, run on a stand-in device everywhere and on CuPy
when there is a GPU (as early tinygrad reran its CPU tests on the GPU).

- `TestFakeDevice` runs the class on tests/fake_device.py: NumPy behind a wrapper that refuses implicit
  conversions exactly as CuPy does, so CI (no GPU) proves the GPU path uses only its inputs' array module;
- `TestCuda` runs it on CuPy arrays on a real GPU; without CuPy or a GPU it is skipped with the reason.

Each checks, on a model moved with `model.to(device)`: every layer's output and input gradient against the
reference kernels on the CPU, every method's result against the CPU's (float64: 1e-10 relative), the
axioms (IG completeness, DeepLIFT's summation to delta) on the device, that results come back as the kind
of array they were given, and that a GPU array given to a CPU model is refused with a clear error.
"""
import numpy as np
import pytest

import minixai as mx
from minixai import models
from minixai.backend import array_module, to_host
from minixai.layers import (Add, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear,
                            MaxPool2d, ReLU)
from minixai.rules import Gradient
from minixai.tape import Tape

from fake_device import fake

TOL = 1e-10

# every method of mx.METHODS, with options that keep it quick. DeepLIFT's max-pool rule picks each window's
# winner in the baseline too, and a black baseline makes flat maps whose windows tie to the last bit: two
# correct kernels break those ties apart (the CPU's own numba and numpy kernels differ by 0.4% there), so
# it gets a noise baseline, as IG's path points do not tie
OPTIONS = {"smoothgrad": {"n": 3, "progress": False}, "ig": {"steps": 6, "progress": False},
           "deeplift": {"baseline": "uniform"},
           "occlusion": {"window": (3, 16, 16), "stride": (3, 16, 16), "progress": False},
           "rise": {"n": 20, "progress": False}, "lime": {"n": 12, "progress": False},
           "kernel_shap": {"n": 12, "progress": False}, "gradient_shap": {"n": 3, "progress": False},
           "scorecam": {"progress": False}, "ablationcam": {"progress": False}}


def options(method, x):
    """OPTIONS for `method` on the images x; DeepLiftShap gets two noise baselines (not black: see above)."""
    if method == "deeplift_shap":
        return {"baselines": np.random.default_rng(9).uniform(-1, 1, (2, *x.shape[1:])).astype(x.dtype),
                "progress": False}
    return OPTIONS.get(method, {})


def cupy_or_reason():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        return cupy, None
    except Exception as e:                      # no CuPy, no driver or no device
        return None, f"no CuPy with a GPU here ({type(e).__name__}: {e})"


def relative(a, b):
    a, b = to_host(a), to_host(b)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def small_resnet(seed=0):
    """ResNet-18 with random batch-norm statistics, float64 (32x32 inputs keep it quick)."""
    model = models.resnet18(seed=seed)
    rng = np.random.default_rng(seed)
    for _, layer in model.named_layers():
        if isinstance(layer, BatchNorm2d):
            n = layer.num_features
            layer.weight, layer.bias = rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)
            layer.running_mean, layer.running_var = rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)
    return model.astype(np.float64)


@pytest.fixture(scope="module")
def cases():
    """(name, float64 model, x, targets). Random images rather than shapes-world ones: a flat background makes
    max-pool windows whose values tie to the last bit, and two correct kernels may break such a tie apart."""
    rng = np.random.default_rng(5)
    return [("shapes", models.load("shapes").astype(np.float64), rng.standard_normal((2, 3, 64, 64)), np.array([0, 3])),
            ("resnet18", small_resnet(), rng.standard_normal((2, 3, 32, 32)), np.array([1, 7]))]


class DeviceChecks:
    """The checks; a subclass sets `device` (what model.to takes) and `xp` (its array module)."""
    device = xp = None

    # ---- layers ------------------------------------------------------------------------------------------
    @pytest.mark.parametrize("make, shape", [
        (lambda: Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 7, 6)),
        (lambda: Conv2d(3, 4, (1, 3), dilation=2), (2, 3, 5, 8)),
        (lambda: Linear(5, 3), (2, 5)),
        (ReLU, (2, 3, 4, 4)),
        (lambda: MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 7, 6)),
        (lambda: AvgPool2d(3, stride=1, padding=1), (2, 3, 5, 5)),
        (lambda: AdaptiveAvgPool2d((2, 3)), (2, 3, 5, 7)),
        (Flatten, (2, 3, 2, 2)),
        (lambda: BatchNorm2d(3), (2, 3, 4, 4)),
        (Dropout, (2, 3)),
    ])
    def test_layer_matches_the_reference_kernels(self, make, shape):
        rng = np.random.default_rng(0)
        layer = make()
        for attr in (*layer.parameters(), *layer.buffers()):
            value = getattr(layer, attr)
            if value is not None:
                setattr(layer, attr, rng.uniform(0.5, 1.5, value.shape))
        x = rng.standard_normal(shape)
        with mx.use_backend("reference"):
            out, dx = self._pass(layer, x, rng)
        for attr in (*layer.parameters(), *layer.buffers()):
            if getattr(layer, attr) is not None:
                setattr(layer, attr, self.xp.asarray(getattr(layer, attr)))
        out_d, dx_d = self._pass(layer, self.xp.asarray(x), rng)
        assert array_module(out_d) is self.xp and array_module(dx_d) is self.xp
        assert relative(out_d, out) <= TOL and relative(dx_d, dx) <= TOL

    @staticmethod
    def _pass(layer, x, rng):
        tape = Tape()
        out = tape.forward(layer, x)
        dout = array_module(out).asarray(np.random.default_rng(1).standard_normal(out.shape))
        return out, tape.backward(layer, dout, Gradient())

    def test_residual_join(self):
        a, b = (np.random.default_rng(i).standard_normal((2, 3, 4, 4)) for i in range(2))
        tape = Tape()
        out = tape.forward(Add(), self.xp.asarray(a), self.xp.asarray(b))
        assert relative(out, a + b) == 0

    # ---- models and methods ------------------------------------------------------------------------------
    def on_device(self, model):
        import copy
        return copy.deepcopy(model).to(self.device)

    @pytest.mark.parametrize("method", sorted(mx.METHODS))
    def test_method_matches_cpu(self, cases, method):
        for name, model, x, y in cases:
            expected = mx.METHODS[method](model, x, y, **options(method, x))
            device_model = self.on_device(model)
            got = mx.METHODS[method](device_model, x, y, **options(method, x))
            assert isinstance(got, np.ndarray), "a NumPy x gets a NumPy result"
            on_device = mx.METHODS[method](device_model, self.xp.asarray(x), y, **options(method, x))
            assert array_module(on_device) is self.xp, "a device x gets a device result"
            assert relative(got, expected) <= TOL, (name, method)
            assert relative(on_device, expected) <= TOL, (name, method)

    def test_axioms_hold_on_the_device(self, cases):
        """IG's completeness gap (eq. 5) is the CPU's and shrinks with the steps; DeepLIFT sums to delta."""
        _, model, x, y = cases[1]
        device_model = self.on_device(model)
        xd = self.xp.asarray(x)
        gaps = []
        for steps in (8, 64):
            _, gap = mx.integrated_gradients(device_model, xd, y, baseline="zeros", steps=steps,
                                             return_delta=True, progress=False)
            _, cpu_gap = mx.integrated_gradients(model, x, y, baseline="zeros", steps=steps, return_delta=True,
                                                 progress=False)
            assert relative(gap, cpu_gap) <= 1e-8
            gaps.append(np.abs(to_host(gap)).max())
        assert gaps[1] < gaps[0]
        _, delta = mx.deeplift(device_model, xd, y, baseline="zeros", return_delta=True)
        assert np.abs(to_host(delta)).max() <= 1e-9

    def test_counterfactual_filters_and_summit_match_cpu(self, cases):
        _, model, x, y = cases[0]
        device_model = self.on_device(model)
        options = dict(lr=0.05, steps=5, threshold=1.0, progress=False)
        image = mx.data.shapes.generate(n=1, seed=4).images.astype(np.float64)      # pixels in [0, 1]
        cpu, dev = (mx.counterfactual(m, image, 2, **options) for m in (model, device_model))
        assert isinstance(dev.image, np.ndarray) and relative(dev.image, cpu.image) <= TOL
        cpu, dev = (mx.maximize_filter(m, "features.6", 3, steps=3, size=24) for m in (model, device_model))
        assert relative(dev.raw, cpu.raw) <= 1e-5                     # float32: the start image is float32
        layers = ["features.4", "features.7"]
        cpu, dev = (mx.summit(m, x, layers, clusters=3, steps=4, progress=False) for m in (model, device_model))
        assert [n.channels for n in dev.nodes] == [n.channels for n in cpu.nodes]
        assert np.allclose([e.weight for e in dev.edges], [e.weight for e in cpu.edges], rtol=1e-9, atol=1e-12)

    def test_moving_a_model_and_refusing_to_mix(self, cases):
        _, model, x, y = cases[0]
        device_model = self.on_device(model)
        assert all(array_module(v) is self.xp for v in device_model.state_dict().values())
        back = device_model.to("cpu")
        assert back.device == "cpu" and all(isinstance(v, np.ndarray) for v in back.state_dict().values())
        with pytest.raises(TypeError, match="weights are on the CPU"):
            mx.saliency(model, self.xp.asarray(x), y)


class TestFakeDevice(DeviceChecks):
    device = xp = fake

    def test_the_stand_in_refuses_what_cupy_refuses(self):
        from fake_device import HostArrayError
        d = fake.asarray(np.ones(3))
        with pytest.raises(HostArrayError):
            np.asarray(d)
        with pytest.raises(HostArrayError):
            d + np.ones(3)
        assert float((d * 2).sum()) == 6.0 and isinstance(d.get(), np.ndarray)


_cupy, _why = cupy_or_reason()


@pytest.mark.skipif(_cupy is None, reason=_why or "")
class TestCuda(DeviceChecks):
    device, xp = "cuda", _cupy
