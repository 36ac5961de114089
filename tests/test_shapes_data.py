"""The shapes world: determinism, class balance, masks that cover exactly the drawn object."""
import numpy as np
import pytest

from minixai.data import shapes


def test_same_seed_same_batch_other_seed_other_batch():
    a, b, c = shapes.generate(10, seed=3), shapes.generate(10, seed=3), shapes.generate(10, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_fields_shapes_and_types():
    batch = shapes.generate(7, seed=0)
    assert batch.images.shape == (7, 3, 64, 64) and batch.images.dtype == np.float32
    assert batch.pixels.shape == (7, 64, 64, 3) and batch.pixels.min() >= 0 and batch.pixels.max() <= 1
    assert batch.masks.shape == (7, 64, 64) and batch.masks.dtype == bool
    assert batch.class_names == ["circle", "square", "triangle", "cross", "star"]
    # images are the pixels normalised with the spec of the shapes model
    expected = (batch.pixels.transpose(0, 3, 1, 2) - np.array(shapes.SPEC.mean)[:, None, None]) \
        / np.array(shapes.SPEC.std)[:, None, None]
    np.testing.assert_allclose(batch.images, expected, rtol=1e-5, atol=1e-5)


def test_classes_are_balanced():
    counts = np.bincount(shapes.generate(103, seed=5).labels, minlength=5)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103


def test_mask_is_where_the_object_was_drawn():
    """Pixels inside the mask carry the object's colour; rendering the same draw without the object
    changes exactly the masked pixels."""
    for label in range(5):
        rng_a, rng_b = np.random.default_rng(label), np.random.default_rng(label)
        pixels, mask = shapes.render(label, rng_a)
        assert 40 < mask.sum() < 64 * 64 / 4                  # a visible object, not the whole image
        # redo the same random draws up to the background, then compare
        radius = rng_b.uniform(8, 14)
        rng_b.uniform(radius + 2, 64 - radius - 2, 2)
        rng_b.uniform(0, 2 * np.pi)
        background = np.clip(shapes._background(rng_b), 0, 1)
        changed = np.abs(pixels - background).max(axis=2) > 1e-6
        assert np.array_equal(changed, mask)


def test_masks_differ_by_class_geometry():
    """Same centre and size: a circle covers more than a triangle, a star less than a square."""
    centre, radius = np.array([32.0, 32.0]), 12.0
    area = {name: shapes.object_mask(i, centre, radius, 0.3).sum() for i, name in enumerate(shapes.CLASS_NAMES)}
    assert area["circle"] == pytest.approx(np.pi * radius ** 2, rel=0.05)
    assert area["triangle"] < area["circle"] and area["star"] < area["square"]


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        shapes.generate(n)


def test_image_i_does_not_depend_on_how_many_are_generated():
    many, few, one = shapes.generate(12, seed=9), shapes.generate(4, seed=9), shapes.generate(1, seed=9, start=3)
    np.testing.assert_array_equal(many.images[:4], few.images)
    np.testing.assert_array_equal(many.images[3:4], one.images)
    assert many.labels[3] == one.labels[0]
