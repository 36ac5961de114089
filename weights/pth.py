"""Read PyTorch `.pth` checkpoints into numpy arrays, safely and without torch.

`torch.save` has written two formats:

* zip (torch >= 1.6): a zip archive `<name>/data.pkl` (the pickle),
  `<name>/data/<key>` (the raw bytes of each storage) and optionally
  `<name>/byteorder` ("little" or "big"; little when absent).
* legacy (older torchvision files such as vgg16-397923af.pth): pickles one
  after another: the magic number, the protocol version (1001), a sys-info
  dict, the object, the sorted list of storage keys; then for each key an
  int64 element count and the storage's raw little-endian bytes.

Both pickles are read with `unpickler.RestrictedUnpickler`. The state dict
is picked out, then every tensor is cut out of its storage bytes with its
offset/size/stride (bounds checked) and copied into a fresh C-contiguous
array. (The still older tar format of torch < 0.1.10 is not supported.)
"""

import io
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from .unpickler import TensorRef, unpickle

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")  # tried in this order
ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, KeyError, struct.error, NotImplementedError)


def load_pth(path):
    """Read a `.pth` file written by `torch.save(state_dict)`.

    Returns {torchvision key: numpy array} with torch's dtypes (float32,
    float64, float16, int64, ...; bfloat16 is widened to float32), each array
    C-contiguous and owning its memory. A checkpoint that wraps its state dict
    under "state_dict", "model" or "model_state_dict" is unwrapped.

    Raises UnsafeCheckpointError if the pickle names anything but tensors and
    storages, ValueError if the file is corrupt, truncated or not a state dict.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
        if head.startswith(b"PK"):
            return _load_zip(path)
        if tarfile.is_tarfile(path):
            raise ValueError(f"{path}: tar-format checkpoint (torch < 0.1.10) is not supported; "
                             "re-save it with a recent torch")
        f.seek(0)
        return _load_legacy(f, path)


def _load_zip(path):
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as err:
        raise ValueError(f"{path}: corrupt or truncated zip checkpoint ({err})") from None
    with archive:
        return _read_zip(archive, path)


def _read_member(archive, name, path):
    try:
        return archive.read(name)
    except ZIP_ERRORS as err:
        raise ValueError(f"{path}: corrupt or truncated zip checkpoint ({err})") from None


def _read_zip(archive, path):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        hint = " (a TorchScript archive?)" if any(n.endswith("constants.pkl") for n in names) else ""
        raise ValueError(f"{path}: zip file without exactly one '<name>/data.pkl'{hint}; "
                         "not a torch.save checkpoint")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = _read_member(archive, prefix + "byteorder", path).decode("ascii", "replace")
        if byteorder not in ("little", "big"):
            raise ValueError(f"{path}: unknown byte order {byteorder!r}")
    obj, declared = unpickle(io.BytesIO(_read_member(archive, pickles[0], path)), path)
    tensors = pick_state_dict(obj, path)
    storages = {}
    for key in _used_storage_keys(tensors):
        stype, numel = declared[key]
        raw = _read_member(archive, f"{prefix}data/{key}", path)
        if len(raw) != numel * stype.dtype.itemsize:
            raise ValueError(f"{path}: storage {key!r} holds {len(raw)} bytes, "
                             f"expected {numel} x {stype.dtype.itemsize}")
        storages[key] = storage_array(raw, stype, byteorder)
    return _materialize(tensors, storages, path)


def _load_legacy(f, path):
    header_only = {}  # the header pickles need no globals at all
    magic, _ = unpickle(f, path, header_only)
    if magic != MAGIC_NUMBER:
        raise ValueError(f"{path}: not a PyTorch checkpoint (no zip archive, no legacy magic number)")
    protocol, _ = unpickle(f, path, header_only)
    if protocol != PROTOCOL_VERSION:
        raise ValueError(f"{path}: unsupported legacy protocol version {protocol!r}")
    sys_info, _ = unpickle(f, path, header_only)
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise ValueError(f"{path}: written on a big-endian machine; not supported")
    obj, declared = unpickle(f, path)
    keys, _ = unpickle(f, path, header_only)
    if not isinstance(keys, list) or set(map(str, keys)) != set(declared):
        raise ValueError(f"{path}: the storage key list does not match the pickle's storages")
    tensors = pick_state_dict(obj, path)
    needed = _used_storage_keys(tensors)
    remaining = Path(path).stat().st_size - f.tell()
    storages = {}
    for key in map(str, keys):
        stype, numel = declared[key]
        count = f.read(8)
        if len(count) != 8:
            raise ValueError(f"{path}: truncated before storage {key!r}")
        (stored,) = struct.unpack("<q", count)
        nbytes = numel * stype.dtype.itemsize
        remaining -= 8
        if stored != numel:
            raise ValueError(f"{path}: storage {key!r} is corrupt: {stored} elements stored, "
                             f"{numel} declared in the pickle")
        if nbytes > remaining:
            raise ValueError(f"{path}: truncated inside storage {key!r}: it needs {nbytes} bytes, "
                             f"{remaining} are left")
        if key in needed:
            storages[key] = storage_array(f.read(nbytes), stype, "little")
        else:
            f.seek(nbytes, io.SEEK_CUR)
        remaining -= nbytes
    return _materialize(tensors, storages, path)


def pick_state_dict(obj, path):
    """Return the {name: TensorRef} mapping held by `obj`, unwrapping once.

    A state dict is a dict of str -> tensor. A dict holding one under a
    wrapper key (training checkpoints: {"epoch": 3, "state_dict": ...}) is
    unwrapped; anything else is refused with a message listing what is there.
    """
    if _is_tensor_dict(obj):
        return obj
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if _is_tensor_dict(obj.get(key)):
                return obj[key]
        non_tensors = [k for k, v in obj.items() if not isinstance(v, TensorRef)][:5]
        raise ValueError(f"{path}: not a state dict: entries {non_tensors} are not tensors, and none of "
                         f"{list(WRAPPER_KEYS)} holds a state dict (top-level keys: {list(obj)[:10]})")
    raise ValueError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")


def _is_tensor_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, TensorRef) for k, v in obj.items()))


def _used_storage_keys(tensors):
    return {t.storage.key for t in tensors.values()}


def storage_array(raw, stype, byteorder):
    """The 1-D native-endian numpy array of a storage's raw bytes."""
    dtype = stype.dtype.newbyteorder("<" if byteorder == "little" else ">")
    words = np.frombuffer(raw, dtype=dtype)
    if stype.name == "BFloat16Storage":
        # bfloat16 = the high 16 bits of a float32: shift them back into place
        return (words.astype(np.uint32) << 16).view(np.float32)
    return words.astype(dtype.newbyteorder("="), copy=False)


def tensor_array(ref, storage, path="checkpoint"):
    """Cut the tensor `ref` out of its storage array; returns a fresh copy.

    Element (i_0, ..., i_k) sits at storage[offset + sum_j i_j * stride_j];
    every such index must lie inside the storage (checked, so a crafted file
    cannot make numpy read outside the buffer).
    """
    storage = storage[ref.storage.offset: ref.storage.offset + ref.storage.numel]
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=storage.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= storage.size:
        raise ValueError(f"{path}: tensor (offset {ref.offset}, size {ref.size}, stride {ref.stride}) "
                         f"reaches element {last} of a storage of {storage.size}")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.size,
        strides=[s * storage.itemsize for s in ref.stride], writeable=False)
    return np.array(view, order="C")


def _materialize(tensors, storages, path):
    return {name: tensor_array(ref, storages[ref.storage.key], path) for name, ref in tensors.items()}


__all__ = ["load_pth", "pick_state_dict", "storage_array", "tensor_array"]
