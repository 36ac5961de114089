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

Files are always read with `allow_pickle=False`: an object array inside a
`.npz` is refused with a ValueError, never unpickled.
"""

import json
import os
import zipfile
from pathlib import Path

import numpy as np

META_KEY = "__meta__"
FORMAT = "minixai-weights/1"
NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError)


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
    Raises ValueError (naming the file) for anything that is not a readable
    `.npz` of numeric arrays: object arrays, corrupt or truncated files.
    """
    path = Path(path)
    state_dict, meta_bytes = {}, None
    try:
        with _open_npz(path) as npz:
            for name in npz.files:
                if name == META_KEY:
                    meta_bytes = npz[name]
                else:
                    state_dict[name] = _numeric(name, npz[name])
    except NPZ_ERRORS as err:
        raise ValueError(f"{path}: not a readable weights .npz ({err})") from None
    return state_dict, _parse_meta(meta_bytes, path)


def _open_npz(path):
    # allow_pickle=False: object arrays raise ValueError instead of unpickling
    npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError("a single .npy array, not an .npz archive")
    return npz


def _numeric(name, array):
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"entry {name!r} has non-numeric dtype {array.dtype}")
    return array


def _parse_meta(meta_bytes, path):
    if meta_bytes is None:
        return {}
    if meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1:
        raise ValueError(f"{path}: {META_KEY!r} must be a 1-D uint8 array of UTF-8 JSON")
    try:
        meta = json.loads(meta_bytes.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: {META_KEY!r} is not UTF-8 JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: {META_KEY!r} must hold a JSON object, got {type(meta).__name__}")
    return meta


def read_meta(path):
    """Only the metadata of a weights `.npz` (the arrays are not read)."""
    path = Path(path)
    try:
        with _open_npz(path) as npz:
            meta_bytes = npz[META_KEY] if META_KEY in npz.files else None
    except NPZ_ERRORS as err:
        raise ValueError(f"{path}: not a readable weights .npz ({err})") from None
    return _parse_meta(meta_bytes, path)
