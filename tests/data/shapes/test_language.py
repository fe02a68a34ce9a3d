"""Tests for shapes captions and statements (xmodal_keras/data/shapes/language.py)."""

import collections
import itertools
import re

import numpy as np
import pytest
from scene_samples import CAPTION_PATTERN, sampled_scenes

from xmodal_keras.data import shapes


def test_vocabulary_is_small_and_lowercase():
    assert len(shapes.VOCABULARY) <= 50
    assert all(re.fullmatch(r"[a-z]+", word) for word in shapes.VOCABULARY)
    assert set(shapes.SHAPES + shapes.COLOURS + shapes.SIZES) <= set(shapes.VOCABULARY)


# ----------------------------------------------------------------------------- captions


def _check_caption_truth(scene, caption):
    texts = [obj.description.text for obj in scene.objects]
    for text in texts:  # every object is mentioned
        assert text in caption, (caption, text)
    for i, j in itertools.permutations(range(len(texts)), 2):
        for relation in shapes.RELATIONS:
            stated = any(
                f"{texts[i]} {verb}{phrase} {texts[j]}" in caption
                for phrase in shapes.RELATION_PHRASES[relation]
                for verb in ("", "is ")
            ) or any(
                f"{texts[j]} with {texts[i]} {phrase}" in caption
                for phrase in shapes.RELATION_PRONOUN_PHRASES[relation]
            )
            if stated:
                assert shapes.relation_holds(scene.objects[i], scene.objects[j], relation)
                return True
    return False


def test_describe_scene_gives_five_distinct_true_captions():
    with_relation = 0
    multi_object_captions = 0
    for index, scene in enumerate(sampled_scenes(200, 64, seed=3)):
        captions = shapes.describe_scene(scene, np.random.default_rng(index))
        assert len(captions) == 5 and len(set(captions)) == 5
        for caption in captions:
            assert CAPTION_PATTERN.match(caption), caption
            assert set(caption.split()) <= set(shapes.VOCABULARY)
            stated = _check_caption_truth(scene, caption)
            if len(scene.objects) > 1:
                multi_object_captions += 1
                with_relation += stated
    assert with_relation >= 0.6 * multi_object_captions


def test_describe_scene_examples_and_synonyms():
    a = shapes.SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    b = shapes.SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    scene = shapes.Scene("a.png", (a, b), shapes.Relation(0, "left", 1), "striped")
    seen = set()
    for seed in range(40):
        seen.update(shapes.describe_scene(scene, np.random.default_rng(seed)))
    assert "a small red circle to the left of a large blue square" in seen
    assert "a large blue square with a small red circle on its left" in seen
    assert "a small red circle on the left of a large blue square" in seen
    assert "a large blue square to the right of a small red circle" in seen
    assert "a small red circle and a large blue square" in seen
    one = shapes.Scene("b.png", (a,), None, "checkered")
    assert "there is a small red circle on a checkered background" in {
        caption
        for seed in range(40)
        for caption in shapes.describe_scene(one, np.random.default_rng(seed))
    }


def test_describe_scene_rejects_bad_arguments():
    scene = sampled_scenes(1, 32)[0]
    with pytest.raises(ValueError, match=r"Received: num_captions=0"):
        shapes.describe_scene(scene, np.random.default_rng(0), num_captions=0)
    with pytest.raises(ValueError, match=r"Received: num_captions=99"):
        shapes.describe_scene(scene, np.random.default_rng(0), num_captions=99)
    lonely = shapes.Scene("a.png", scene.objects[:1], shapes.Relation(0, "left", 1), "noisy")
    with pytest.raises(ValueError, match=r"Received: relation=Relation\(.*\) with 1 objects"):
        shapes.describe_scene(lonely, np.random.default_rng(0))


# ----------------------------------------------------------------------------- statements


def test_statement_text_and_parse_round_trip():
    red = shapes.ObjectDescription("circle", "red", "small")
    blue = shapes.ObjectDescription("square", "blue", "large")
    cases = {
        shapes.Statement(red): "there is a small red circle",
        shapes.Statement(
            red, "left", blue
        ): "a small red circle is to the left of a large blue square",
        shapes.Statement(
            red, "right", blue
        ): "a small red circle is to the right of a large blue square",
        shapes.Statement(blue, "above", red): "a large blue square is above a small red circle",
        shapes.Statement(blue, "below", red): "a large blue square is below a small red circle",
    }
    for statement, text in cases.items():
        assert shapes.statement_text(statement) == text
        assert shapes.parse_statement(text) == statement
    for bad in ["a small red circle", "there is a huge red circle", "a red circle is above it"]:
        with pytest.raises(ValueError, match="Not a shapes statement"):
            shapes.parse_statement(bad)


