"""Tests for shapes scenes: sampling and relations (xmodal_keras/data/shapes/scene.py)."""

import collections
import itertools

import numpy as np
import pytest
from scene_samples import sampled_scenes

from xmodal_keras.data import shapes


def test_constants_cover_the_issue():
    assert len(shapes.SHAPES) >= 5 and len(set(shapes.SHAPES)) == len(shapes.SHAPES)
    assert len(shapes.COLOURS) >= 6 and len(set(shapes.COLOURS)) == len(shapes.COLOURS)
    assert shapes.SIZES == ("small", "large")
    assert shapes.RELATIONS == ("left", "right", "above", "below")
    assert set(shapes.BACKGROUNDS) == {"noisy", "shaded", "striped", "checkered"}


@pytest.mark.parametrize("image_size", [32, 64])
def test_sampled_scenes_are_well_formed(image_size):
    scenes = sampled_scenes(300, image_size)
    counts = collections.Counter(len(scene.objects) for scene in scenes)
    assert set(counts) == {1, 2, 3}
    assert {scene.background for scene in scenes} == set(shapes.BACKGROUNDS)
    relations = collections.Counter(s.relation.relation for s in scenes if s.relation)
    assert set(relations) == set(shapes.RELATIONS)
    for scene in scenes:
        descriptions = [obj.description for obj in scene.objects]
        assert len(set(descriptions)) == len(descriptions)
        for obj in scene.objects:  # inside the image
            assert obj.half_extent + shapes.EDGE_MARGIN <= obj.x <= 1 - obj.half_extent
            assert obj.half_extent + shapes.EDGE_MARGIN <= obj.y <= 1 - obj.half_extent
        for a, b in itertools.combinations(scene.objects, 2):  # bounding boxes do not touch
            reach = a.half_extent + b.half_extent
            assert abs(a.x - b.x) > reach or abs(a.y - b.y) > reach
        if len(scene.objects) == 1:
            assert scene.relation is None
        else:
            assert (scene.relation.subject, scene.relation.reference) == (0, 1)


@pytest.mark.parametrize("image_size", [32, 64])
def test_stated_relation_has_clear_separation_in_pixels(image_size):
    for scene in sampled_scenes(300, image_size, seed=1):
        if scene.relation is None:
            continue
        a, b = scene.objects[0], scene.objects[1]
        relation = scene.relation.relation
        horizontal = relation in ("left", "right")
        first, second = (a, b) if relation in ("left", "above") else (b, a)
        along = (second.x - first.x) if horizontal else (second.y - first.y)
        across = abs(a.y - b.y) if horizontal else abs(a.x - b.x)
        # The boxes are >= 2 px apart along the relation axis and the centres roughly aligned
        # on the other axis, so the orthogonal relations are clearly false.
        assert (along - a.half_extent - b.half_extent) * image_size >= 2 - 1e-6
        assert across <= 0.1 * (a.half_extent + b.half_extent) + 1e-4
        assert shapes.relation_holds(a, b, relation)
        for other in shapes.RELATIONS:
            if other != relation:
                assert not shapes.relation_holds(a, b, other)


def test_sample_scene_is_deterministic():
    first = shapes.sample_scene(np.random.default_rng(11), "a.png", 64)
    second = shapes.sample_scene(np.random.default_rng(11), "a.png", 64)
    assert first == second
    assert first.image_id == "a.png"
