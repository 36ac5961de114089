"""What every attribution method starts with: checked inputs, the output seed, one backward pass."""
import numpy as np

from ..validate import check_images, check_targets


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


def input_gradient(model, x, targets, rule=None, capture=None):
    """(d score / d x under `rule`, logits) for checked inputs."""
    logits = model.forward(x, capture=capture)
    return model.backward(output_seed(logits, targets), rule), logits


def batches(n, batch_size):
    """Index slices of at most batch_size (None: all at once)."""
    size = n if batch_size is None else batch_size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
