"""Tests for minixai.weights' torch-free .pth reader and its restricted unpickler: zip and legacy files,
refused pickles, corrupt and wrong files.

Expected values come from torch itself: tests/fixtures/tiny_expected.npz holds each tensor's `.numpy()`,
written by tests/fixtures/make_pth_fixtures.py together with the .pth files. Hand-crafted files
(fixtures/craft_pth.py) cover what torch no longer writes and what it never writes (hostile pickles).
"""

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures import craft_pth as craft
from minixai import weights as W
from minixai.weights.pth import tensor_array
from minixai.weights.standins import STORAGE_TYPES, StorageRef, TensorRef
from weights_helpers import EXPECTED, FIXTURES, Touch


# ---------------------------------------------------------------- reading what torch wrote

@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth", "tiny_wrapped.pth"])
def test_reads_torch_files_exactly(name):
    state = W.load_pth(FIXTURES / name)
    assert list(state) == list(EXPECTED)
    for key, want in EXPECTED.items():
        got = state[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)
        assert got.flags.c_contiguous and got.flags.writeable and got.flags.owndata, key


def test_views_of_one_storage_are_independent_copies():
    state = W.load_pth(FIXTURES / "tiny_legacy.pth")
    before = state["extra.slice"].copy()
    state["extra.base"][:] = -1.0      # the slice was cut from the same torch storage
    np.testing.assert_array_equal(state["extra.slice"], before)


def test_reader_does_not_need_torch():
    """Load the weights package in a fresh interpreter where any import of torch fails."""
    probe = r"""
import importlib.abc, importlib.util, sys
attempts = []
class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            attempts.append(name)
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, BlockTorch())
import numpy as np
package_dir, fixtures = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location(
    "weights_probe", package_dir + "/__init__.py", submodule_search_locations=[package_dir])
weights = importlib.util.module_from_spec(spec)
sys.modules["weights_probe"] = weights
spec.loader.exec_module(weights)
expected = np.load(fixtures + "/tiny_expected.npz")
for name in ("tiny_zip.pth", "tiny_legacy.pth"):
    state = weights.load_pth(fixtures + "/" + name)
    assert sorted(state) == sorted(expected.files), name
    assert all(np.array_equal(state[k], expected[k]) for k in expected.files), name
assert attempts == [] and "torch" not in sys.modules, attempts
print("torch-free ok")
"""
    package_dir = Path(W.__file__).parent
    done = subprocess.run([sys.executable, "-c", probe, str(package_dir), str(FIXTURES)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch-free ok" in done.stdout


# ---------------------------------------------------------------- formats torch no longer writes

def test_legacy_rebuild_tensor_v1_and_storage_views(tmp_path):
    root = np.arange(20, dtype="<f8")
    old = craft.storage("7", "DoubleStorage", 20, legacy=True)
    view = craft.storage("7", "DoubleStorage", 20, view=("8", 5, 10), legacy=True,  # elements 5..14
                         module="torch.cuda")  # saved from a GPU: same bytes, read on the CPU
    obj = {"old": craft.tensor(old, 3, (2, 2), (1, 4), rebuild="_rebuild_tensor"),
           "view": craft.tensor(view, 1, (3,), (3,))}
    path = craft.write_legacy(tmp_path / "old.pth", obj, {"7": (20, root.tobytes())})
    state = W.load_pth(path)
    np.testing.assert_array_equal(state["old"], [[3, 7], [4, 8]])
    np.testing.assert_array_equal(state["view"], [6, 9, 12])      # view[1::3] = root[5:15][1::3]


def test_big_endian_zip(tmp_path):
    values = np.array([1.5, -2.25, 3e-3], dtype=np.float32)
    obj = {"w": craft.tensor(craft.storage("0", "FloatStorage", 3), 0, (3,), (1,))}
    path = craft.write_zip(tmp_path / "be.pth", obj, {"0": values.astype(">f4").tobytes()}, byteorder="big")
    got = W.load_pth(path)["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, values)


# ---------------------------------------------------------------- hostile files are refused, never run

def test_hostile_zip_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = craft.write_zip(tmp_path / "evil.pth", {"w": Touch(marker)})
    with pytest.raises(W.UnsafeCheckpointError, match=r"'posix\.system'|'nt\.system'") as caught:
        W.load_pth(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert not marker.exists()
    # control: the file is really hostile, plain pickle would have run the command
    with zipfile.ZipFile(path) as archive:
        pickle.loads(archive.read("archive/data.pkl"))
    assert marker.exists()


@pytest.mark.parametrize("where", ["sys_info", "object", "key_list", "inside_tensor"])
def test_hostile_legacy_checkpoint_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    good = craft.tensor(craft.storage("0", "FloatStorage", 1, legacy=True), 0, (), ())
    header = (craft.MAGIC_NUMBER, 1001, Touch(marker) if where == "sys_info" else craft.SYS_INFO)
    obj = {"w": Touch(marker) if where == "object" else good}
    if where == "inside_tensor":  # the autograd hooks argument of _rebuild_tensor_v2
        rebuild = craft.Global("torch._utils", "_rebuild_tensor_v2")
        storage = craft.storage("0", "FloatStorage", 1, legacy=True)
        obj = {"w": craft.Call(rebuild, storage, 0, (), (), False, Touch(marker))}
    keys = Touch(marker) if where == "key_list" else None
    path = craft.write_legacy(tmp_path / "evil.pth", obj, {"0": (1, b"\0\0\0\0")}, header=header, keys=keys)
    with pytest.raises(W.UnsafeCheckpointError, match="system"):
        W.load_pth(path)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("builtins", "getattr"), ("torch", "load"),
    ("torch.nn.modules.conv", "Conv2d"), ("numpy.core.multiarray", "_reconstruct"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"), ("collections", "defaultdict"),
])
def test_every_other_global_is_refused_by_name(tmp_path, module, name):
    path = craft.write_zip(tmp_path / "other.pth", {"w": craft.Call(craft.Global(module, name), "x")})
    with pytest.raises(W.UnsafeCheckpointError, match=f"'{module}.{name}'"):
        W.load_pth(path)


def test_stand_ins_are_inert(tmp_path):
    """The allowed storage types are tokens: calling one is an error, not a construction."""
    path = craft.write_zip(tmp_path / "call.pth", {"w": craft.Call(craft.Global("torch", "FloatStorage"), 3)})
    with pytest.raises(ValueError, match=str(path)):
        W.load_pth(path)


@pytest.mark.parametrize("pid", [("module", "torchvision.models.VGG", "vgg.py", "source"), "storage", ()])
def test_only_storage_persistent_ids(tmp_path, pid):
    pid = pid if isinstance(pid, tuple) else (pid,)
    path = craft.write_zip(tmp_path / "pid.pth", {"w": craft.Pid(*pid)})
    with pytest.raises(W.UnsafeCheckpointError):
        W.load_pth(path)


def test_out_of_bounds_tensor_is_refused(tmp_path):
    obj = {"w": craft.tensor(craft.storage("0", "FloatStorage", 6), 1, (3,), (2,))}   # wants element 5.. ok
    obj["x"] = craft.tensor(craft.storage("0", "FloatStorage", 6), 2, (3,), (2,))    # wants element 6
    path = craft.write_zip(tmp_path / "oob.pth", obj, {"0": np.zeros(6, np.float32).tobytes()})
    with pytest.raises(ValueError, match="reaches element 6 of a storage of 6"):
        W.load_pth(path)


@settings(max_examples=200, deadline=None)
@given(numel=st.integers(1, 40), offset=st.integers(0, 45),
       dims=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 12)), max_size=3))
