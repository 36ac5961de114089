"""A pickle.Unpickler that rebuilds PyTorch tensors and nothing else.

A `.pth` file is a pickle, and unpickling may call any function the file
names (`os.system` included). `torch.save` only needs a handful of globals to
describe a state dict: the tensor rebuild functions, the storage types,
`OrderedDict` and `torch.Size`. `RestrictedUnpickler.find_class` maps exactly
those names to the stand-ins defined here and refuses every other name with
`UnsafeCheckpointError`; the refused global is never imported or called.
torch itself is never imported.

Unpickling does not produce arrays directly. A tensor becomes a `TensorRef`
(storage, offset, size, stride) and a storage a `StorageRef` (key, type,
element count); `pth.py` reads the storage bytes afterwards and cuts the
arrays out of them. Storage bytes come after the pickle in the legacy
format, so this two-step design serves both formats.
"""

import collections
import pickle
from dataclasses import dataclass

import numpy as np

from .errors import UnsafeCheckpointError


class StorageType:
    """Stand-in for `torch.FloatStorage` and friends: a name and a numpy dtype.

    Instances are tokens, not callables: a pickle that tries to call one
    fails instead of building something.
    """

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = np.dtype(dtype)

    def __repr__(self):
        return f"torch.{self.name}"


# torch storage type -> numpy dtype of one element, little-endian as stored.
# BFloat16 has no numpy dtype: its raw uint16 words are widened to float32
# exactly (a bfloat16 is the top half of a float32) when the array is built.
STORAGE_TYPES = {
    name: StorageType(name, dtype)
    for name, dtype in [
        ("FloatStorage", "<f4"),
        ("DoubleStorage", "<f8"),
        ("HalfStorage", "<f2"),
        ("BFloat16Storage", "<u2"),
        ("LongStorage", "<i8"),
        ("IntStorage", "<i4"),
        ("ShortStorage", "<i2"),
        ("CharStorage", "i1"),
        ("ByteStorage", "u1"),
        ("BoolStorage", "?"),
    ]
}


@dataclass(frozen=True)
class StorageRef:
    """A storage named by a persistent id; its bytes are read later.

    `offset`/`numel` describe the part of the root storage `key` that this
    reference sees: the whole storage, or a storage view (legacy files
    written before torch 0.4 could pickle views of a larger storage).
    """

    key: str
    type: StorageType
    offset: int
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor: `size`/`stride` in elements, `offset` into its storage."""

    storage: StorageRef
    offset: int
    size: tuple
    stride: tuple


def _int_tuple(values, what):
    if not isinstance(values, (tuple, list)):
        raise UnsafeCheckpointError(f"tensor {what} must be a tuple, got {type(values).__name__}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise UnsafeCheckpointError(f"tensor {what} must hold non-negative ints, got {values!r}")
    return tuple(values)


def rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for `torch._utils._rebuild_tensor` (torch < 1.0 files)."""
    if not isinstance(storage, StorageRef):
        raise UnsafeCheckpointError(f"tensor storage must be a storage, got {type(storage).__name__}")
    size = _int_tuple(size, "size")
    stride = _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise UnsafeCheckpointError(f"tensor size {size} and stride {stride} differ in length")
    (offset,) = _int_tuple((storage_offset,), "storage offset")
    return TensorRef(storage, offset, size, stride)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                      backward_hooks=None, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2`; autograd fields ignored."""
    return rebuild_tensor(storage, storage_offset, size, stride)


def rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    """Stand-in for `torch._utils._rebuild_parameter`: a Parameter is its data."""
    if not isinstance(data, TensorRef):
        raise UnsafeCheckpointError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


def torch_size(dims=()):
    """Stand-in for `torch.Size`: a plain tuple of ints."""
    return _int_tuple(tuple(dims), "size")


TENSOR_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch_size,
    **{("torch", name): stype for name, stype in STORAGE_TYPES.items()},
    # old files saved from a GPU name the CUDA storage types; the bytes are the same
    **{("torch.cuda", name): stype for name, stype in STORAGE_TYPES.items()},
}


def _text(value):
    """Python 2 era files may hold ids as bytes; torch decodes them as ASCII."""
    return value.decode("ascii") if isinstance(value, bytes) else value


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickle one pickle of a checkpoint, allowing only `allowed` globals.

    `source` names the file in error messages. The storages met on the way
    are collected in `self.storages` (root key -> StorageType).
    """

    def __init__(self, file, source, allowed=TENSOR_GLOBALS):
        super().__init__(file, encoding="utf-8")
        self.source = source
        self.allowed = allowed
        self.storages = {}

    def find_class(self, module, name):
        # Called for every global the pickle names (GLOBAL, STACK_GLOBAL,
        # INST, OBJ and the copyreg extension codes): the only way in.
        found = self.allowed.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(
                f"{self.source}: refused to load the global '{module}.{name}': a weights file "
                "should hold only tensors (a whole model saved with torch.save(model), or "
                "other Python objects, cannot be read safely; save model.state_dict() instead)")
        return found

    def persistent_load(self, pid):
        # torch writes ('storage', storage_type, key, location, numel) in zip
        # files and the same plus view_metadata in legacy files.
        if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage":
            kind = _text(pid[0]) if isinstance(pid, tuple) and pid else pid
            raise UnsafeCheckpointError(
                f"{self.source}: refused persistent id {kind!r}: only storages are allowed")
        if len(pid) not in (5, 6):
            raise UnsafeCheckpointError(f"{self.source}: malformed storage id {pid!r}")
        stype, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        key = _text(key)
        if not isinstance(stype, StorageType) or not isinstance(key, str):
            raise UnsafeCheckpointError(f"{self.source}: malformed storage id {pid!r}")
        (numel,) = _int_tuple((numel,), "storage size")
        if self.storages.setdefault(key, (stype, numel)) != (stype, numel):
            raise UnsafeCheckpointError(f"{self.source}: storage {key!r} is declared twice differently")
        if view is None:
            return StorageRef(key, stype, 0, numel)
        _view_key, offset, view_numel = view
        offset, view_numel = _int_tuple((offset, view_numel), "storage view")
        if offset + view_numel > numel:
            raise UnsafeCheckpointError(f"{self.source}: storage view {view!r} exceeds storage {key!r}")
        return StorageRef(key, stype, offset, view_numel)


def unpickle(file, source, allowed=TENSOR_GLOBALS):
    """Load one pickle from `file`; return (object, {storage key: (type, numel)}).

    Any failure (refused global, bad opcode, truncated data) is raised as a
    ValueError naming `source`; an UnsafeCheckpointError stays one.
    """
    unpickler = RestrictedUnpickler(file, source, allowed)
    try:
        obj = unpickler.load()
    except UnsafeCheckpointError as err:
        if str(err).startswith(str(source)):
            raise
        raise UnsafeCheckpointError(f"{source}: {err}") from None
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise ValueError(f"{source}: corrupt or truncated checkpoint ({type(err).__name__}: {err})") from None
    return obj, unpickler.storages
