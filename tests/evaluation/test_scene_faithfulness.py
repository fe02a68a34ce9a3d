"""Tests for scene faithfulness of shapes captions."""

import itertools
import re

import pytest

from xmodal_keras.data.shapes import (
    COLOURS,
    INVERSE_RELATION,
    RELATION_PHRASES,
    RELATION_PRONOUN_PHRASES,
    SHAPES,
    SIZES,
    TOKEN_FILE,
    ObjectDescription,
    Relation,
    Scene,
    SceneObject,
    Statement,
    read_scenes,
)
from xmodal_keras.evaluation.scene_faithfulness import (
    CaptionClaims,
    FaithfulnessCheck,
    caption_claims,
    caption_faithfulness,
    caption_is_faithful,
    scene_faithfulness,
    scene_faithfulness_details,
)

RED_CIRCLE = ObjectDescription("circle", "red", "small")
BLUE_SQUARE = ObjectDescription("square", "blue", "large")
GREEN_STAR = ObjectDescription("star", "green", "small")


@pytest.fixture
def scene() -> Scene:
    """Small red circle left of a large blue square; a small green star well below both."""
    a = SceneObject("circle", "red", "small", x=0.2, y=0.3, half_extent=0.1)
    b = SceneObject("square", "blue", "large", x=0.7, y=0.3, half_extent=0.2)
    c = SceneObject("star", "green", "small", x=0.5, y=0.85, half_extent=0.1)
    return Scene("a.png", (a, b, c), Relation(0, "left", 1), "striped")


@pytest.fixture(scope="module")
def references(tiny_shapes_dir) -> list[tuple[str, str]]:
    lines = (tiny_shapes_dir / TOKEN_FILE).read_text(encoding="utf-8").splitlines()
    pairs = []
    for line in lines:
        key, caption = line.split("\t")
        pairs.append((key.split("#")[0], caption))
    return pairs


@pytest.fixture(scope="module")
def scenes(tiny_shapes_dir) -> dict[str, Scene]:
    return read_scenes(tiny_shapes_dir)


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text, objects, relations, background",
    [
        ("a small red circle", [RED_CIRCLE], [], None),
        ("there is a small red circle on a striped background", [RED_CIRCLE], [], "striped"),
        ("a noisy background with a small red circle", [RED_CIRCLE], [], "noisy"),
        ("an image of a small red circle", [RED_CIRCLE], [], None),
        (
            "a small red circle to the left of a large blue square",
            [RED_CIRCLE, BLUE_SQUARE],
            [(RED_CIRCLE, "left", BLUE_SQUARE)],
            None,
        ),
        (
            "a large blue square is right of a small red circle and there is a small green star",
            [BLUE_SQUARE, RED_CIRCLE, GREEN_STAR],
            [(BLUE_SQUARE, "right", RED_CIRCLE)],
            None,
        ),
        (
            "a large blue square with a small red circle on its left and a small green star",
            [BLUE_SQUARE, RED_CIRCLE, GREEN_STAR],
            [(RED_CIRCLE, "left", BLUE_SQUARE)],
            None,
        ),
        (
            "a small green star under a large blue square on a checkered background",
            [GREEN_STAR, BLUE_SQUARE],
            [(GREEN_STAR, "below", BLUE_SQUARE)],
            "checkered",
        ),
        (
            "a picture of a small red circle and a large blue square and a small green star",
            [RED_CIRCLE, BLUE_SQUARE, GREEN_STAR],
            [],
            None,
        ),
        ("  A Small RED circle  ", [RED_CIRCLE], [], None),  # normalised
    ],
)
def test_caption_claims_parses_the_grammar(text, objects, relations, background):
    claims = caption_claims(text)
    assert claims == CaptionClaims(
        objects=tuple(objects),
        relations=tuple(Statement(*relation) for relation in relations),
        background=background,
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "circle",
        "a small red",  # truncated mid-object
        "a small red circle to the left of",  # truncated mid-relation
        "a small red circle to the left",
        "a small red circle and",
        "a small small red circle",  # repeated word
        "a small red circle circle",
        "a small red circle is",
        "a small red circle is a large blue square",
        "a large blue square with a small red circle",  # pronoun phrase missing
        "a picture of there is a small red circle",
        "a small red circle on a striped background on a noisy background",
        "a small red circle on a purple background",
        "a huge red circle",
        "a small red circle <unk>",
        "a small red circle .",
    ],
)
def test_caption_claims_refuses_text_outside_the_grammar(text):
    with pytest.raises(ValueError, match=r"Not a shapes caption: .*Received: text="):
        caption_claims(text)


