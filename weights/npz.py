"""The converted weights format: one `.npz`, no pickle anywhere.

Layout: one `<key>.npy` member per state-dict entry, keyed by torchvision's
names (`features.0.weight`, `layer1.0.bn1.running_mean`, `fc.bias`), plus
`__meta__.npy`, a uint8 array holding UTF-8 JSON metadata:

    {"format": "minixai-weights/1", "architecture": "vgg16",
     "source": "vgg16-397923af.pth", "sha256": "<of the source file>",
     "class_names": [...] or null, "spec": {"mean": .., "std": .., ...}, ...}

Floating arrays are stored as float32 (the engine's default dtype). Integer
buffers, in practice BatchNorm's `num_batches_tracked` counter, are kept as
int64 so that the key set equals torchvision's `state_dict()` keys; models
ignore them at inference. Bool arrays stay bool; other dtypes (complex,
strings) are refused.

Reading never calls `np.load`: each member's `.npy` header is parsed first
(`np.lib.format`, which evaluates it as a literal, never as code) and checked
before any array memory is allocated: the dtype must be real numeric or bool
(object arrays are refused, never unpickled; complex is refused), and the
bytes the header's shape needs must be exactly the bytes the member holds,
so a 252-byte file declaring shape (10**12,) is refused at once. Members
are read within the zip limits of `limits.py` (declared sizes, compression
ratio), and the arrays are checked for finite values (`checks.py`).
"""

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from .checks import check_arrays
from .errors import WeightsFileError
from .limits import ZipArchive, check_shape, open_regular, read_exact, short

META_KEY = "__meta__"
FORMAT = "minixai-weights/1"
HEADER_LIMIT = 10_000   # bytes of an .npy header (numpy's own default limit)


def save_npz(path, state_dict, meta):
    """Write `state_dict` ({name: array}) and `meta` (a JSON-able dict) to `path`.

    Missing parent directories are created. The file is written under a
    temporary name and renamed into place, so a crash never leaves a
    half-written `.npz` behind. Returns the Path.
    """
    path = Path(path)
    arrays = {name: _storable(name, value) for name, value in state_dict.items()}
    meta = {"format": FORMAT, **meta}
    text = json.dumps(meta, indent=1, sort_keys=True)  # raises TypeError if not JSON-able
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                with archive.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _storable(name, value):
    if not isinstance(name, str) or not name or name == META_KEY or "/" in name:
        raise ValueError(f"invalid state dict key {name!r}: expected a non-empty name without '/', "
                         f"other than {META_KEY!r}")
    if not isinstance(value, np.ndarray):
        raise TypeError(f"state dict entry {name!r} is a {type(value).__name__}, expected a numpy array")
    if np.issubdtype(value.dtype, np.floating):
        return np.ascontiguousarray(value, dtype=np.float32)
    if np.issubdtype(value.dtype, np.integer):
        return np.ascontiguousarray(value, dtype=np.int64)
    if value.dtype == np.bool_:
        return np.ascontiguousarray(value)
    raise TypeError(f"state dict entry {name!r} has dtype {value.dtype}; expected floating, integer or bool")


def load_npz(path):
    """Read a weights `.npz`; returns (state_dict, meta).

    `meta` is {} for a plain `.npz` of arrays without a `__meta__` entry.
    Raises WeightsFileError (a ValueError naming the file and the entry) for
    anything that is not a regular file holding a readable `.npz` of real,
    finite numeric arrays: object or complex arrays, members that are not
    `.npy` data, headers that promise more bytes than are there, corrupt,
    truncated or bomb-like archives.
    """
    path = Path(path)
    state_dict, meta_array = {}, None
    with _open_npz(path) as archive:
        for member in archive.names():
            name = _entry_name(member, path)
            array = read_npy(archive, member, path)
            if name == META_KEY:
                meta_array = array
            else:
                state_dict[name] = array
    return check_arrays(state_dict, path), _parse_meta(meta_array, path)


class _open_npz:
    """A ZipArchive of a regular file that is an .npz (not a single .npy); a context manager."""

    def __init__(self, path):
        self.file = open_regular(path)
        try:
            if self.file.read(6) == b"\x93NUMPY":
                raise WeightsFileError(f"{path}: a single .npy array, not an .npz archive")
            self.file.seek(0)
            self.archive = ZipArchive(self.file, path)
        except BaseException:
            self.file.close()
            raise

    def __enter__(self):
        return self.archive

    def __exit__(self, *exc):
        self.archive.__exit__(*exc)
        self.file.close()
        return False


def _entry_name(member, path):
    if not member.endswith(".npy"):
        raise WeightsFileError(f"{path}: member {short(member)} is not .npy data (an .npz holds only .npy members)")
    return member[: -len(".npy")]


def read_npy(archive, member, path):
    """Read one `.npy` member: header checked, then exactly the bytes it declares."""
    what = f"entry {short(member[:-4])}"
    size = archive.size(member)
    with archive.open(member, what=what) as stream:
        shape, fortran, dtype, start = _npy_header(stream, path, what)
        nbytes = math.prod(shape) * dtype.itemsize
        if start + nbytes != size:
            raise WeightsFileError(f"{path}: {what} declares shape {shape} of {dtype} ({nbytes} bytes), "
                                   f"but the member holds {size - start} bytes of data")
        raw = read_exact(stream, nbytes, path, what)
    array = raw.view(dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=False)


def _npy_header(stream, path, what):
    """(shape, fortran_order, dtype, bytes read) of an .npy header, with the dtype checked."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=HEADER_LIMIT)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=HEADER_LIMIT)
        else:
            raise ValueError(f".npy format version {version} is not supported (1.0 and 2.0 are)")
    except WeightsFileError:
        raise
    except Exception as err:   # a header is a bounded, untrusted literal: any failure means "not .npy"
        raise WeightsFileError(f"{path}: {what} is not .npy data ({type(err).__name__}: {short(str(err))})") from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise WeightsFileError(f"{path}: {what} has dtype {dtype}; weights must be real numbers "
                               "(float, int or bool; object arrays are never unpickled)")
    if any(n < 0 for n in shape):
        raise WeightsFileError(f"{path}: {what} declares the negative shape {short(tuple(shape))}")
    check_shape(shape, dtype.itemsize, f"{path}: {what}")
    return tuple(shape), fortran, dtype, stream.tell()


def _parse_meta(meta_bytes, path):
    if meta_bytes is None:
        return {}
    if meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1:
        raise WeightsFileError(f"{path}: {META_KEY!r} must be a 1-D uint8 array of UTF-8 JSON")
    try:
        meta = json.loads(meta_bytes.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise WeightsFileError(f"{path}: {META_KEY!r} is not UTF-8 JSON ({short(str(err))})") from None
    if not isinstance(meta, dict):
        raise WeightsFileError(f"{path}: {META_KEY!r} must hold a JSON object, got {type(meta).__name__}")
    return meta


def read_meta(path):
    """Only the metadata of a weights `.npz` (the arrays are not read)."""
    path = Path(path)
    with _open_npz(path) as archive:
        member = META_KEY + ".npy"
        meta_array = read_npy(archive, member, path) if member in archive.names() else None
    return _parse_meta(meta_array, path)
