"""What every architecture builder shares: the ImageNet input spec and where the weights come from.

``weights=`` accepts
    None                      seeded random initialisation (``minixai.models.initialisation``);
    a dict                    {torchvision key: array}, e.g. ``model.state_dict()`` or a converted checkpoint;
    a path to ``.npz``        the converted format (``minixai.weights.load_npz``);
    a path to ``.pth``/``.pt`` a torchvision checkpoint, read without torch (``minixai.weights.load_pth``);
    ``"imagenet"``            torchvision's ImageNet weights from the local cache (``minixai.weights.fetch``;
                              offline and not cached, this raises ``WeightsNotAvailableError`` saying
                              which file to put where).
Every key and shape is checked (``Model.load_state_dict``): mismatches are named, nothing is skipped.
"""
import os
from collections.abc import Mapping
from pathlib import Path

from minixai.model import Model
from minixai.spec import InputSpec
from minixai.validate import check_positive

from minixai.weights import imagenet_classes as registry_classes

from .initialisation import initialise

IMAGENET_CLASSES = 1000


def imagenet_classes():
    """The 1000 ImageNet class names, in the order of torchvision's logits (one list, kept in minixai.weights)."""
    return list(registry_classes())


def imagenet_spec(num_classes=IMAGENET_CLASSES):
    """ImageNet normalisation at 224x224; class names "class 0", "class 1", ... for a non-ImageNet head."""
    if num_classes == IMAGENET_CLASSES:
        names = imagenet_classes()
    else:
        names = [f"class {i}" for i in range(num_classes)]
    return InputSpec(size=(224, 224), class_names=names)


def read_weights(weights, arch):
    """The `weights=` argument -> (state dict or None, metadata dict)."""
    if weights is None:
        return None, {}
    if isinstance(weights, Mapping):
        return dict(weights), {}
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be None, a dict, a path to .npz/.pth or 'imagenet', "
                        f"got {type(weights).__name__}")
    from minixai import weights as store          # imported here: models work with dicts alone

    if weights == "imagenet":
        return store.load_npz(store.fetch(arch))
    path = Path(weights)
    if path.suffix.lower() not in (".npz", ".pth", ".pt"):
        raise ValueError(f"weights={str(weights)!r}: expected None, a dict, 'imagenet', or a path ending in "
                         f".npz, .pth or .pt")
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix.lower() == ".npz":
        return store.load_npz(path)
    return store.load_pth(path), {}


def build(root, arch, weights=None, seed=0, num_classes=IMAGENET_CLASSES, linear_init="normal", device="cpu"):
    """Wrap `root` in a Model with the ImageNet spec, then load `weights` or initialise from `seed`, and put
    it on `device` ("cpu", "cuda", "cuda:N": see Model.to)."""
    check_positive(num_classes, "num_classes")
    model = Model(root, spec=imagenet_spec(num_classes), arch=arch)
    state, meta = read_weights(weights, arch)
    if state is None:
        return initialise(model, seed, linear=linear_init).to(device)
    saved_arch = meta.get("architecture")
    if saved_arch is not None and str(saved_arch) != arch:
        raise ValueError(f"these weights are for {saved_arch!r}, not {arch!r}: use models.{saved_arch}(weights=...)")
    model.load_state_dict(state)
    apply_meta(model.spec, meta)
    return model.to(device)


def apply_meta(spec, meta):
    """Take class names and normalisation from a converted file's metadata, where it has them."""
    names = meta.get("class_names")
    if names is not None and len(names) == spec.num_classes:
        spec.class_names = [str(n) for n in names]
    saved = meta.get("spec") or {}
    if "mean" in saved and "std" in saved:
        spec.mean, spec.std = tuple(saved["mean"]), tuple(saved["std"])
    if "input_size" in saved:
        size = saved["input_size"]
        spec.size = (size, size) if isinstance(size, int) else tuple(size)
