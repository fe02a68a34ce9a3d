"""Tests for drawing shapes scenes (xmodal_keras/data/shapes/render.py)."""

import itertools

import numpy as np
import pytest
from scene_samples import sampled_scenes

from xmodal_keras.data import shapes


def _object_pixels(obj, image_size, seed):
    """Pixels close to the object's colour when it is rendered alone on its background."""
    scene = shapes.Scene("one.png", (obj,), None, "noisy")
    image = shapes.render_scene(scene, image_size, np.random.default_rng(seed)).astype(int)
    colour = np.array(shapes.COLOUR_RGB[obj.colour])
    return np.all(np.abs(image - colour) < 50, axis=-1)


def test_stated_relation_is_visually_true_in_rendered_pixels():
    for scene in sampled_scenes(60, 32, seed=2):
        if scene.relation is None:
            continue
        a, b = scene.objects[0], scene.objects[1]
        mask_a, mask_b = _object_pixels(a, 32, 0), _object_pixels(b, 32, 1)
        assert mask_a.sum() >= 9 and mask_b.sum() >= 9
        rows_a, cols_a = np.nonzero(mask_a)
        rows_b, cols_b = np.nonzero(mask_b)
        relation = scene.relation.relation
        if relation == "left":
            assert cols_a.max() + 1 < cols_b.min()
        elif relation == "right":
            assert cols_b.max() + 1 < cols_a.min()
        elif relation == "above":
            assert rows_a.max() + 1 < rows_b.min()
        else:
            assert rows_b.max() + 1 < rows_a.min()


def test_render_scene_shape_dtype_and_determinism():
    scene = sampled_scenes(1, 48)[0]
    image = shapes.render_scene(scene, 48, np.random.default_rng(3))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    again = shapes.render_scene(scene, 48, np.random.default_rng(3))
    np.testing.assert_array_equal(image, again)


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_every_shape_and_colour_is_drawn_at_its_centre(shape):
    for colour in shapes.COLOURS:
        obj = shapes.SceneObject(shape, colour, "small", x=0.5, y=0.5, half_extent=0.11)
        scene = shapes.Scene("a.png", (obj,), None, "striped")
        image = shapes.render_scene(scene, 32, np.random.default_rng(0)).astype(int)
        centre = image[16, 16]
        assert np.all(np.abs(centre - np.array(shapes.COLOUR_RGB[colour])) < 40), (colour, centre)
        corner = image[1, 1]  # the background stays dark
        assert corner.max() < 170


def test_small_shapes_are_distinguishable_at_32_px():
    masks = {
        shape: _object_pixels(shapes.SceneObject(shape, "white", "small", 0.5, 0.5, 0.11), 32, 0)
        for shape in shapes.SHAPES
    }
    for first, second in itertools.combinations(shapes.SHAPES, 2):
        assert np.sum(masks[first] != masks[second]) >= 4, (first, second)
    small = _object_pixels(shapes.SceneObject("square", "red", "small", 0.5, 0.5, 0.11), 32, 0)
    large = _object_pixels(shapes.SceneObject("square", "red", "large", 0.5, 0.5, 0.19), 32, 0)
    assert large.sum() >= 2.2 * small.sum()