def test_tensor_cut_matches_index_formula(numel, offset, dims):
    """Element (i_0..i_k) is storage[offset + sum_j i_j * stride_j]; anything past the end is refused."""
    size = tuple(n for n, _ in dims)
    stride = tuple(s for _, s in dims)
    storage = np.arange(numel, dtype=np.float32) * 10
    ref = TensorRef(StorageRef("0", STORAGE_TYPES["FloatStorage"], 0, numel), offset, size, stride)
    index = offset + sum(np.indices(size, dtype=np.int64)[j] * stride[j] for j in range(len(size)))
    index = np.broadcast_to(index, size)
    if index.size and index.max() >= numel:
        with pytest.raises(ValueError, match="reaches element"):
            tensor_array(ref, storage)
    else:
        np.testing.assert_array_equal(tensor_array(ref, storage), storage[index] if index.size else
                                      np.zeros(size, np.float32))


# ---------------------------------------------------------------- corrupt and wrong files

@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.9, 0.999])
def test_truncated_file_raises_value_error_naming_it(tmp_path, name, keep):
    data = (FIXTURES / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=str(path)):
        W.load_pth(path)


def test_flipped_storage_byte_fails_the_zip_crc(tmp_path):
    data = bytearray((FIXTURES / "tiny_zip.pth").read_bytes())
    data[data.index(b"tiny_zip/data/0") + 200] ^= 0xFF   # inside the first storage's bytes
    path = tmp_path / "flipped.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        W.load_pth(path)


@pytest.mark.parametrize("content", [b"", b"hello, world" * 50, np.arange(5).tobytes()])
def test_garbage_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)):
        W.load_pth(path)