def test_caption_claims_accepts_bytes_and_refuses_other_types():
    assert caption_claims(b"a small red circle").objects == (RED_CIRCLE,)
    with pytest.raises(ValueError, match="Received: text=3"):
        caption_claims(3)


# ----------------------------------------------------------------------------- verdicts


def test_hand_made_scene_verdicts(scene):
    assert caption_faithfulness(scene, "a small red circle left of a large blue square") == (
        FaithfulnessCheck(True, None)
    )
    assert caption_is_faithful(scene, "a large blue square with a small red circle to its left")
    assert caption_is_faithful(scene, "a small green star below a small red circle")
    assert caption_is_faithful(scene, "there is a small green star on a noisy background")
    cases = {
        "a small red circle right of a large blue square": (
            "relation is false: a small red circle is to the right of a large blue square"
        ),
        "a small red circle above a large blue square": (
            "relation is false: a small red circle is above a large blue square"
        ),
        "a small green star above a small red circle": (
            "relation is false: a small green star is above a small red circle"
        ),
        "a large red circle": "object not in the scene: a large red circle",
        "a small red circle and a small yellow cross": (
            "object not in the scene: a small yellow cross"
        ),
        "a small red circle and a small red circle": (
            "object mentioned 2 times, the scene has 1: a small red circle"
        ),
        "a small red circle left of a small red circle": (
            "object mentioned 2 times, the scene has 1: a small red circle"
        ),
        "": "unparseable: the caption is empty",
        "red red red": (
            "unparseable: expected an object 'a <size> <colour> <shape>': 'a', found 'red' (word 1)"
        ),
    }
    for text, reason in cases.items():
        assert caption_faithfulness(scene, text) == FaithfulnessCheck(False, reason), text
        assert not caption_is_faithful(scene, text)


def test_background_is_checked_only_when_asked(scene):
    text = "a small red circle on a noisy background"
    assert caption_is_faithful(scene, text)
    check = caption_faithfulness(scene, text, check_background=True)
    assert check == FaithfulnessCheck(False, "wrong background: noisy (the scene's is striped)")
    assert caption_is_faithful(
        scene, "a small red circle on a striped background", check_background=True
    )


# ----------------------------------------------------------------------------- the dataset


def test_every_reference_caption_is_faithful(references, scenes):
    for image_id, caption in references:
        assert caption_faithfulness(scenes[image_id], caption) == FaithfulnessCheck(True), caption
    first = dict(references)
    assert scene_faithfulness(scenes, first) == 1.0


_OBJECT = re.compile(rf"\ba ({'|'.join(SIZES)}) ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})\b")


_FIELD_INDEX = {"size": 0, "colour": 1, "shape": 2}
_FIELD_VALUES = {"size": SIZES, "colour": COLOURS, "shape": SHAPES}


def _changed(scene: Scene, words: tuple[str, str, str], field: str) -> tuple | None:
    """(size, colour, shape) with `field` changed so that no scene object fits; or None."""
    present = {(o.size, o.colour, o.shape) for o in scene.objects}
    for value in _FIELD_VALUES[field]:
        candidate = list(words)
        candidate[_FIELD_INDEX[field]] = value
        if tuple(candidate) not in present:
            return tuple(candidate)
    return None


