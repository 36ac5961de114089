"""What a model expects as input: normalisation, size and the names of its classes."""
from dataclasses import dataclass, field

import numpy as np

from .backend import array_module

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class InputSpec:
    """x = (pixels in [0, 1] - mean) / std, per channel, at `size` = (H, W)."""
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    size: tuple = (224, 224)
    class_names: list = field(default_factory=list)

    def _stats(self, dtype, xp=np):
        mean = xp.asarray(self.mean, dtype=dtype)[:, None, None]
        std = xp.asarray(self.std, dtype=dtype)[:, None, None]
        return mean, std

    def normalize(self, pixels):
        """Pixels in [0, 1], shape (..., C, H, W) -> the model's input space (on the pixels' device)."""
        mean, std = self._stats(pixels.dtype, array_module(pixels))
        return (pixels - mean) / std

    def denormalize(self, x):
        """The model's input space -> pixels in [0, 1] (not clipped; on x's device)."""
        mean, std = self._stats(x.dtype, array_module(x))
        return x * std + mean

    def valid_range(self, dtype=np.float32, like=None):
        """(low, high) per channel, shape (C, 1, 1): the images of pixels 0 and 1 in input space (NumPy arrays,
        or on the device of the array `like`)."""
        mean, std = self._stats(dtype, np if like is None else array_module(like))
        return (0 - mean) / std, (1 - mean) / std

    @property
    def num_classes(self):
        return len(self.class_names)

    def class_index(self, label):
        """A class given by index or by name -> its index."""
        if isinstance(label, (int, np.integer)):
            return int(label)
        if label in self.class_names:
            return self.class_names.index(label)
        lowered = [c.lower() for c in self.class_names]
        if isinstance(label, str) and label.lower() in lowered:
            return lowered.index(label.lower())
        raise ValueError(f"unknown class {label!r}: give an index in [0, {self.num_classes}) or one of the "
                         f"model's class names, e.g. {', '.join(self.class_names[:5])}")
