"""What the names in a torch checkpoint's pickle stand for, without torch.

`torch.save` describes a state dict with a handful of globals: the tensor
rebuild functions, the storage types (or, since torch 2.x for new dtypes,
`UntypedStorage` plus a dtype), `OrderedDict`, `torch.Size`, and, inside
training checkpoints, `torch.device` and dtype objects. `TENSOR_GLOBALS`
maps exactly those names to the inert stand-ins below; `unpickler.py`
refuses every other name.

Nothing here can be changed by a pickle: the tokens are immutable (no
instance dictionary, `__setattr__` refused) and the unpickler refuses the
BUILD opcode on anything but a fresh `OrderedDict`, so a refused file cannot
leave a changed stand-in behind for the next load.

A tensor becomes a `TensorRef` (storage, offset, size, stride) and a storage
a `StorageRef` (key, element type, element count); `pth.py` reads the bytes
afterwards and cuts the arrays out of them.
"""

import collections
from dataclasses import dataclass

import numpy as np

from .errors import UnsafeCheckpointError


class Token:
    """An immutable, inert stand-in for a torch object: a name and a numpy dtype.

    `dtype` is None for a torch type that minixai does not read (complex,
    float8, quantized); `why` then names it and `itemsize` gives its width. Tokens are not callable: a pickle
    that tries to call one fails instead of building something.
    """

    __slots__ = ("name", "dtype", "itemsize", "why")

    def __init__(self, name, dtype, why=None, itemsize=None):
        dtype = None if dtype is None else np.dtype(dtype)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "itemsize", itemsize if dtype is None else dtype.itemsize)
        object.__setattr__(self, "why", why)

    def __setattr__(self, name, value):
        raise AttributeError(f"torch.{self.name} is a read-only stand-in")

    __delattr__ = __setattr__

    def __repr__(self):
        return f"torch.{self.name}"


# torch dtype name -> (legacy typed storage name or None, numpy dtype as stored, little-endian).
# bfloat16 has no numpy dtype: its raw uint16 words are widened to float32 exactly (a bfloat16 is
# the top half of a float32) when the array is built.
ELEMENTS = {
    "float32": ("FloatStorage", "<f4"), "float64": ("DoubleStorage", "<f8"),
    "float16": ("HalfStorage", "<f2"), "bfloat16": ("BFloat16Storage", "<u2"),
    "int64": ("LongStorage", "<i8"), "int32": ("IntStorage", "<i4"), "int16": ("ShortStorage", "<i2"),
    "int8": ("CharStorage", "i1"), "uint8": ("ByteStorage", "u1"), "bool": ("BoolStorage", "?"),
    "uint16": (None, "<u2"), "uint32": (None, "<u4"), "uint64": (None, "<u8"),
}
# torch dtypes (and their legacy storages) that minixai refuses: named so the refusal is precise
# (legacy storage name or None, bytes per element)
UNREPRESENTABLE = {
    "complex32": ("ComplexHalfStorage", 4), "complex64": ("ComplexFloatStorage", 8),
    "complex128": ("ComplexDoubleStorage", 16), "qint8": ("QInt8Storage", 1),
    "quint8": ("QUInt8Storage", 1), "qint32": ("QInt32Storage", 4), "quint4x2": ("QUInt4x2Storage", 1),
    "quint2x4": ("QUInt2x4Storage", 1), "float8_e4m3fn": (None, 1), "float8_e5m2": (None, 1),
    "float8_e4m3fnuz": (None, 1), "float8_e5m2fnuz": (None, 1), "float8_e8m0fnu": (None, 1),
    "float4_e2m1fn_x2": (None, 1),
}

DTYPES = {name: Token(name, dtype) for name, (_, dtype) in ELEMENTS.items()}
DTYPES.update({name: Token(name, None, f"torch.{name}", itemsize)
               for name, (_, itemsize) in UNREPRESENTABLE.items()})
STORAGE_TYPES = {storage: Token(storage, DTYPES[name].dtype)
                 for name, (storage, _) in ELEMENTS.items() if storage is not None}
STORAGE_TYPES.update({storage: Token(storage, None, DTYPES[name].why, itemsize)
                      for name, (storage, itemsize) in UNREPRESENTABLE.items() if storage is not None})
