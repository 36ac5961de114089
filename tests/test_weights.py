"""Tests for minixai.weights: the .npz format, the registry, fetching and the cache, offline messages.
The .pth reader is tested in tests/test_weights_pth.py.
"""

import hashlib
import io
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest

from minixai import weights as W
from minixai.weights import registry
from weights_helpers import EXPECTED, FIXTURES, ODD_KINDS, Touch, odd_path, within

MODEL_KEYS = ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
              "1.num_batches_tracked", "4.weight", "4.bias"]


# ---------------------------------------------------------------- the .npz format

def test_npz_round_trip(tmp_path):
    state = W.load_pth(FIXTURES / "tiny_zip.pth")
    state = {k: state[k] for k in MODEL_KEYS + ["extra.double", "extra.half", "extra.int32", "extra.slice"]}
    meta = {"architecture": "tiny", "source": "tiny_zip.pth", "sha256": "ab" * 32, "class_names": ["a", "b"]}
    path = W.save_npz(tmp_path / "tiny.npz", state, meta)
    loaded, loaded_meta = W.load_npz(path)
    assert list(loaded) == list(state)
    for key, value in loaded.items():
        want = EXPECTED[key]
        assert value.dtype == (np.int64 if want.dtype.kind in "iu" else np.float32), key
        np.testing.assert_array_equal(value, want.astype(value.dtype), err_msg=key)
    assert loaded_meta == {**meta, "format": "minixai-weights/1"}
    assert W.read_meta(path) == loaded_meta
    assert not [p for p in tmp_path.iterdir() if p.name != "tiny.npz"]   # no temporary files left


@pytest.mark.parametrize("state, error", [
    ({"w": np.array([1j])}, TypeError), ({"w": [1.0]}, TypeError),
    ({"__meta__": np.zeros(1)}, ValueError), ({"a/b": np.zeros(1)}, ValueError),
])
def test_npz_refuses_what_it_cannot_store(tmp_path, state, error):
    with pytest.raises(error):
        W.save_npz(tmp_path / "x.npz", state, {})
    assert not (tmp_path / "x.npz").exists()


def test_npz_object_arrays_are_refused_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = Touch(marker)
    np.savez(tmp_path / "evil.npz", w=np.zeros(2, np.float32), __meta__=evil)
    for read in (W.load_npz, W.read_meta):
        with pytest.raises(ValueError, match="evil.npz"):
            read(tmp_path / "evil.npz")
    assert not marker.exists()


@pytest.mark.parametrize("meta", [np.frombuffer(b"\xff\xfe", np.uint8), np.frombuffer(b"[1, 2]", np.uint8),
                                  np.zeros(3, np.float32)])
def test_npz_meta_must_be_a_json_object(tmp_path, meta):
    np.savez(tmp_path / "bad.npz", w=np.zeros(2, np.float32), __meta__=meta)
    with pytest.raises(ValueError, match="__meta__"):
        W.load_npz(tmp_path / "bad.npz")


