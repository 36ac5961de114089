"""What every attribution method starts with: checked inputs, the output seed, one backward pass."""
import numpy as np
from tqdm.auto import tqdm

from ..validate import check_images, check_positive, check_targets


def prepare(model, x, target):
    """Validate x (N, C, H, W) and target; returns (x, targets or None)."""
    x = check_images(x, model.in_channels)
    targets = None if target is None else check_targets(target, x.shape[0], model.num_outputs)
    return x, targets


def output_seed(logits, targets):
    """d(explained score)/d(logits): one-hot rows for the targets, all ones for target=None (sum of logits)."""
    if targets is None:
        return np.ones_like(logits)
    seed = np.zeros_like(logits)
    seed[np.arange(len(targets)), targets] = 1
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
