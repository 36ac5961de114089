"""minixai.models without torch: torchvision's names and sizes, seeded init, weights in and out, cutting,
capture, and the gradient of whole networks against finite differences."""
import numpy as np
import pytest

from minixai import models
from minixai import weights as weight_store

# torchvision's published learnable-parameter counts (BatchNorm running statistics excluded)
NUM_PARAMS = {"alexnet": 61_100_840, "vgg11": 132_863_336, "vgg16": 138_357_544,
              "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}

# a handful of torchvision's named_modules() names per architecture
TORCHVISION_NAMES = {
    "vgg16": ["features.0", "features.28", "features.29", "features.30", "avgpool", "classifier.0",
              "classifier.2", "classifier.6"],
    "alexnet": ["features.0", "features.10", "features.12", "avgpool", "classifier.0", "classifier.1",
                "classifier.6"],
    "resnet50": ["conv1", "bn1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.downsample.0",
                 "layer1.0.downsample.1", "layer2.3.bn2", "layer3.5.conv3", "layer4.2.conv3", "avgpool", "fc"],
    "resnet18": ["layer1.1.conv2", "layer2.0.downsample.0", "layer4.1.bn2", "fc"],
}


@pytest.fixture(scope="module")
def vgg16():
    return models.vgg16(seed=0)


@pytest.fixture(scope="module")
def resnet50():
    return models.resnet50(seed=0)


def images(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def one_hot(logits, targets):
    g = np.zeros_like(logits)
    g[np.arange(len(logits)), targets] = 1
    return g


# ---- architecture ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["alexnet", "vgg11", "vgg16", "resnet18", "resnet34", "resnet50"])
def test_parameter_count_is_torchvisions(arch):
    model = models.ARCHITECTURES[arch](seed=0)
    assert sum(getattr(layer, attr).size for _, layer, attr in model.parameters()) == NUM_PARAMS[arch]
    assert model.arch == arch


def test_layer_names_are_torchvisions(vgg16, resnet50):
    assert set(TORCHVISION_NAMES["vgg16"]) <= set(vgg16.layer_names())
    assert set(TORCHVISION_NAMES["resnet50"]) <= set(resnet50.layer_names())
    assert set(TORCHVISION_NAMES["alexnet"]) <= set(models.alexnet().layer_names())
    assert set(TORCHVISION_NAMES["resnet18"]) <= set(models.resnet18().layer_names())
    assert "features.31" not in vgg16.layer_names()
    assert "layer1.1.downsample" not in resnet50.layer_names()


def test_layer_types(vgg16, resnet50):
    kinds = {"features.28": "Conv2d", "features.29": "ReLU", "features.30": "MaxPool2d",
             "avgpool": "AdaptiveAvgPool2d", "flatten": "Flatten", "classifier.2": "Dropout",
             "classifier.6": "Linear"}
    assert {name: type(vgg16[name]).__name__ for name in kinds} == kinds
    assert type(resnet50["layer1.0.downsample.0"]).__name__ == "Conv2d"
    assert type(resnet50["layer1.0.downsample.1"]).__name__ == "BatchNorm2d"
    assert resnet50["layer4.2.conv3"].weight.shape == (2048, 512, 1, 1)
    assert resnet50["fc"].weight.shape == (1000, 2048)
    assert vgg16["classifier.0"].weight.shape == (4096, 25088)
    assert resnet50["conv1"].stride == (2, 2) and resnet50["layer2.0.conv2"].stride == (2, 2)


def test_spec_is_imagenet(resnet50):
    spec = resnet50.spec
    assert spec.size == (224, 224)
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert spec.num_classes == 1000
    assert spec.class_names[0] == "tench" and spec.class_names[999] == "toilet tissue"
    assert spec.class_index("goldfish") == 1


def test_num_classes():
    model = models.resnet18(num_classes=10)
    assert model(images((1, 3, 64, 64))).shape == (1, 10)
    assert model.spec.class_names == [f"class {i}" for i in range(10)]
    with pytest.raises(ValueError, match="num_classes"):
        models.resnet18(num_classes=0)


# ---- initialisation ----------------------------------------------------------------------------------
def test_same_seed_same_weights():
    a, b = models.resnet18(seed=0).state_dict(), models.resnet18(seed=0).state_dict()
    c = models.resnet18(seed=1).state_dict()
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["layer1.0.conv1.weight"], c["layer1.0.conv1.weight"])


def test_init_statistics(vgg16, resnet50):
    w = resnet50["layer4.0.conv2"].weight                           # He normal, fan-out: 2 / (512 * 3 * 3)
    assert w.dtype == np.float32
    assert abs(w.std() / np.sqrt(2 / (512 * 9)) - 1) < 0.01 and abs(w.mean()) < 1e-3
    assert np.all(resnet50["layer1.0.bn1"].weight == 1) and np.all(resnet50["layer1.0.bn1"].bias == 0)
    bound = 1 / np.sqrt(2048)                                       # PyTorch's default Linear init
    assert np.abs(resnet50["fc"].weight).max() <= bound and np.abs(resnet50["fc"].bias).max() <= bound
    assert abs(vgg16["classifier.3"].weight.std() / 0.01 - 1) < 0.01   # VGG classifier: N(0, 0.01^2)
    assert np.all(vgg16["classifier.3"].bias == 0) and np.all(vgg16["features.0"].bias == 0)


# ---- weights in and out ------------------------------------------------------------------------------
def test_state_dict_round_trip():
    x = images((2, 3, 64, 64))
    original = models.resnet18(seed=3)
    copy = models.resnet18(weights=original.state_dict())
    assert np.array_equal(copy(x), original(x))
    assert copy.state_dict().keys() == original.state_dict().keys()


def test_npz_round_trip(tmp_path):
    original = models.resnet18(seed=4)
    path = weight_store.save_npz(tmp_path / "r18.npz", original.state_dict(), {"architecture": "resnet18"})
    x = images((1, 3, 64, 64))
    assert np.array_equal(models.resnet18(weights=path)(x), original(x))
    assert np.array_equal(models.resnet18(weights=str(path))(x), original(x))
    with pytest.raises(ValueError, match="resnet18"):
        models.resnet34(weights=path)


def test_npz_metadata_sets_the_spec(tmp_path):
    names = [f"kind {i}" for i in range(10)]
    meta = {"architecture": "resnet18", "class_names": names, "spec": {"mean": [0.5] * 3, "std": [0.25] * 3,
                                                                      "input_size": 128}}
    path = weight_store.save_npz(tmp_path / "r18.npz", models.resnet18(num_classes=10).state_dict(), meta)
    spec = models.resnet18(weights=path, num_classes=10).spec
    assert spec.class_names == names and spec.mean == (0.5,) * 3 and spec.size == (128, 128)


def test_pth_and_imagenet_go_through_minixai_weights(tmp_path, monkeypatch):
    state = models.resnet18(seed=5).state_dict()
    (tmp_path / "r18.pth").write_bytes(b"")
    calls = []

    def load_pth(path):
        calls.append(("load_pth", path))
        return state

    def fetch(name):
        calls.append(("fetch", name))
        return "cached.npz"

    def load_npz(path):
        calls.append(("load_npz", path))
        return state, {"architecture": "resnet18"}

    monkeypatch.setattr(weight_store, "load_pth", load_pth)
    monkeypatch.setattr(weight_store, "fetch", fetch)
    monkeypatch.setattr(weight_store, "load_npz", load_npz)
    models.resnet18(weights=tmp_path / "r18.pth")
    models.resnet18(weights="imagenet")
    models.load("resnet18")                                      # "pretrained" means ImageNet here
    assert calls == [("load_pth", tmp_path / "r18.pth"), ("fetch", "resnet18"), ("load_npz", "cached.npz"),
                     ("fetch", "resnet18"), ("load_npz", "cached.npz")]


def test_imagenet_offline_error_propagates(monkeypatch):
    def offline(name):
        raise weight_store.WeightsNotAvailableError(f"put {name}.pth into ~/.cache/torch/hub/checkpoints")
    monkeypatch.setattr(weight_store, "fetch", offline)
    with pytest.raises(weight_store.WeightsNotAvailableError, match="resnet18"):
        models.resnet18(weights="imagenet")


def test_load_state_dict_names_every_problem():
    state = models.resnet18(seed=0).state_dict()
    del state["fc.bias"]
    state["fc.extra"] = np.zeros(3, np.float32)
    state["layer1.0.conv1.weight"] = np.zeros((64, 64, 1, 1), np.float32)
    with pytest.raises(ValueError) as error:
        models.resnet18(weights=state)
    message = str(error.value)
    assert "missing keys: fc.bias" in message
    assert "unexpected keys: fc.extra" in message
    assert "layer1.0.conv1.weight: expected (64, 64, 3, 3), got (64, 64, 1, 1)" in message


def test_bad_weights_arguments(tmp_path):
    with pytest.raises(ValueError, match="imagenet"):
        models.resnet18(weights="imagenet1k")
    with pytest.raises(TypeError, match="weights"):
        models.resnet18(weights=3)
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        models.resnet18(weights=tmp_path / "nothing.npz")


def test_load_by_name():
    assert models.load("resnet18", weights=None, seed=2).arch == "resnet18"
    with pytest.raises(ValueError, match="unknown model 'resnet101'; valid: alexnet, vgg11, .*resnet50"):
        models.load("resnet101")


def test_shapes_model_builds_with_its_spec():
    model = models.load("shapes", weights=None, seed=1)
    assert model.spec.class_names == ["circle", "square", "triangle", "cross", "star"]
    assert model(np.zeros((2, 3, 64, 64), np.float32)).shape == (2, 5)


# ---- forward, cutting, capture -----------------------------------------------------------------------
def test_non_square_inputs(vgg16):
    x = images((1, 3, 64, 96))
    acts = vgg16.activations(x, ["features.30", "avgpool", "classifier.6"])
    assert acts["features.30"].shape == (1, 512, 2, 3)
    assert acts["avgpool"].shape == (1, 512, 7, 7) and acts["classifier.6"].shape == (1, 1000)
    resnet = models.resnet18()
    assert resnet.activations(images((2, 3, 96, 64)), "layer4")["layer4"].shape == (2, 512, 3, 2)
    assert models.alexnet().activations(images((1, 3, 63, 95)), "features.12")["features.12"].shape == (1, 256, 1, 2)


def test_submodel_composes():
    model, x = models.resnet18(seed=0), images((2, 3, 64, 64))
    acts = {k: v.copy() for k, v in model.activations(x, ["layer2", "layer3"]).items()}
    sub = model.submodel(start="layer2", end="layer3")
    np.testing.assert_allclose(sub(acts["layer2"]), acts["layer3"], rtol=1e-6, atol=1e-6)
    head, tail = model.submodel(end="layer2"), model.submodel(start="layer2")
    np.testing.assert_allclose(tail(head(x)), model(x), rtol=1e-6, atol=1e-6)


def test_submodel_inside_vgg_features(vgg16):
    x = images((1, 3, 32, 48))
    acts = {k: v.copy() for k, v in vgg16.activations(x, ["features.16", "features.23"]).items()}
    sub = vgg16.submodel(start="features.16", end="features.23")
    np.testing.assert_allclose(sub(acts["features.16"]), acts["features.23"], rtol=1e-6, atol=1e-6)


def test_capture_activations_and_gradients():
    model, x = models.resnet18(seed=0), images((2, 3, 64, 64))
    logits = model(x, capture=["layer4", "layer3.1.conv2"])
    model.backward(one_hot(logits, [3, 9]))
    out, grad = model.captured("layer4")
    out, grad = out.copy(), grad.copy()
    assert out.shape == grad.shape == (2, 512, 2, 2)
    assert model.captured("layer3.1.conv2")[1].shape == (2, 256, 4, 4)
    # the gradient arriving at layer4 is the input gradient of the network after layer4
    tail = model.submodel(start="layer4")
    np.testing.assert_allclose(tail(out), logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tail.backward(one_hot(logits, [3, 9])), grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_input_gradient_matches_finite_differences(arch):
    """<grad f(x), v> = (f(x + eps v) - f(x - eps v)) / (2 eps), float64, for a random direction v."""
    model = models.ARCHITECTURES[arch](seed=0).astype(np.float64)
    for name, layer in model.named_layers():                  # non-trivial batch norm
        if type(layer).__name__ == "BatchNorm2d":
            rng = np.random.default_rng(len(name))
            layer.running_mean = rng.normal(0, 0.1, layer.num_features)
            layer.running_var = rng.uniform(0.5, 1.5, layer.num_features)
            layer.bias = rng.normal(0, 0.1, layer.num_features)
    x, v, targets = images((2, 3, 32, 40), 0, np.float64), images((2, 3, 32, 40), 1, np.float64), [1, 2]
    logits = model(x)
    grad = model.backward(one_hot(logits, targets))
    eps = 1e-6
    f = [model(x + s * eps * v)[[0, 1], targets].sum() for s in (1, -1)]
    np.testing.assert_allclose((f[0] - f[1]) / (2 * eps), (grad * v).sum(), rtol=1e-5)