UNTYPED = Token("storage.UntypedStorage", "u1")   # raw bytes; the tensor's dtype says what they hold
ELEMENT_OF_DTYPE = {name: STORAGE_TYPES[storage] if storage else Token(name, dtype)
                    for name, (storage, dtype) in ELEMENTS.items()}


@dataclass(frozen=True)
class StorageRef:
    """A storage named by a persistent id; its bytes are read later.

    `type` is the element type; `offset`/`numel` (in elements) describe the
    part of the root storage `key` that this reference sees: the whole
    storage, or a storage view (legacy files written before torch 0.4 could
    pickle views of a larger storage).
    """

    key: str
    type: Token
    offset: int
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor: `size`/`stride` in elements, `offset` into its storage."""

    storage: StorageRef
    offset: int
    size: tuple
    stride: tuple


@dataclass(frozen=True)
class Device:
    """Stand-in for a `torch.device` found in a training checkpoint (ignored)."""

    type: str
    index: int | None = None


def int_tuple(values, what):
    """`values` as a tuple of non-negative ints; UnsafeCheckpointError otherwise."""
    if not isinstance(values, (tuple, list)):
        raise UnsafeCheckpointError(f"tensor {what} must be a tuple, got {type(values).__name__}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in values):
        shown = values if len(values) <= 8 else f"{tuple(values[:8])}..."
        raise UnsafeCheckpointError(f"tensor {what} must hold ints in [0, 2**63), got {shown!r}")
    return tuple(values)


def rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for `torch._utils._rebuild_tensor` (torch < 1.0 files)."""
    if not isinstance(storage, StorageRef):
        raise UnsafeCheckpointError(f"tensor storage must be a storage, got {type(storage).__name__}")
    size = int_tuple(size, "size")
    stride = int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise UnsafeCheckpointError(f"tensor size {size} and stride {stride} differ in length")
    (offset,) = int_tuple((storage_offset,), "storage offset")
    return TensorRef(storage, offset, size, stride)


def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                      backward_hooks=None, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2`; autograd fields ignored."""
    return rebuild_tensor(storage, storage_offset, size, stride)


def rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                      dtype, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v3`: an untyped (byte) storage plus a dtype.

    torch 2.x writes this for dtypes without a legacy storage class (uint16,
    float8, ...). The storage is re-read as elements of `dtype`.
    """
    if not isinstance(storage, StorageRef) or storage.type is not UNTYPED:
        raise UnsafeCheckpointError("_rebuild_tensor_v3 needs an UntypedStorage")
    if not isinstance(dtype, Token) or dtype.name not in DTYPES:
        raise UnsafeCheckpointError(f"_rebuild_tensor_v3 needs a torch dtype, got {type(dtype).__name__}")
    element = ELEMENT_OF_DTYPE.get(dtype.name, dtype)
    itemsize = element.itemsize
    if storage.offset % itemsize or storage.numel % itemsize:
        raise UnsafeCheckpointError(f"an untyped storage of {storage.numel} bytes cannot hold {dtype.name}")
    typed = StorageRef(storage.key, element, storage.offset // itemsize, storage.numel // itemsize)
    return rebuild_tensor(typed, storage_offset, size, stride)


def rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    """Stand-in for `torch._utils._rebuild_parameter`: a Parameter is its data."""
    if not isinstance(data, TensorRef):
        raise UnsafeCheckpointError(f"parameter data must be a tensor, got {type(data).__name__}")
    return data


def torch_size(dims=()):
    """Stand-in for `torch.Size`: a plain tuple of ints."""
    return int_tuple(tuple(dims), "size")


def torch_device(kind, index=None):
    """Stand-in for `torch.device("cpu")` / `torch.device("cuda", 0)`: an inert record."""
    if not isinstance(kind, str) or not (index is None or isinstance(index, int)):
        raise UnsafeCheckpointError("torch.device needs a name and an optional index")
    return Device(kind[:64], index)


TENSOR_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): torch_size,
    ("torch", "device"): torch_device,
    ("torch.storage", "UntypedStorage"): UNTYPED,
    **{("torch", name): token for name, token in DTYPES.items()},
    **{("torch", name): stype for name, stype in STORAGE_TYPES.items()},
    # old files saved from a GPU name the CUDA storage types; the bytes are the same
    **{("torch.cuda", name): stype for name, stype in STORAGE_TYPES.items()},
}
