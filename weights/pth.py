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
is picked out and every tensor is checked against its storage (bounds,
dtype, the total memory its copies would take: `limits.check_views`)
before a storage byte is read; then each tensor is cut out of its storage
bytes with its offset/size/stride and copied into a fresh C-contiguous
array. (The still older tar format of torch < 0.1.10 is not supported.)
"""

import io
import math
import os
import struct
from pathlib import Path

import numpy as np

from .checks import check_arrays
from .errors import WeightsFileError
from .limits import (MAX_PICKLE_BYTES, ZipArchive, check_shape, check_views, megabytes, open_regular, read_exact,
                     short)
from .standins import TensorRef
from .unpickler import unpickle

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")  # tried in this order
HEADER_LIMIT = 64 * 1024   # the legacy format's magic number, version, sys info and key list pickles
SIGNATURES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
              b"\x93NUMPY": "a single .npy array", b"\x1f\x8b": "a gzip file"}


def load_pth(path):
    """Read a `.pth` file written by `torch.save(state_dict)`.

    Returns {torchvision key: numpy array} with torch's dtypes (float32,
    float64, float16, int64, uint16, ...; bfloat16 is widened to float32),
    each array C-contiguous and owning its memory. A checkpoint that wraps
    its state dict under "state_dict", "model" or "model_state_dict" is
    unwrapped.

    Raises UnsafeCheckpointError if the pickle asks for anything but tensors
    and storages; WeightsFileError (a ValueError) if the file is not a
    regular file, is corrupt, truncated, larger than it may be for what it
    holds, not a state dict, or holds complex, float8 or non-finite tensors.
    """
    path = Path(path)
    with open_regular(path) as f:
        head = f.read(512)
        f.seek(0)
        if head.startswith(b"PK"):
            with ZipArchive(f, path) as archive:
                state = _read_zip(archive, path)
        elif head[257:262] == b"ustar":
            raise WeightsFileError(f"{path}: tar-format checkpoint (torch < 0.1.10) is not supported; "
                                   "re-save it with a recent torch")
        elif head.startswith(b"\x80"):
            state = _read_legacy(f, path)
        else:
            raise WeightsFileError(f"{path}: not a PyTorch checkpoint: neither a zip archive nor a pickle "
                                   f"stream{_looks_like(head)} (it starts with {head[:8]!r})")
    return check_arrays(state, path)


def _looks_like(head):
    found = [what for signature, what in SIGNATURES.items() if head.startswith(signature)]
    return f"; it looks like {found[0]}" if found else ""


def _read_zip(archive, path):
    names = archive.names()
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        hint = " (a TorchScript archive?)" if any(n.endswith("constants.pkl") for n in names) else ""
        raise WeightsFileError(f"{path}: zip file without exactly one '<name>/data.pkl'{hint}; "
                               "not a torch.save checkpoint")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").tobytes()[:16].decode("ascii", "replace")
        if byteorder not in ("little", "big"):
            raise WeightsFileError(f"{path}: unknown byte order {byteorder!r}")
    if archive.size(pickles[0]) > MAX_PICKLE_BYTES:
        raise WeightsFileError(f"{path}: its pickle {short(pickles[0])} declares {megabytes(archive.size(pickles[0]))}, "
                               f"more than the {megabytes(MAX_PICKLE_BYTES)} any state dict needs")
    obj, declared = unpickle(io.BytesIO(archive.read(pickles[0]).tobytes()), path)
    tensors = pick_state_dict(obj, path)
    needed = plan(tensors, declared, path)
    storages = {}
    for key, (element, nbytes) in needed.items():
        raw = archive.read(f"{prefix}data/{key}", expected=nbytes, what=f"storage {key!r}")
        storages[key] = storage_array(raw, element, byteorder)
    return _materialize(tensors, storages, path)


def _read_legacy(f, path):
    header_only = {}  # the header pickles need no globals at all
    magic, _ = unpickle(f, path, header_only, HEADER_LIMIT)
    if magic != MAGIC_NUMBER:
        raise WeightsFileError(f"{path}: not a PyTorch checkpoint (no zip archive, no legacy magic number)")
    protocol, _ = unpickle(f, path, header_only, HEADER_LIMIT)
    if protocol != PROTOCOL_VERSION:
        raise WeightsFileError(f"{path}: unsupported legacy protocol version {short(protocol)}")
    sys_info, _ = unpickle(f, path, header_only, HEADER_LIMIT)
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise WeightsFileError(f"{path}: written on a big-endian machine; not supported")
    obj, declared = unpickle(f, path)
    keys, _ = unpickle(f, path, header_only)
    if (not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)
            or len(keys) != len(declared) or set(keys) != set(declared)):
        raise WeightsFileError(f"{path}: the storage key list does not match the pickle's storages")
    tensors = pick_state_dict(obj, path)
    needed = plan(tensors, declared, path)
    remaining = os.fstat(f.fileno()).st_size - f.tell()
    storages = {}
    for key in keys:
        stype, numel = declared[key]
        count = f.read(8)
        if len(count) != 8:
            raise WeightsFileError(f"{path}: truncated before storage {key!r}")
        (stored,) = struct.unpack("<q", count)
        nbytes = numel * stype.itemsize
        remaining -= 8
        if stored != numel:
            raise WeightsFileError(f"{path}: storage {key!r} is corrupt: {stored} elements stored, "
                                   f"{numel} declared in the pickle")
        if nbytes > remaining:
            raise WeightsFileError(f"{path}: truncated inside storage {key!r}: it needs {nbytes} bytes, "
                                   f"{remaining} are left")
        if key in needed:
            storages[key] = storage_array(read_exact(f, nbytes, path, f"storage {key!r}"), stype, "little")
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
        non_tensors = [short(k) for k, v in obj.items() if not isinstance(v, TensorRef)][:5]
        top = [short(k) for k in list(obj)[:10]]
        raise WeightsFileError(f"{path}: not a state dict: entries [{', '.join(non_tensors)}] are not tensors, "
                               f"and none of {list(WRAPPER_KEYS)} holds a state dict "
                               f"(top-level keys: [{', '.join(top)}])")
    raise WeightsFileError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")


def _is_tensor_dict(obj):
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, TensorRef) for k, v in obj.items()))


def plan(tensors, declared, path):
    """Check every tensor before reading any storage; returns {storage key: (element type, bytes)}.

    declared: {key: (type, element count)} of the storages the pickle named.
    Each tensor must have a dtype numpy can hold, lie inside its storage,
    and all of them together must pass `limits.check_views`.
    """
    needed, made = {}, {}
    for name, ref in tensors.items():
        element = ref.storage.type
        if element.dtype is None:
            raise WeightsFileError(f"{path}: entry {short(name)} has dtype {element.why}; minixai reads real "
                                   "float, int and bool tensors only (convert it in torch, e.g. tensor.float())")
        check_bounds(ref, f"{path}: entry {short(name)}")
        root_type, root_numel = declared[ref.storage.key]
        nbytes = root_numel * root_type.itemsize
        if needed.setdefault(ref.storage.key, (element, nbytes))[0] is not element:
            raise WeightsFileError(f"{path}: storage {ref.storage.key!r} is read as two different dtypes")
        width = 4 if element.name == "BFloat16Storage" else element.itemsize   # bfloat16 -> float32
        check_shape(ref.size, width, f"{path}: entry {short(name)}")
        made[name] = (math.prod(ref.size) * width, f"size {ref.size}, stride {ref.stride}")
    check_views(made, sum(nbytes for _, nbytes in needed.values()), path)
    return needed


def check_bounds(ref, what):
    """Element (i_0, ..., i_k) sits at offset + sum_j i_j * stride_j: the last one must be in the storage."""
    if 0 in ref.size:
        return
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= ref.storage.numel:
        raise WeightsFileError(f"{what}: tensor (offset {ref.offset}, size {ref.size}, stride {ref.stride}) "
                               f"reaches element {last} of a storage of {ref.storage.numel}")


def storage_array(raw, stype, byteorder):
    """The 1-D native-endian numpy array of a storage's raw bytes (a uint8 array)."""
    dtype = stype.dtype.newbyteorder("<" if byteorder == "little" else ">")
    words = raw.view(dtype)
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
    check_bounds(ref, path)
    storage = storage[ref.storage.offset: ref.storage.offset + ref.storage.numel]
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=storage.dtype)
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset:], shape=ref.size,
        strides=[s * storage.itemsize for s in ref.stride], writeable=False)
    return np.array(view, order="C")


def _materialize(tensors, storages, path):
    return {name: tensor_array(ref, storages[ref.storage.key], f"{path}: entry {short(name)}")
            for name, ref in tensors.items()}


__all__ = ["load_pth", "pick_state_dict", "plan", "storage_array", "tensor_array"]