def test_npz_without_meta_and_broken_npz(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(2, np.float32))
    state, meta = W.load_npz(tmp_path / "plain.npz")
    assert meta == {} and state["w"].tolist() == [1.0, 1.0]
    (tmp_path / "cut.npz").write_bytes((tmp_path / "plain.npz").read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.npz"):
        W.load_npz(tmp_path / "cut.npz")


def test_npz_reads_what_numpy_writes(tmp_path):
    """The reader parses .npy headers itself: every layout numpy writes comes back exactly."""
    arrays = {"half": np.arange(6, dtype=np.float16).reshape(2, 3), "double": np.linspace(-1, 1, 5),
              "fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
              "big_endian": np.arange(4, dtype=">f4"), "uint16": np.arange(3, dtype=np.uint16),
              "flags": np.array([True, False]), "scalar": np.float32(2.5), "empty": np.zeros((0, 3), np.float32)}
    for save in (np.savez, np.savez_compressed):
        path = tmp_path / f"{save.__name__}.npz"
        save(path, **arrays)
        state, meta = W.load_npz(path)
        assert meta == {} and list(state) == list(arrays)
        for key, want in arrays.items():
            assert state[key].dtype == np.asarray(want).dtype.newbyteorder("="), key
            np.testing.assert_array_equal(state[key], want, err_msg=key)


@pytest.mark.parametrize("value, message", [
    (np.array([1 + 2j, 3j], np.complex64), "'fc.weight' has dtype complex64; weights must be real"),
    (np.array([0.5, np.nan, np.inf, np.nan], np.float32), r"'fc.weight' \(4,\) holds 2 NaN and 1 infinite"),
    (np.array(["a"]), "dtype <U1"),
])
def test_npz_refuses_complex_and_non_finite_weights_naming_the_entry(tmp_path, value, message):
    np.savez(tmp_path / "w.npz", **{"fc.weight": value, "fc.bias": np.zeros(2, np.float32)})
    with pytest.raises(W.WeightsFileError, match=message) as caught:
        W.load_npz(tmp_path / "w.npz")
    assert str(tmp_path / "w.npz") in str(caught.value)


@pytest.mark.parametrize("kind", ODD_KINDS)
@pytest.mark.parametrize("read", [W.load_pth, W.load_npz, W.load, W.info, W.read_meta, W.sha256sum],
                         ids=lambda f: f.__name__)
def test_only_regular_files_are_opened(tmp_path, kind, read):
    path = odd_path(kind, tmp_path, ".npz")
    with within(10), pytest.raises(W.WeightsFileError, match=ODD_KINDS[kind]) as caught:
        read(path)
    assert str(path) in str(caught.value)


def test_a_symlink_to_a_regular_file_is_fine(tmp_path):
    link = tmp_path / "link.pth"
    link.symlink_to(FIXTURES / "tiny_zip.pth")
    np.testing.assert_array_equal(W.load_pth(link)["0.weight"], EXPECTED["0.weight"])


def test_convert_checks_keys_and_shapes_before_writing(tmp_path):
    src, out = FIXTURES / "tiny_zip.pth", tmp_path / "x.npz"
    shapes = {k: v.shape for k, v in EXPECTED.items()}
    wrong = {**shapes, "0.weight": (8, 3, 3, 3), "head.weight": (5, 4)}
    del wrong["4.bias"]
    with pytest.raises(W.WeightsFileError, match=r"does not fit tinynet: missing keys: head.weight; "
                                                 r"unexpected keys: 4.bias; wrong shapes: 0.weight: tinynet "
                                                 r"needs \(8, 3, 3, 3\), the file has \(4, 3, 3, 3\)"):
        W.convert(src, out, "tinynet", expected_shapes=wrong)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert W.convert(src, out, "tinynet", expected_shapes=shapes) == out and out.exists()


# ---------------------------------------------------------------- registry, cache and fetch

def test_registry_lists_the_classic_torchvision_checkpoints():
    files = {c.name: c.filename for c in W.list_known()}
    assert files == {"alexnet": "alexnet-owt-7be5be79.pth", "vgg11": "vgg11-8a719046.pth",
                     "vgg16": "vgg16-397923af.pth", "resnet18": "resnet18-f37072fd.pth",
                     "resnet34": "resnet34-b627a593.pth", "resnet50": "resnet50-0676ba61.pth",
                     "inception_v3": "inception_v3_google-0cc3c7bd.pth"}
    for c in W.list_known():
        assert c.url == "https://download.pytorch.org/models/" + c.filename
        assert len(c.sha256_prefix) == 8 and c.filename.endswith(f"-{c.sha256_prefix}.pth")
        assert c.reported_sha256 is None or c.reported_sha256.startswith(c.sha256_prefix)
        assert len(c.class_names) == 1000
        assert (c.class_names[0], c.class_names[-1]) == ("tench", "toilet tissue")
        sizes = (299, 342) if c.name == "inception_v3" else (224, 256)   # torchvision's presets
        assert c.spec == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                          "input_size": sizes[0], "resize_size": sizes[1]}
    with pytest.raises(ValueError, match="known: alexnet, inception_v3, resnet18"):
        W.get("resnet5")


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty torch and minixai caches, a private registry, and no network unless a test allows it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MINIXAI_HOME", str(tmp_path / "minixai"))
    monkeypatch.setattr(registry, "_KNOWN", dict(registry._KNOWN))

    def no_network(*args, **kwargs):
        raise AssertionError("this test must not go online")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


def tiny_entry(prefix=None, name="tiny"):
    """Register the zip fixture as a checkpoint, named like torchvision's files: tiny-<sha256 prefix>.pth."""
    prefix = prefix or W.sha256sum(FIXTURES / "tiny_zip.pth")[:8]
    url = f"https://example.invalid/m/tiny-{prefix}.pth"
    return W.register(W.Checkpoint(name=name, arch="tinynet", url=url, class_names=("a", "b", "c", "d", "e"),
                                   mean=(0.5,) * 3, std=(0.25,) * 3))


def converted_like_torch(path):
    """The .npz holds torch's .numpy() of every fixture entry: floats as float32, integers as int64."""
    state, meta = W.load_npz(path)
    assert list(state) == list(EXPECTED)
    for key, want in EXPECTED.items():
        dtype = {"f": np.float32, "i": np.int64, "u": np.int64, "b": np.bool_}[want.dtype.kind]
        assert state[key].dtype == dtype, key
        np.testing.assert_array_equal(state[key], want.astype(dtype), err_msg=key)
    return meta


