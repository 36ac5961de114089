"""What every reader checks on the state dict it returns, and what `convert` checks before writing.

`check_arrays`: weights are real and finite. A complex array would lose its
imaginary part silently when copied into a float32 layer, and a NaN or
infinite weight would only show up much later as "x contains NaN"; both
are refused here, naming the file and the entry.

`check_fits`: every key of an architecture is present with its shape, and
nothing else is there (BatchNorm's `num_batches_tracked` counters excepted,
as the models ignore them).
"""

import numpy as np

from .errors import WeightsFileError
from .limits import short

IGNORED_SUFFIX = "num_batches_tracked"


def check_arrays(state_dict, source):
    """Refuse complex, non-numeric, NaN or infinite entries of {name: array}; returns state_dict."""
    for name, array in state_dict.items():
        if array.dtype.kind not in "biuf":
            raise WeightsFileError(f"{source}: entry {short(name)} has dtype {array.dtype}; weights must be real "
                                   "numbers (float, int or bool)")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            nan = int(np.isnan(array).sum())
            inf = int(array.size - nan - np.isfinite(array).sum())
            raise WeightsFileError(f"{source}: entry {short(name)} {tuple(array.shape)} holds {nan} NaN and "
                                   f"{inf} infinite values; weights must be finite")
    return state_dict


def check_fits(state_dict, expected, source, arch):
    """Check {name: array} against `expected` ({name: shape}) of architecture `arch`.

    Raises WeightsFileError naming the missing and unexpected keys and the
    wrong shapes (the first few of each).
    """
    have = {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith(IGNORED_SUFFIX)}
    want = {k: tuple(s) for k, s in expected.items() if not k.endswith(IGNORED_SUFFIX)}
    problems = []
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    wrong = [f"{k}: {arch} needs {want[k]}, the file has {have[k]}" for k in want
             if k in have and have[k] != want[k]]
    for label, items in [("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)]:
        if items:
            shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightsFileError(f"{source}: does not fit {arch}: " + "; ".join(problems))
