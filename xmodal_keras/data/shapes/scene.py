"""Shapes scenes: their vocabulary, dataclasses, relations and seeded random layout.

Coordinates are fractions of the image side (0 = left / top edge), so a scene renders at
any size. `sample_scene` draws 1-3 objects with distinct descriptions and, for two or more,
one clearly visible relation between objects 0 and 1.
"""

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from xmodal_keras.data.dataset_layout import check_int

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white")
SIZES = ("small", "large")
# A relation reads "subject is <relation> of reference": "left" = the subject is to the left.
RELATIONS = ("left", "right", "above", "below")
BACKGROUNDS = ("noisy", "shaded", "striped", "checkered")
INVERSE_RELATION = {"left": "right", "right": "left", "above": "below", "below": "above"}

# Half of the bounding-box side, as a fraction of the image side (jittered by +-8 %):
# at 32 px a small object is ~7 px wide and a large one ~12 px.
SIZE_HALF_EXTENT = {"small": 0.11, "large": 0.19}
SIZE_JITTER = 0.08

# Geometry, in fractions of the image side.
EDGE_MARGIN = 0.02  # objects keep this far from the image border
OBJECT_GAP = 0.04  # bounding boxes of any two objects are at least this far apart
RELATION_GAP = 0.06  # a relation holds when the boxes are this far apart along its axis
# The related pair is aligned on the other axis: centres differ by at most this fraction of
# the sum of half extents (so the orthogonal relations are clearly false).
ALIGN_JITTER = 0.1
# A relation statement counts as clearly false when the subject lies less than this fraction
# of the sum of half extents in the stated direction (its boxes overlap >= 75 % on that axis).
CLEARLY_FALSE_OFFSET = 0.25

NUM_OBJECTS_PROBABILITIES = {1: 0.2, 2: 0.4, 3: 0.4}

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024
_CANDIDATES = 64  # positions drawn at once by the rejection sampler


@dataclasses.dataclass(frozen=True)
class ObjectDescription:
    """What a caption says about one object: "a <size> <colour> <shape>"."""

    shape: str
    colour: str
    size: str

    def __post_init__(self):
        _check_choice("shape", self.shape, SHAPES)
        _check_choice("colour", self.colour, COLOURS)
        _check_choice("size", self.size, SIZES)

    @property
    def text(self) -> str:
        """The noun phrase, e.g. "a small red circle"."""
        return f"a {self.size} {self.colour} {self.shape}"


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One object of a scene; `x`, `y` (centre) and `half_extent` are fractions of the side."""

    shape: str
    colour: str
    size: str
    x: float
    y: float
    half_extent: float

    def __post_init__(self):
        _check_choice("shape", self.shape, SHAPES)
        _check_choice("colour", self.colour, COLOURS)
        _check_choice("size", self.size, SIZES)

    @property
    def description(self) -> ObjectDescription:
        return ObjectDescription(self.shape, self.colour, self.size)


@dataclasses.dataclass(frozen=True)
class Relation:
    """`objects[subject]` is `relation` (left/right/above/below) of `objects[reference]`."""

    subject: int
    relation: str
    reference: int

    def __post_init__(self):
        _check_choice("relation", self.relation, RELATIONS)


@dataclasses.dataclass(frozen=True)
class Scene:
    """A scene: its objects, the relation between objects 0 and 1 (None for one object)."""

    image_id: str
    objects: tuple[SceneObject, ...]
    relation: Relation | None
    background: str

    def __post_init__(self):
        _check_choice("background", self.background, BACKGROUNDS)


@dataclasses.dataclass(frozen=True)
class Statement:
    """A checkable claim: "there is <subject>" or "<subject> is <relation> <reference>"."""

    subject: ObjectDescription
    relation: str | None = None
    reference: ObjectDescription | None = None

    def __post_init__(self):
        if (self.relation is None) != (self.reference is None):
            raise ValueError(
                "`relation` and `reference` must be given together. "
                f"Received: relation={self.relation!r}, reference={self.reference!r}"
            )
        if self.relation is not None:
            _check_choice("relation", self.relation, RELATIONS)


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


# ----------------------------------------------------------------------------- geometry


def _relation_offset(a: SceneObject, b: SceneObject, relation: str) -> float:
    """How far `a`'s centre lies from `b`'s in the direction of `relation`."""
    if relation == "left":
        return b.x - a.x
    if relation == "right":
        return a.x - b.x
    if relation == "above":
        return b.y - a.y
    return a.y - b.y


def relation_holds(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Whether `a` is clearly `relation` of `b`: their boxes are separated along that axis.

    Example:

    >>> a = SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    >>> b = SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    >>> relation_holds(a, b, "left"), relation_holds(a, b, "right"), relation_holds(a, b, "above")
    (True, False, False)
    """
    _check_choice("relation", relation, RELATIONS)
    return _relation_offset(a, b, relation) >= a.half_extent + b.half_extent + RELATION_GAP