def test_a_training_checkpoint_without_state_dict_is_refused_with_its_keys(tmp_path):
    obj = {"epoch": 3, "optimizer": {"lr": 0.1}}
    path = craft.write_zip(tmp_path / "train.pth", obj)
    with pytest.raises(ValueError, match=r"not a state dict.*'epoch', 'optimizer'"):
        W.load_pth(path)


def test_npz_is_not_a_pth(tmp_path):
    np.savez(tmp_path / "w.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="data.pkl"):
        W.load_pth(tmp_path / "w.npz")


# ---------------------------------------------------------------- parity with torch on random views

@pytest.mark.torch
def test_random_views_match_torch(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, dtype in enumerate([torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8]):
        base = (torch.rand(7, 9, 5, generator=g) * 100).to(dtype)
        state[f"t{i}.full"] = base
        state[f"t{i}.permuted"] = base.permute(2, 0, 1)
        state[f"t{i}.strided"] = base[1:6:2, ::3, 4]
        state[f"t{i}.narrowed"] = base.narrow(1, 2, 3)[..., 1:]
    for legacy in (False, True):
        path = tmp_path / f"random_{legacy}.pth"
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        got = W.load_pth(path)
        for key, tensor in state.items():
            assert got[key].dtype == tensor.numpy().dtype
            np.testing.assert_array_equal(got[key], tensor.numpy(), err_msg=key)


# ---------------------------------------------------------------- what torch 2.x writes beyond plain tensors

@pytest.mark.torch
@pytest.mark.parametrize("legacy", [False, True])
def test_a_module_state_dict_with_its_metadata_build_loads(tmp_path, legacy):
    """nn.Module.state_dict() carries `_metadata`, which torch.save writes with the one genuine BUILD."""
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 2))
    state = net.state_dict()
    assert hasattr(state, "_metadata")
    path = tmp_path / "module.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    got = W.load_pth(path)
    assert list(got) == list(state)
    for key, tensor in state.items():
        assert got[key].tobytes() == tensor.numpy().tobytes(), key


@pytest.mark.torch
def test_a_training_checkpoint_with_device_and_dtype_objects_is_unwrapped(tmp_path):
    torch = pytest.importorskip("torch")
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    torch.save({"state_dict": weights, "device": torch.device("cuda", 1), "dtype": torch.float16, "epoch": 3,
                "sizes": torch.Size([2, 3])}, tmp_path / "train.pth")
    np.testing.assert_array_equal(W.load_pth(tmp_path / "train.pth")["w"], weights["w"].numpy())


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_unsigned_dtypes_written_with_rebuild_tensor_v3(tmp_path, dtype):
    """torch 2.x saves uint16/32/64 as an UntypedStorage plus a dtype: read as those bytes, exactly."""
    torch = pytest.importorskip("torch")
    base = (torch.arange(24) * 2654435761 % 60000).to(getattr(torch, dtype)).reshape(4, 6)
    state = {"full": base, "strided": base[1:, ::2], "scalar": base[2, 3]}
    torch.save(state, tmp_path / "u.pth")
    got = W.load_pth(tmp_path / "u.pth")
    for key, tensor in state.items():
        want = tensor.numpy()
        assert got[key].dtype == want.dtype and np.array_equal(got[key], want), key


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["complex64", "complex128", "float8_e4m3fn", "float8_e5m2"])
def test_dtypes_minixai_does_not_read_are_named(tmp_path, dtype):
    torch = pytest.importorskip("torch")
    state = {"fc.bias": torch.zeros(2), "fc.weight": torch.ones(2, 3).to(getattr(torch, dtype))}
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(W.WeightsFileError, match=rf"entry 'fc.weight' has dtype torch.{dtype}; minixai reads real"):
        W.load_pth(tmp_path / "odd.pth")


@pytest.mark.torch
def test_nan_weights_are_refused_naming_file_and_key(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"fc.weight": torch.tensor([1.0, float("nan")]), "fc.bias": torch.zeros(1)}, tmp_path / "nan.pth")
    with pytest.raises(W.WeightsFileError, match=r"nan.pth: entry 'fc.weight' \(2,\) holds 1 NaN"):
        W.load_pth(tmp_path / "nan.pth")


def test_the_stand_ins_cannot_be_changed():
    """Defence in depth behind the BUILD refusal: the storage and dtype tokens are read-only."""
    floats = STORAGE_TYPES["FloatStorage"]
    with pytest.raises(AttributeError):
        floats.name = "BFloat16Storage"
    with pytest.raises(AttributeError):
        floats.dtype = np.dtype("<u2")
    assert not hasattr(floats, "__dict__") and floats.name == "FloatStorage"
