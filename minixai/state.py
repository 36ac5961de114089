"""A model's arrays by torchvision key: reading them out, loading them in (every key and shape checked),
casting them. ``Model.state_dict``, ``load_state_dict`` and ``astype`` call these."""
import numpy as np


def entries(model):
    """(key, layer, attribute) of every parameter, then every buffer (batch norm's running statistics)."""
    yield from model.parameters()
    for name, layer in model.named_layers():
        for attr in layer.buffers():
            yield f"{name}.{attr}", layer, attr


def state_dict(model):
    """{torchvision key: array} of every parameter and buffer (the arrays themselves, not copies)."""
    return {key: getattr(layer, attr) for key, layer, attr in entries(model)}


def load_state_dict(model, weights, strict=True):
    """Copy `weights` ({key: array}) into the layers. Missing or unexpected keys (with strict) and wrong
    shapes are named in one ValueError before anything is copied; batch-norm counters are ignored."""
    weights = {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
    found = {key: (layer, attr) for key, layer, attr in entries(model)}
    missing = sorted(set(found) - set(weights))
    unexpected = sorted(set(weights) - set(found))
    wrong = [f"{k}: expected {getattr(*found[k]).shape}, got {tuple(np.shape(weights[k]))}"
             for k in found if k in weights and tuple(np.shape(weights[k])) != getattr(*found[k]).shape]
    problems = []
    if missing and strict:
        problems.append(f"missing keys: {_first(missing)}")
    if unexpected and strict:
        problems.append(f"unexpected keys: {_first(unexpected)}")
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong[:10]))
    if problems:
        raise ValueError(f"weights do not fit {model.arch or 'the model'}: " + " | ".join(problems))
    for key, (layer, attr) in found.items():
        if key in weights:
            setattr(layer, attr, np.ascontiguousarray(weights[key], dtype=getattr(layer, attr).dtype))
    return model


def astype(model, dtype):
    """Cast every parameter and buffer in place (float64 for gradient checks); returns the model."""
    for _, layer, attr in entries(model):
        setattr(layer, attr, getattr(layer, attr).astype(dtype))
    return model


def _first(keys, n=10):
    return ", ".join(keys[:n]) + (" ..." if len(keys) > n else "")