def relation_clearly_false(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Whether `a` is not even roughly `relation` of `b` (see `CLEARLY_FALSE_OFFSET`)."""
    bound = CLEARLY_FALSE_OFFSET * (a.half_extent + b.half_extent)
    return _relation_offset(a, b, relation) < bound


def _boxes_apart(a: SceneObject, b: SceneObject, gap: float) -> bool:
    reach = a.half_extent + b.half_extent + gap
    return abs(a.x - b.x) >= reach or abs(a.y - b.y) >= reach


def _inside(obj: SceneObject) -> bool:
    low, high = obj.half_extent + EDGE_MARGIN, 1.0 - obj.half_extent - EDGE_MARGIN
    return low <= obj.x <= high and low <= obj.y <= high


# ----------------------------------------------------------------------------- scenes

_ALL_DESCRIPTIONS = tuple(
    ObjectDescription(shape, colour, size)
    for shape, colour, size in itertools.product(SHAPES, COLOURS, SIZES)
)


def sample_scene(rng: np.random.Generator, image_id: str, image_size: int) -> Scene:
    """Draws a random scene: 1-3 objects with distinct descriptions, no overlaps.

    Objects 0 and 1 (if present) are related by `scene.relation`; their boxes are separated
    along the relation's axis by at least `RELATION_GAP` (and 2 px at `image_size`).

    Args:
        rng: the random generator (the only source of randomness).
        image_id: stored in the scene (the generator uses the image file name).
        image_size: the side in pixels the scene is meant for (sets pixel minimum gaps).

    Example:

    >>> scene = sample_scene(np.random.default_rng(1), "a.png", image_size=64)
    >>> 1 <= len(scene.objects) <= 3
    True
    """
    image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    counts = list(NUM_OBJECTS_PROBABILITIES)
    num_objects = counts[rng.choice(len(counts), p=list(NUM_OBJECTS_PROBABILITIES.values()))]
    picks = rng.choice(len(_ALL_DESCRIPTIONS), size=num_objects, replace=False)
    descriptions = [_ALL_DESCRIPTIONS[i] for i in picks]
    half_extents = [
        round(SIZE_HALF_EXTENT[d.size] * (1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER)), 4)
        for d in descriptions
    ]
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    relation = None
    if num_objects >= 2:
        relation = Relation(0, RELATIONS[rng.integers(len(RELATIONS))], 1)
    relation_gap = max(RELATION_GAP, 2.0 / image_size)
    object_gap = max(OBJECT_GAP, 1.0 / image_size)
    for _ in range(1000):
        objects = _place_objects(
            rng, descriptions, half_extents, relation, relation_gap, object_gap
        )
        if _valid_layout(objects, num_objects, relation, relation_gap, object_gap):
            return Scene(str(image_id), tuple(objects), relation, background)
    raise RuntimeError(f"Could not place {num_objects} objects at image_size={image_size}.")


def _make_object(description: ObjectDescription, x: float, y: float, half: float) -> SceneObject:
    x, y = round(float(x), 4), round(float(y), 4)
    return SceneObject(description.shape, description.colour, description.size, x, y, half)


def _place_objects(rng, descriptions, half_extents, relation, relation_gap, object_gap):
    """Candidate positions (vectorised rejection sampling); [] when none was found."""

    def free(half, count=None):
        return rng.uniform(half + EDGE_MARGIN, 1.0 - half - EDGE_MARGIN, size=count)

    if relation is None:
        half = half_extents[0]
        return [_make_object(descriptions[0], free(half), free(half), half)]
    ha, hb = half_extents[0], half_extents[1]
    # Along the relation axis: the first object (left / top) and the second one.
    first_is_subject = relation.relation in ("left", "above")
    h_first, h_second = (ha, hb) if first_is_subject else (hb, ha)
    p_first, p_second = free(h_first, _CANDIDATES), free(h_second, _CANDIDATES)
    good = np.flatnonzero(p_second - p_first >= h_first + h_second + relation_gap)
    if not len(good):
        return []
    p_first, p_second = p_first[good[0]], p_second[good[0]]
    pa, pb = (p_first, p_second) if first_is_subject else (p_second, p_first)
    # Across: both centres near a common line.
    jitter = ALIGN_JITTER * (ha + hb) / 2
    reach = max(ha, hb) + EDGE_MARGIN + jitter
    centre = rng.uniform(reach, 1.0 - reach)
    qa, qb = centre + rng.uniform(-jitter, jitter, size=2)
    if relation.relation in ("left", "right"):
        (xa, ya), (xb, yb) = (pa, qa), (pb, qb)
    else:
        (xa, ya), (xb, yb) = (qa, pa), (qb, pb)
    objects = [
        _make_object(descriptions[0], xa, ya, ha),
        _make_object(descriptions[1], xb, yb, hb),
    ]
    if len(descriptions) == 3:
        hc = half_extents[2]
        xs, ys = free(hc, _CANDIDATES), free(hc, _CANDIDATES)
        apart = np.ones(_CANDIDATES, dtype=bool)
        for other in objects:
            reach = hc + other.half_extent + object_gap + 1e-4  # + rounding slack
            apart &= (np.abs(xs - other.x) >= reach) | (np.abs(ys - other.y) >= reach)
        good = np.flatnonzero(apart)
        if not len(good):
            return []
        objects.append(_make_object(descriptions[2], xs[good[0]], ys[good[0]], hc))
    return objects


def _valid_layout(objects, num_objects, relation, relation_gap, object_gap) -> bool:
    if len(objects) != num_objects:
        return False
    if not all(_inside(obj) for obj in objects):
        return False
    if not all(_boxes_apart(a, b, object_gap) for a, b in itertools.combinations(objects, 2)):
        return False
    if relation is None:
        return True
    a, b = objects[relation.subject], objects[relation.reference]
    along = _relation_offset(a, b, relation.relation)
    across_relation = "above" if relation.relation in ("left", "right") else "left"
    across = abs(_relation_offset(a, b, across_relation))
    return (
        along >= a.half_extent + b.half_extent + relation_gap
        and across <= ALIGN_JITTER * (a.half_extent + b.half_extent) + 1e-4
    )
