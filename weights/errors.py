"""The errors raised by `minixai.weights`.

Each is a subclass of a built-in error, so code that only expects a
`ValueError` (bad file) or an `OSError` (file not there) keeps working.
"""

import pickle


class WeightsFileError(ValueError):
    """A weights file that cannot be read: corrupt, truncated, too large for
    what it holds, not a regular file, or not a state dict of real, finite
    arrays. The message starts with the file's path and names the entry.
    """


class UnsafeCheckpointError(pickle.UnpicklingError, WeightsFileError):
    """A checkpoint's pickle asks for something other than tensors and storages.

    Raised before the requested global is imported or called: the file is
    refused, nothing in it is executed.
    """


class ChecksumError(ValueError):
    """A checkpoint file's SHA-256 does not match the registry."""


class WeightsNotAvailableError(OSError):
    """Weights are neither in a local cache nor downloadable right now.

    The message says which file (name and URL) to put into which directory.
    """
