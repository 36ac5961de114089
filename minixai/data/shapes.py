"""The shapes world: seeded synthetic RGB images of one coloured shape on a cluttered background.

Each image holds exactly one class-defining object (circle, square, triangle, cross or star) in a random
colour, size, position and rotation, on a background of colour gradients, pixel noise and distractor
blobs and strokes that belong to no class. Its ground-truth mask marks the object's pixels, so an
explanation can be scored by where its relevance lies (pointing game, relevance mass in the mask).

    batch = generate(n=100, seed=0)
    batch.images   (N, 3, H, W) float32, normalised with SPEC (the shapes model's input)
    batch.pixels   (N, H, W, 3) float32 in [0, 1]
    batch.labels   (N,) int64, balanced over the classes
    batch.masks    (N, H, W) bool
"""
from dataclasses import dataclass

import numpy as np

from ..spec import InputSpec

CLASS_NAMES = ["circle", "square", "triangle", "cross", "star"]
SIZE = 64
SPEC = InputSpec(mean=(0.46, 0.46, 0.45), std=(0.16, 0.16, 0.16), size=(SIZE, SIZE), class_names=CLASS_NAMES)


@dataclass
class ShapesBatch:
    images: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: list
    spec: InputSpec

    def __len__(self):
        return len(self.labels)


def _polygon_mask(vertices, grid):
    from matplotlib.path import Path        # on first use: `import minixai` does not load matplotlib
    return Path(vertices).contains_points(grid).reshape(SIZE, SIZE)


def _rotated(points, angle, centre):
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]]) + centre


def object_mask(label, centre, radius, angle, size=SIZE):
    """Boolean (size, size) mask of one shape: `radius` is the half-extent in pixels."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    grid = np.column_stack([xs.ravel(), ys.ravel()])
    name = CLASS_NAMES[label]
    if name == "circle":
        return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius ** 2
    if name == "square":
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * radius * 0.8
        return _polygon_mask(_rotated(corners, angle, centre), grid)
    if name == "triangle":
        t = angle + np.arange(3) * 2 * np.pi / 3
        return _polygon_mask(np.column_stack([np.cos(t), np.sin(t)]) * radius + centre, grid)
    if name == "cross":
        arm, half = radius, radius * 0.32
        bars = [np.array([[-arm, -half], [arm, -half], [arm, half], [-arm, half]]),
                np.array([[-half, -arm], [half, -arm], [half, arm], [-half, arm]])]
        return _polygon_mask(_rotated(bars[0], angle, centre), grid) | _polygon_mask(_rotated(bars[1], angle, centre), grid)
    t = angle + np.arange(10) * np.pi / 5                  # star: 5 outer and 5 inner points
    r = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
    return _polygon_mask(np.column_stack([np.cos(t) * r, np.sin(t) * r]) + centre, grid)


def _vivid(rng):
    """A saturated colour (objects and distractors alike, so colour alone gives nothing away)."""
    rgb = rng.uniform(0.0, 0.35, 3)
    rgb[rng.integers(3)] = rng.uniform(0.75, 1.0)
    if rng.random() < 0.5:
        rgb[rng.integers(3)] = rng.uniform(0.6, 1.0)
    return rgb


def _background(rng):
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    a, b = rng.uniform(0.2, 0.7, (2, 3))
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xs + np.sin(direction) * ys)[..., None]
    image = a + (b - a) * (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    for _ in range(rng.integers(2, 5)):                      # soft blobs: colour without a shape
        cx, cy, width = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.15)
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * width ** 2))[..., None]
        image = image * (1 - 0.8 * weight) + _vivid(rng) * 0.8 * weight
    for _ in range(rng.integers(1, 4)):                      # thin strokes: edges without a shape
        x0, y0, x1, y1 = rng.uniform(0, 1, 4)
        t = np.linspace(0, 1, 200)
        px = np.clip(((x0 + (x1 - x0) * t) * SIZE).astype(int), 0, SIZE - 1)
        py = np.clip(((y0 + (y1 - y0) * t) * SIZE).astype(int), 0, SIZE - 1)
        image[py, px] = _vivid(rng)
    return image + rng.normal(0, 0.04, image.shape)


def render(label, rng):
    """One (pixels (H, W, 3), mask (H, W)) pair of class `label`."""
    radius = rng.uniform(8, 14)
    centre = rng.uniform(radius + 2, SIZE - radius - 2, 2)
    mask = object_mask(label, centre, radius, rng.uniform(0, 2 * np.pi))
    image = _background(rng)
    shade = 1 + rng.normal(0, 0.03, image.shape)            # a little texture on the object
    image[mask] = (_vivid(rng) * shade)[mask]
    return np.clip(image, 0, 1).astype(np.float32), mask


def labels_for(n, seed=0):
    """Class of image i: every block of 5 consecutive images holds each class once, in a seeded order."""
    K = len(CLASS_NAMES)
    blocks = [np.random.default_rng([seed, 0, b]).permutation(K) for b in range(-(-n // K))]
    return np.concatenate(blocks)[:n].astype(np.int64)


def generate(n=100, seed=0, start=0):
    """Images start..start+n-1 of the world `seed`. Image i depends only on (seed, i), so
    generate(10, s)[3] is generate(4, s)[3] and generate(1, s, start=3)[0]. Classes are balanced:
    counts differ by at most one, however many images are asked for."""
    for name, value, low in (("n", n, 1), ("start", start, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be {'a positive' if low else 'a non-negative'} integer, got {value!r}")
    labels = labels_for(start + n, seed)[start:]
    pixels, masks = zip(*(render(label, np.random.default_rng([seed, 1, start + i])) for i, label in enumerate(labels)))
    pixels, masks = np.stack(pixels), np.stack(masks)
    images = SPEC.normalize(pixels.transpose(0, 3, 1, 2)).astype(np.float32)
    return ShapesBatch(np.ascontiguousarray(images), pixels, labels, masks, list(CLASS_NAMES), SPEC)
