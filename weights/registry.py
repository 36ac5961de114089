"""The torchvision checkpoints minixai knows how to fetch.

These are torchvision's classic ImageNet-1k weights (`IMAGENET1K_V1`); URLs
and parameter counts as in torchvision's `models/{alexnet,vgg,resnet}.py`.

Checksums: torchvision publishes no full SHA-256 digests. Each file name
ends in `-<hex>.pth`, and `torch.hub` verifies that the file's SHA-256 *starts
with* that hex prefix (`HASH_REGEX` and `check_hash` in `torch/hub.py`).
`Checkpoint.sha256_prefix` is that prefix and `store.fetch` verifies the same
way. Full digests reported by third-party projects that pinned these files
are kept in `reported_sha256` for reference only: they are not enforced,
because nobody here could check them against the real files offline.

Input spec (torchvision's `ImageClassification` preset): resize the short
side to 256, centre-crop 224, scale to [0, 1], normalise per channel with
mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
"""

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # the same rule as torch.hub


@lru_cache(maxsize=None)
def imagenet_classes():
    """The 1000 ImageNet-1k class names in torchvision's index order."""
    path = Path(__file__).with_name("imagenet_classes.json")
    names = tuple(json.loads(path.read_text(encoding="utf-8")))
    if len(names) != 1000:
        raise RuntimeError(f"{path} should list 1000 class names, found {len(names)}")
    return names


@dataclass(frozen=True)
class Checkpoint:
    """One downloadable checkpoint.

    name: what `fetch(name)` takes; arch: the `minixai.models` builder it
    fits; url: where torchvision downloads it from; num_params: torchvision's
    published count of learnable parameters (BatchNorm running statistics
    excluded), checked after conversion; class_names: the output classes.
    """

    name: str
    arch: str
    url: str
    num_params: int | None = None
    class_names: tuple | None = field(default=None, repr=False)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    input_size: int = 224
    resize_size: int = 256
    reported_sha256: str | None = None

    @property
    def filename(self):
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self):
        """The hex prefix in the file name that the file's SHA-256 must start with."""
        found = HASH_IN_NAME.search(self.filename)
        if found is None:
            raise ValueError(f"checkpoint file name {self.filename!r} carries no '-<hex>.' hash prefix")
        return found.group(1)

    @property
    def spec(self):
        """The input spec as a JSON-able dict (stored in the converted .npz)."""
        return {"mean": list(self.mean), "std": list(self.std),
                "input_size": self.input_size, "resize_size": self.resize_size}


def _torchvision(name, file, num_params, reported_sha256=None):
    return Checkpoint(name=name, arch=name, url=f"https://download.pytorch.org/models/{file}",
                      num_params=num_params, class_names=imagenet_classes(),
                      reported_sha256=reported_sha256)


_KNOWN = {c.name: c for c in [
    _torchvision("alexnet", "alexnet-owt-7be5be79.pth", 61_100_840,
                 "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"),
    _torchvision("vgg11", "vgg11-8a719046.pth", 132_863_336),
    _torchvision("vgg16", "vgg16-397923af.pth", 138_357_544,
                 "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"),
    _torchvision("resnet18", "resnet18-f37072fd.pth", 11_689_512,
                 "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec"),
    _torchvision("resnet34", "resnet34-b627a593.pth", 21_797_672),
    _torchvision("resnet50", "resnet50-0676ba61.pth", 25_557_032),
    # Inception v3 (IMAGENET1K_V1, ported from TensorFlow): 299 px crops of images resized to 342; the count
    # includes the auxiliary head (AuxLogits.*), which the checkpoint holds
    Checkpoint(name="inception_v3", arch="inception_v3",
               url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
               num_params=27_161_264, class_names=imagenet_classes(), input_size=299, resize_size=342),
]}


def get(name):
    """The Checkpoint called `name`; ValueError listing the known names otherwise."""
    try:
        return _KNOWN[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown checkpoint {name!r}; known: {', '.join(sorted(_KNOWN))}") from None


def list_known():
    """Every registered Checkpoint, sorted by name."""
    return [_KNOWN[name] for name in sorted(_KNOWN)]


def register(checkpoint, replace=False):
    """Add a Checkpoint (your own weights, or a test's) so `fetch` can find it."""
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"expected a Checkpoint, got {type(checkpoint).__name__}")
    checkpoint.sha256_prefix  # noqa: B018 -- validates the file name now, not at fetch time
    if checkpoint.name in _KNOWN and not replace:
        raise ValueError(f"checkpoint {checkpoint.name!r} is already registered; pass replace=True")
    _KNOWN[checkpoint.name] = checkpoint
    return checkpoint


def unregister(name):
    """Remove a registered checkpoint (KeyError if there is none)."""
    del _KNOWN[name]


def by_filename(filename):
    """The registered Checkpoint whose file is `filename`, or None."""
    return next((c for c in _KNOWN.values() if c.filename == filename), None)
