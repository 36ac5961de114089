"""Where weights live: the cache, fetching, conversion and inspection.

    $MINIXAI_HOME (default ~/.cache/minixai)
        checkpoints/vgg16-397923af.pth   downloaded torchvision files
        weights/vgg16-397923af.npz       converted weights (see npz.py)

`fetch(name)` goes down this list and stops at the first hit:
  1. the converted .npz in the cache;
  2. the original .pth in torch's hub cache ($TORCH_HOME/hub/checkpoints,
     default ~/.cache/torch/hub/checkpoints) or in ours: reused, not copied;
  3. a download from the registry URL into ours.
The .pth is verified (SHA-256 prefix, as torch.hub does), converted with the
torch-free reader and stored as .npz. Nothing is downloaded silently from
anywhere else, and an offline machine gets a WeightsNotAvailableError that
says which file to put where.
"""

import hashlib
import os
import sys
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

from . import registry
from .checks import check_fits
from .errors import ChecksumError, WeightsNotAvailableError
from .limits import ZIP_ERRORS, open_regular
from .npz import load_npz, read_meta, save_npz
from .pth import load_pth

BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")  # not learnable


def home():
    """minixai's cache directory: $MINIXAI_HOME, default ~/.cache/minixai."""
    return Path(os.environ.get("MINIXAI_HOME") or "~/.cache/minixai").expanduser()


def torch_hub_dir():
    """torch's checkpoint cache, found the way torch.hub finds it (torch not imported)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def npz_path(name):
    """Where the converted weights of checkpoint `name` are (or will be) cached."""
    return home() / "weights" / (Path(registry.get(name).filename).stem + ".npz")


def fetch(name, progress=True, download=True):
    """Return the path of checkpoint `name`'s converted .npz, making it if needed.

    progress: show a download progress bar (tqdm, when installed).
    download: if False, use only local files and raise
    WeightsNotAvailableError rather than going online.
    """
    checkpoint = registry.get(name)
    out = npz_path(name)
    if out.exists():
        _check_cached(out, checkpoint)
        return out
    pth = _find_local(checkpoint)
    if pth is None:
        if not download:
            raise WeightsNotAvailableError(_not_available(checkpoint, "downloading is switched off"))
        pth = _download(checkpoint, progress)
    convert(pth, out, checkpoint.arch, class_names=checkpoint.class_names,
            spec=checkpoint.spec, url=checkpoint.url, expected_params=checkpoint.num_params)
    return out


def _check_cached(out, checkpoint):
    digest = read_meta(out).get("sha256", "")
    if not digest.startswith(checkpoint.sha256_prefix):
        raise ChecksumError(f"{out} was converted from a file with sha256 {digest or '(none)'}, not from "
                            f"{checkpoint.filename}; delete it and fetch {checkpoint.name!r} again")


def _find_local(checkpoint):
    for directory in (torch_hub_dir(), home() / "checkpoints"):
        candidate = directory / checkpoint.filename
        if candidate.is_file():
            verify(candidate, checkpoint)
            return candidate
    return None


def sha256sum(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open_regular(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path, checkpoint):
    """Check `path` against the registry the way torch.hub does; returns the full digest.

    The SHA-256 must start with the hex prefix in the file name. A differing
    third-party `reported_sha256` only warns (see registry.py).
    """
    digest = sha256sum(path)
    if not digest.startswith(checkpoint.sha256_prefix):
        raise ChecksumError(f"{path}: sha256 is {digest}, but {checkpoint.filename} must start with "
                            f"{checkpoint.sha256_prefix}; the file is corrupt or a different checkpoint "
                            "- delete it and fetch again")
    if checkpoint.reported_sha256 and digest != checkpoint.reported_sha256:
        warnings.warn(f"{path}: sha256 {digest} matches torchvision's prefix but not the digest "
                      f"{checkpoint.reported_sha256} reported by third parties", stacklevel=3)
    return digest


def _download(checkpoint, progress):
    """Stream the registry URL into the cache; verify before moving into place."""
    dest = home() / "checkpoints" / checkpoint.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with urllib.request.urlopen(checkpoint.url, timeout=60) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with _progress_bar(total, checkpoint.filename, progress) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        verify(partial, checkpoint)
        os.replace(partial, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise WeightsNotAvailableError(_not_available(checkpoint, f"download failed: {err}")) from err
    finally:
        partial.unlink(missing_ok=True)
    return dest


class _NoBar:
    """What _progress_bar gives without tqdm (or with progress=False)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def _progress_bar(total, label, progress):
    if not progress:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"downloading {label} ...", file=sys.stderr)
        return _NoBar()
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label)


