"""The limits that keep a hostile or broken file from costing a hang, memory or time.

Every check here runs before the memory it protects is allocated:

* Only regular files are opened (`open_regular`): a FIFO would block, a
  symlink to /dev/zero never ends, a directory is not a file. The check is
  made on the opened descriptor, so a file swapped in between is caught too.
* A pickle may be at most MAX_PICKLE_BYTES long (`unpickler.unpickle`): the
  unpickler builds about 80 bytes of Python objects per pickle byte at
  worst (a run of empty dicts), while torch writes about 160 bytes of pickle
  per tensor, so 4 MiB holds ~25,000 tensors and costs < 350 MB at worst.
* Zip members (`ZipArchive`): a member is read only up to the size its
  header declares, that size must be what the caller expects (a storage's
  bytes, an .npy array's bytes), and all members read together may inflate
  to at most MAX_RATIO times the archive's size plus SLACK_BYTES. torch
  stores storages uncompressed and weights deflate by about 1.1x, so a
  member inflating 50x to hundreds of MB is a zip bomb.
* Arrays cut out of storages (`check_views`): the arrays a checkpoint makes
  may take at most MAX_RATIO_VIEWS times the bytes their storages hold, plus
  SLACK_BYTES. torch keeps a stride-0 or overlapping view as a view; minixai
  copies each tensor into its own array, so a 609-byte file declaring a
  (16000, 16000) view of one element is refused instead of becoming 1 GiB.
"""

import math
import os
import reprlib
import stat
import zipfile

import numpy as np

from .errors import WeightsFileError

MiB = 1 << 20
MAX_DIMS = 64             # numpy's limit on the number of dimensions
MAX_PICKLE_BYTES = 4 * MiB
MAX_RATIO = 50
MAX_RATIO_VIEWS = 4
SLACK_BYTES = 16 * MiB
CHUNK = MiB
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError, NotImplementedError,
              ValueError, RuntimeError)   # RuntimeError: an encrypted member


def open_regular(path, what="weights file", error=WeightsFileError):
    """Open `path` for binary reading if it is a regular file (symlinks to one are fine).

    A FIFO, device, directory or socket raises `error` without a byte being
    read; a missing file raises FileNotFoundError naming `what`.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        target = f"{os.path.realpath(path)}, " if os.path.islink(path) else ""
        raise error(f"{path}: not a regular file ({target}{_kind(mode)}); a {what} must be a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _kind(mode):
    for test, name in [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]:
        if test(mode):
            return name
    return "not a file"


def short(value):
    """A bounded repr of untrusted data for an error message (one line, at most ~80 characters)."""
    return _SHORT.repr(value)


def megabytes(n):
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def read_exact(stream, nbytes, source, what):
    """Read exactly `nbytes` from `stream` into a fresh uint8 array, 1 MiB at a time."""
    out = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(out)
    done = 0
    while done < nbytes:
        got = stream.readinto(view[done: done + CHUNK])
        if not got:
            raise WeightsFileError(f"{source}: truncated inside {what}: {done} of {nbytes} bytes present")
        done += got
    return out


class ZipArchive:
    """The members of one zip file, read within the limits above; use as a context manager."""

    def __init__(self, file, source):
        self.source = source
        size = file.seek(0, os.SEEK_END)
        file.seek(0)
        self.budget = SLACK_BYTES + MAX_RATIO * size   # bytes that members may still inflate to
        self.file_size = size
        try:
            self.archive = zipfile.ZipFile(file)
        except ZIP_ERRORS as err:
            raise WeightsFileError(f"{source}: corrupt or truncated zip archive ({err})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.archive.close()
        return False

    def names(self):
        return list(dict.fromkeys(self.archive.namelist()))

    def size(self, name):
        """The uncompressed size that member `name`'s header declares."""
        return self.archive.getinfo(name).file_size

    def open(self, name, expected=None, what=None):
        """The member `name` as a stream, after checking its declared size.

        expected: the exact size the member must declare (None: any size
        within the budget). The declared size is charged to the budget.
        """
        what = what or f"member {name!r}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise WeightsFileError(f"{self.source}: {what} is missing from the archive") from None
        if expected is not None and info.file_size != expected:
            raise WeightsFileError(f"{self.source}: {what} holds {info.file_size} bytes, expected {expected}")
        if info.file_size > self.budget:
            raise WeightsFileError(
                f"{self.source}: {what} inflates to {megabytes(info.file_size)} (from "
                f"{megabytes(info.compress_size)} compressed); with the members before it that exceeds "
                f"{MAX_RATIO}x the file's {megabytes(self.file_size)} plus {megabytes(SLACK_BYTES)}: "
                "a zip bomb?")
        self.budget -= info.file_size
        try:
            return self.archive.open(info)
        except ZIP_ERRORS as err:   # an encrypted or unknown-compression member
            raise WeightsFileError(f"{self.source}: corrupt zip archive at {what} ({err})") from None

    def read(self, name, expected=None, what=None):
        """The bytes of member `name` (a uint8 array), exactly as many as its header declares."""
        what = what or f"member {name!r}"
        try:
            with self.open(name, expected, what) as member:
                return read_exact(member, self.size(name), self.source, what)
        except WeightsFileError:
            raise
        except ZIP_ERRORS as err:
            raise WeightsFileError(f"{self.source}: corrupt zip archive at {what} ({err})") from None


def check_shape(shape, itemsize, what):
    """Refuse a shape numpy cannot make even when empty: over 64 dimensions, or nonzero sizes whose
    product times `itemsize` bytes does not fit in 62 bits (an empty (0, 2**61) array included)."""
    if len(shape) > MAX_DIMS or math.prod(n for n in shape if n) * itemsize >= 2**62:
        raise WeightsFileError(f"{what} has the impossible shape {short(tuple(shape))}")


def check_views(tensors, storage_bytes, source):
    """Refuse a checkpoint whose tensors ({name: (nbytes, description)}) need far more memory than the
    `storage_bytes` their storages hold: stride-0 or overlapping views blown up into copies."""
    made = sum(nbytes for nbytes, _ in tensors.values())
    if made <= MAX_RATIO_VIEWS * storage_bytes + SLACK_BYTES:
        return
    worst = max(tensors, key=lambda name: tensors[name][0])
    raise WeightsFileError(
        f"{source}: its tensors would take {megabytes(made)} but their storages hold "
        f"{megabytes(storage_bytes)}: stride-0 or overlapping views beyond {MAX_RATIO_VIEWS}x plus "
        f"{megabytes(SLACK_BYTES)} are refused (largest: {worst!r}, {tensors[worst][1]})")
