"""What every attribution method starts with: checked inputs, the output seed, one backward pass."""
import functools

import numpy as np
from tqdm.auto import tqdm

from ..backend import array_module, to_host
from ..validate import check_images, check_positive, check_targets


def prepare(model, x, target):
    """Validate x (N, C, H, W) and target; returns (x on the model's device, targets (N,) or None)."""
    x = check_images(model.place(x), model.in_channels)
    targets = None if target is None else check_targets(target, x.shape[0], model.num_outputs)
    return x, targets


def returns_like_input(method):
    """Give `method`'s result back as the kind of array x was: NumPy for a NumPy x (also when the model is
    on a GPU: x is copied there by `prepare`, the result copied back once, explicitly), a GPU array for a
    GPU x. A tuple result (attributions, delta) is converted item by item."""
    @functools.wraps(method)
    def run(model, x, *args, **kwargs):
        result = method(model, x, *args, **kwargs)
        if not hasattr(x, "shape") or array_module(x) is not np:
            return result
        return tuple(to_host(r) for r in result) if isinstance(result, tuple) else to_host(result)
    return run


def output_seed(logits, targets):
    """d(explained score)/d(logits): one-hot rows for the targets, all ones for target=None (sum of logits)."""
    xp = array_module(logits)
    if targets is None:
        return xp.ones_like(logits)
    seed = xp.zeros_like(logits)
    seed[xp.arange(len(targets)), xp.asarray(targets)] = 1
    return seed


def input_gradient(model, x, targets, rule=None, capture=()):
    """(d score / d x under `rule`, the tape of the pass) for checked inputs; tape.output are the logits."""
    tape = model.record(x, capture)
    return model.backward(output_seed(tape.output, targets), rule, tape), tape


def batches(n, batch_size):
    """Index slices of at most batch_size (None: all at once)."""
    size = n if batch_size is None else batch_size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def sample_chunks(n, n_images, batch_size, desc, progress):
    """Slices of range(n) (noise samples, path points) such that one pass over a chunk of all n_images holds
    at most batch_size images (None: all n at once); a progress bar when there is more than one chunk."""
    if batch_size is not None:
        check_positive(batch_size, "batch_size")
    chunks = batches(n, max(1, (batch_size or n * n_images) // n_images))
    return tqdm(chunks, desc=desc, disable=not progress or len(chunks) < 2)