@pytest.mark.parametrize("field", ["size", "colour", "shape"])
def test_one_wrong_attribute_makes_a_caption_unfaithful(references, scenes, field):
    changed_count = 0
    for image_id, caption in references:
        scene = scenes[image_id]
        matches = list(_OBJECT.finditer(caption))
        match = matches[len(caption) % len(matches)]  # vary which object is changed
        new = _changed(scene, match.groups(), field)
        if new is None:  # e.g. a small and a large blue star: no size is wrong
            continue
        changed_count += 1
        changed = caption[: match.start()] + "a " + " ".join(new) + caption[match.end() :]
        check = caption_faithfulness(scene, changed)
        assert check == FaithfulnessCheck(False, f"object not in the scene: a {' '.join(new)}")
    assert changed_count >= 0.9 * len(references)


def _flip_relation(caption: str) -> str | None:
    """The caption with its relation phrase replaced by one of the inverse relation."""
    table = [
        (phrase, phrases[INVERSE_RELATION[relation]][0])
        for phrases in (RELATION_PRONOUN_PHRASES, RELATION_PHRASES)
        for relation, options in phrases.items()
        for phrase in options
    ]
    for phrase, inverse in sorted(table, key=lambda item: -len(item[0])):
        pattern = rf"(?<= ){re.escape(phrase)}(?= |$)"
        if re.search(pattern, caption):
            return re.sub(pattern, inverse, caption, count=1)
    return None


def test_a_flipped_relation_makes_a_caption_unfaithful(references, scenes):
    flipped = 0
    for image_id, caption in references:
        new = _flip_relation(caption)
        if new is None:
            assert not caption_claims(caption).relations, caption
            continue
        flipped += 1
        check = caption_faithfulness(scenes[image_id], new)
        assert not check.faithful and check.reason.startswith("relation is false: "), new
    assert flipped >= 20


def test_an_extra_object_not_in_the_scene_makes_a_caption_unfaithful(references, scenes):
    for image_id, caption in references:
        scene = scenes[image_id]
        present = {o.description for o in scene.objects}
        extra = next(
            ObjectDescription(shape, colour, size)
            for shape, colour, size in itertools.product(SHAPES, COLOURS, SIZES)
            if ObjectDescription(shape, colour, size) not in present
        )
        # Insert "and <extra>" before a trailing "on a <bg> background", else at the end.
        text = re.sub(r"( on a \w+ background)?$", rf" and {extra.text}\1", caption, count=1)
        check = caption_faithfulness(scene, text)
        assert check == FaithfulnessCheck(False, f"object not in the scene: {extra.text}"), text


def test_captions_of_other_scenes_are_mostly_unfaithful(references, scenes):
    first = dict(references)
    ids = sorted(first)
    shifted = {ids[i]: first[ids[i - 1]] for i in range(len(ids))}
    assert scene_faithfulness(scenes, shifted) <= 0.1
    details = scene_faithfulness_details(scenes, shifted)
    assert set(details) == set(ids)
    assert sum(not d.faithful for d in details.values()) >= 0.9 * len(ids)


def test_scene_faithfulness_counts_unparseable_and_empty_as_unfaithful(references, scenes):
    first = dict(references)
    ids = sorted(first)[:4]
    captions = {ids[0]: first[ids[0]], ids[1]: "", ids[2]: "a a a a", ids[3]: first[ids[3]]}
    assert scene_faithfulness(scenes, captions) == 0.5
    details = scene_faithfulness_details(scenes, captions)
    assert details[ids[1]] == FaithfulnessCheck(False, "unparseable: the caption is empty")
    assert details[ids[2]].reason.startswith("unparseable: expected an object")


def test_scene_faithfulness_argument_errors(scenes):
    with pytest.raises(ValueError, match=r"no scene for \['nope.png'\]\. Received: 1 captions"):
        scene_faithfulness(scenes, {"nope.png": "a small red circle"})
    with pytest.raises(ValueError, match=r"at least one caption\. Received: captions=\{\}"):
        scene_faithfulness(scenes, {})
    with pytest.raises(ValueError, match="Received: scenes of type list"):
        scene_faithfulness([], {"a": "b"})
    with pytest.raises(ValueError, match="Received: scene of type str"):
        caption_faithfulness("a.png", "a small red circle")