def test_statement_requires_relation_and_reference_together():
    red = shapes.ObjectDescription("circle", "red", "small")
    with pytest.raises(ValueError, match=r"Received: relation='left', reference=None"):
        shapes.Statement(red, "left")
    with pytest.raises(ValueError, match=r"Received: colour='pink'"):
        shapes.ObjectDescription("circle", "pink", "small")
    with pytest.raises(ValueError, match=r"Received: relation='near'"):
        shapes.Statement(red, "near", red)


def test_statement_holds_on_a_hand_made_scene():
    a = shapes.SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    b = shapes.SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    c = shapes.SceneObject("star", "green", "small", x=0.2, y=0.15, half_extent=0.1)
    scene = shapes.Scene("a.png", (a, b, c), shapes.Relation(0, "left", 1), "noisy")

    def holds(text):
        return shapes.statement_holds(scene, shapes.parse_statement(text))

    assert holds("a small red circle is to the left of a large blue square")
    assert holds("a large blue square is to the right of a small red circle")
    assert holds("a small green star is above a small red circle")
    assert holds("there is a small green star")
    assert not holds("there is a large green star")
    assert not holds("a small red circle is to the right of a large blue square")
    assert not holds("a small red circle is above a large blue square")
    assert holds("a small red circle is below a small green star")
    assert holds("a small green star is to the left of a large blue square")  # diagonal
    assert not holds("a small red circle is above a small green star")
    assert not holds("a small red square is to the left of a large blue square")


def test_statement_pairs_are_hard_negatives():
    kinds = collections.Counter()
    for index, scene in enumerate(sampled_scenes(400, 32, seed=4)):
        positive, negative = shapes.make_statement_pair(scene, np.random.default_rng(index))
        assert shapes.statement_holds(scene, positive)
        assert not shapes.statement_holds(scene, negative)
        before, after = shapes.statement_fields(positive), shapes.statement_fields(negative)
        changed = [field for field in before if before[field] != after[field]]
        assert len(changed) == 1, (positive, negative)
        kinds[changed[0].split(".")[-1]] += 1
        assert negative.subject != negative.reference
        for statement in (positive, negative):
            text = shapes.statement_text(statement)
            assert CAPTION_PATTERN.match(text) and set(text.split()) <= set(shapes.VOCABULARY)
            assert shapes.parse_statement(text) == statement
    assert set(kinds) == {"shape", "colour", "size", "relation"}


def test_text_alone_cannot_tell_true_from_false_statements():
    """False statements follow the true statements' text distribution (chance for text)."""
    true_fields, false_fields = [], []
    for index, scene in enumerate(sampled_scenes(3000, 32, seed=5)):
        positive, negative = shapes.make_statement_pair(scene, np.random.default_rng(index))
        true_fields.append(shapes.statement_fields(positive))
        false_fields.append(shapes.statement_fields(negative))
    for field in true_fields[0]:  # every field's distribution matches
        true_counts = collections.Counter(f[field] for f in true_fields)
        false_counts = collections.Counter(f[field] for f in false_fields)
        total_variation = sum(
            abs(true_counts[v] - false_counts[v]) for v in set(true_counts) | set(false_counts)
        ) / (2 * len(true_fields))
        assert total_variation < 0.04, (field, true_counts, false_counts)
    # A per-field naive Bayes text classifier, trained on half, is at chance on the rest.
    half = len(true_fields) // 2
    counts = collections.defaultdict(lambda: np.ones(2))
    for label, rows in ((1, true_fields[:half]), (0, false_fields[:half])):
        for row in rows:
            for item in row.items():
                counts[item][label] += 1
    correct = 0
    for label, rows in ((1, true_fields[half:]), (0, false_fields[half:])):
        for row in rows:
            score = sum(np.log(counts[item][1] / counts[item][0]) for item in row.items())
            correct += (score > 0) == bool(label)
    accuracy = correct / (2 * (len(true_fields) - half))
    assert 0.46 < accuracy < 0.54