def files_under(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize("where", ["torch/hub/checkpoints", "minixai/checkpoints"])
def test_fetch_reuses_a_local_pth_and_converts_it(caches, where):
    entry = tiny_entry()
    local = caches / where / entry.filename
    local.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "tiny_zip.pth", local)

    out = W.fetch("tiny", progress=False)
    npz_name = entry.filename.replace(".pth", ".npz")
    assert out == caches / "minixai" / "weights" / npz_name
    meta = converted_like_torch(out)
    assert meta["architecture"] == "tinynet" and meta["source"] == entry.filename and meta["url"] == entry.url
    assert meta["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert meta["class_names"] == ["a", "b", "c", "d", "e"] and meta["spec"]["std"] == [0.25] * 3
    reused_in_place = [f"checkpoints/{entry.filename}"] if where.startswith("minixai") else []
    assert files_under(caches / "minixai") == sorted([f"weights/{npz_name}"] + reused_in_place)

    local.unlink()   # from now on the cached .npz is enough
    assert W.fetch("tiny", progress=False, download=False) == out


def test_fetch_refuses_a_file_with_the_wrong_hash_prefix(caches):
    entry = tiny_entry(prefix="deadbeef")
    local = caches / "torch/hub/checkpoints" / entry.filename
    local.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "tiny_zip.pth", local)
    with pytest.raises(W.ChecksumError, match="must start with deadbeef"):
        W.fetch("tiny", progress=False)
    assert local.exists()                           # the user's file is left alone
    assert files_under(caches / "minixai") == []    # and nothing was converted


def test_fetch_refuses_a_cached_npz_of_another_file(caches):
    entry = tiny_entry()
    W.save_npz(W.npz_path("tiny"), {"w": np.zeros(1)}, {"sha256": "0" * 64})
    with pytest.raises(W.ChecksumError, match=entry.filename):
        W.fetch("tiny", progress=False)


def test_fetch_offline_says_which_file_goes_where(caches, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(W.WeightsNotAvailableError) as caught:
        W.fetch("resnet50", progress=False)
    message = str(caught.value)
    for text in ["resnet50-0676ba61.pth", "https://download.pytorch.org/models/resnet50-0676ba61.pth",
                 str(caches / "torch" / "hub" / "checkpoints"), str(caches / "minixai" / "checkpoints"),
                 "no route to host"]:
        assert text in message
    assert files_under(caches / "minixai") == []    # no .partial left behind


def test_fetch_without_download_stays_offline(caches):
    with pytest.raises(W.WeightsNotAvailableError, match="resnet18-f37072fd.pth"):
        W.fetch("resnet18", download=False)


class FakeResponse(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.mark.parametrize("served, ok", [("tiny_zip.pth", True), ("tiny_legacy.pth", False)])
def test_fetch_downloads_verifies_and_converts(caches, monkeypatch, served, ok):
    entry = tiny_entry()    # the hash prefix of tiny_zip.pth
    data = (FIXTURES / served).read_bytes()
    requested = []

    def serve(url, timeout=None):
        requested.append(url)
        return FakeResponse(data)
    monkeypatch.setattr(urllib.request, "urlopen", serve)
    if ok:
        converted_like_torch(W.fetch("tiny", progress=True))
        assert (caches / "minixai" / "checkpoints" / entry.filename).read_bytes() == data
    else:
        with pytest.raises(W.ChecksumError):
            W.fetch("tiny", progress=False)
        assert files_under(caches / "minixai") == []     # the bad download is deleted
    assert requested == [entry.url]


def test_convert_and_info(tmp_path):
    src = FIXTURES / "tiny_legacy.pth"
    learnable = sum(v.size for k, v in EXPECTED.items() if not k.startswith(("1.running", "1.num_batches")))
    with pytest.raises(ValueError, match="learnable parameters"):
        W.convert(src, tmp_path / "x.npz", "tinynet", expected_params=learnable + 1)
    out = W.convert(src, tmp_path / "x.npz", "tinynet", expected_params=learnable)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert W.info(out) == {"path": str(out), "format": "npz", "architecture": "tinynet",
                           "source": "tiny_legacy.pth", "sha256": digest, "keys": len(EXPECTED),
                           "params": learnable, "classes": None, "bytes": out.stat().st_size}
    about_pth = W.info(src)
    assert (about_pth["format"], about_pth["sha256"], about_pth["params"]) == ("pth", digest, learnable)


def test_load_dispatches_on_content(tmp_path):
    copy = tmp_path / "weights.bin"           # no telling suffix: the content decides
    shutil.copy(FIXTURES / "tiny_zip.pth", copy)
    state, meta = W.load(copy)
    assert meta["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    out = W.save_npz(tmp_path / "w.data", {"w": np.ones(2)}, {"architecture": "x"})
    assert W.load(out)[1]["architecture"] == "x"
    np.testing.assert_array_equal(state["0.weight"], EXPECTED["0.weight"])