def _not_available(checkpoint, reason):
    return (f"the {checkpoint.name} weights are not available ({reason}).\n"
            f"Download {checkpoint.url}\n"
            f"and save it as {checkpoint.filename} in either\n"
            f"  {torch_hub_dir()}  (torch's hub cache; moves with $TORCH_HOME), or\n"
            f"  {home() / 'checkpoints'}  (minixai's cache; moves with $MINIXAI_HOME),\n"
            f"then fetch {checkpoint.name!r} again (`minixai weights fetch {checkpoint.name}`).")


def count_params(state_dict):
    """Learnable parameters: every entry except BatchNorm's running statistics."""
    return sum(a.size for k, a in state_dict.items() if not k.endswith(BUFFER_SUFFIXES))


def convert(pth_path, out_path, arch, *, class_names=None, spec=None, url=None, expected_params=None,
            expected_shapes=None):
    """Convert a torch `.pth` state dict to a minixai `.npz` (torch not needed).

    class_names/spec default to the registry's when `pth_path` is the file of
    a registered checkpoint. expected_params, if given, must equal the number
    of learnable parameters read; expected_shapes ({key: shape}, e.g. from
    `models.<arch>(weights=None).state_dict()`), if given, must match the
    file's keys and shapes (checks that the file fits `arch`). Nothing is
    written unless every check passes. Returns the Path written.
    """
    pth_path, out_path = Path(pth_path), Path(out_path)
    digest = sha256sum(pth_path)
    state_dict = load_pth(pth_path)
    if expected_shapes is not None:
        check_fits(state_dict, expected_shapes, pth_path, arch)
    known = registry.by_filename(pth_path.name)
    if known is not None and digest.startswith(known.sha256_prefix):
        class_names = known.class_names if class_names is None else class_names
        spec = known.spec if spec is None else spec
        url = url or known.url
    if expected_params is not None and count_params(state_dict) != expected_params:
        raise ValueError(f"{pth_path}: holds {count_params(state_dict)} learnable parameters, "
                         f"{arch} has {expected_params}")
    meta = {"architecture": arch, "source": pth_path.name, "sha256": digest, "url": url,
            "class_names": None if class_names is None else list(class_names), "spec": spec}
    return save_npz(out_path, state_dict, meta)


def load(path):
    """Read weights from a converted `.npz` or a torch `.pth`; returns (state_dict, meta).

    For a `.pth`, meta holds what is known without conversion: source file,
    sha256, and the architecture if the file is a registered checkpoint.
    """
    path = Path(path)
    if file_format(path) == "npz":
        return load_npz(path)
    state_dict = load_pth(path)
    digest = sha256sum(path)
    known = registry.by_filename(path.name)
    meta = {"source": path.name, "sha256": digest}
    if known is not None and digest.startswith(known.sha256_prefix):
        meta.update(architecture=known.arch, url=known.url, class_names=list(known.class_names or []) or None,
                    spec=known.spec)
    return state_dict, meta


def file_format(path):
    """"npz" for a zip archive of .npy members (or a non-zip file named .npz), else "pth".

    Only a regular file is opened (limits.open_regular), and only its zip
    directory is read.
    """
    with open_regular(path) as f:
        try:
            with zipfile.ZipFile(f) as archive:
                return "npz" if any(n.endswith(".npy") for n in archive.namelist()) else "pth"
        except ZIP_ERRORS:
            return "npz" if Path(path).suffix == ".npz" else "pth"


def info(path):
    """A summary of a weights file (.npz or .pth) for humans and the CLI."""
    path = Path(path)
    state_dict, meta = load(path)
    return {
        "path": str(path),
        "format": file_format(path),
        "architecture": meta.get("architecture"),
        "source": meta.get("source"),
        "sha256": meta.get("sha256"),
        "keys": len(state_dict),
        "params": count_params(state_dict),
        "classes": len(meta["class_names"]) if meta.get("class_names") else None,
        "bytes": path.stat().st_size,
    }
