"""minixai.weights: where weights come from and live.

    load_pth(path)            torch .pth -> {name: array}, without torch, safely (limits.py: what is refused)
    save_npz / load_npz       the converted format (no pickle)
    fetch(name)               cached .npz of a torchvision checkpoint (download if needed)
    convert(pth, out, arch)   .pth -> .npz
    load(path) / info(path)   read or summarise a .npz or .pth
    list_known() / get(name)  the registry of known checkpoints

This package imports nothing outside the standard library and numpy (tqdm
optionally, for download progress), and only relative imports inside it.
"""

from .errors import ChecksumError, UnsafeCheckpointError, WeightsFileError, WeightsNotAvailableError
from .npz import load_npz, read_meta, save_npz
from .pth import load_pth
from .registry import (IMAGENET_MEAN, IMAGENET_STD, Checkpoint, get, imagenet_classes, list_known,
                       register, unregister)
from .store import convert, fetch, home, info, load, npz_path, sha256sum, torch_hub_dir, verify

__all__ = [
    "ChecksumError", "UnsafeCheckpointError", "WeightsFileError", "WeightsNotAvailableError",
    "load_pth", "save_npz", "load_npz", "read_meta",
    "Checkpoint", "get", "list_known", "register", "unregister", "imagenet_classes",
    "IMAGENET_MEAN", "IMAGENET_STD",
    "fetch", "convert", "load", "info", "home", "torch_hub_dir", "npz_path", "sha256sum", "verify",
]
