"""A model's arrays by torchvision key: reading them out, loading them in (every key and shape checked),
casting them, moving them between CPU and GPU. ``Model.state_dict``, ``load_state_dict``, ``astype`` and ``to``
call these."""
import numpy as np

from .backend import array_module, to_host


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
            current = getattr(layer, attr)
            value = np.ascontiguousarray(to_host(weights[key]), dtype=current.dtype)
            setattr(layer, attr, array_module(current).asarray(value))      # stays on the model's device
    return model


def astype(model, dtype):
    """Cast every parameter and buffer in place (float64 for gradient checks); returns the model."""
    for _, layer, attr in entries(model):
        setattr(layer, attr, getattr(layer, attr).astype(dtype))
    return model


def to_device(model, device):
    """Every parameter and buffer as CuPy arrays on "cuda" / "cuda:N", or NumPy arrays on "cpu"; or, with an
    array module for `device` (anything with `asarray`, e.g. cupy), as that module's arrays."""
    if hasattr(device, "asarray"):
        return _move(model, device.asarray)
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "cpu":
        move = to_host
    else:
        try:
            import cupy
        except ImportError as e:
            raise ValueError("a model on the GPU needs CuPy and a CUDA GPU: pip install 'minixai[gpu]'") from e
        with cupy.cuda.Device(int(device.split(":")[1]) if ":" in device else 0):
            return _move(model, cupy.asarray)
    return _move(model, move)


def _move(model, move):
    for _, layer, attr in entries(model):
        setattr(layer, attr, move(getattr(layer, attr)))
    return model


def device_of(model):
    """"cpu" for NumPy weights, "cuda" for CuPy's (another array module: its name)."""
    first = next((getattr(layer, attr) for _, layer, attr in entries(model)), None)
    xp = np if first is None else array_module(first)
    return "cpu" if xp is np else "cuda" if xp.__name__ == "cupy" else xp.__name__


def _first(keys, n=10):
    return ", ".join(keys[:n]) + (" ..." if len(keys) > n else "")
