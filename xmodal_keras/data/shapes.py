"""The built-in "shapes" dataset: seeded, captioned scenes of coloured shapes (no download).

Each image holds 1-3 objects (a shape, a colour and a size) on a noisy, shaded, striped or
checkered background. Scenes with two or more objects have one spatial relation between
objects 0 and 1 (left / right / above / below), placed so that it is visually clear: the two
bounding boxes are separated along the relation's axis and the objects are roughly aligned on
the other axis. Every image gets 5 different captions from varied templates and one true and
one false statement (a hard negative that changes one attribute or the relation).

`generate_shapes` writes the dataset in the Flickr8k layout (captioning), the Hateful-Memes
JSONL layout (fusion: image + statement -> is it true?) and `scenes.jsonl` (ground truth):

    Images/shapes_00000.png ...     Flickr8k.token.txt (`<file>#<k>\\t<caption>`, 5 per image)
    Flickr_8k.{train,dev,test}Images.txt     {train,dev,test}.jsonl     scenes.jsonl
    shapes.json (generation parameters; written last, it marks a complete dataset)

`load_shapes` returns a cached copy under `$XMODAL_DATA_DIR` (or the user cache dir),
generating it only when missing. Generation is deterministic: the same arguments give
byte-identical files.

Coordinates in a `Scene` are fractions of the image side (0 = left / top edge), so a scene
renders at any size.

Example:

>>> rng = np.random.default_rng(0)
>>> scene = sample_scene(rng, "example.png", image_size=32)
>>> render_scene(scene, 32, rng).shape
(32, 32, 3)
>>> len(set(describe_scene(scene, rng)))
5
>>> true_statement, false_statement = make_statement_pair(scene, rng)
>>> statement_holds(scene, true_statement), statement_holds(scene, false_statement)
(True, False)
"""

import dataclasses
import itertools
import json
import os
import pathlib
import tempfile  # noqa: F401  (the doctests use it)
from collections.abc import Sequence

import numpy as np
from PIL import Image

from xmodal_keras.data.dataset_layout import (
    FLICKR_SPLIT_FILES,
    FUSION_SPLIT_FILES,
    IMAGES_DIR,
    PNG_COMPRESS_LEVEL,
    SPLITS,
    TOKEN_FILE,
    cache_dir,
    check_int,
    dataset_info,
    info_matches,
    json_line,
    load_cached,
    write_dataset_atomically,
    write_lines,
)
from xmodal_keras.data.validation import ProblemCollector

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white")
SIZES = ("small", "large")
# A relation reads "subject is <relation> of reference": "left" = the subject is to the left.
RELATIONS = ("left", "right", "above", "below")
BACKGROUNDS = ("noisy", "shaded", "striped", "checkered")
INVERSE_RELATION = {"left": "right", "right": "left", "above": "below", "below": "above"}

# Bright, saturated object colours; backgrounds stay dark and nearly grey (see _background).
COLOUR_RGB = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 240),
    "yellow": (240, 220, 40),
    "purple": (165, 60, 215),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
}
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
RELATION_STATEMENT_PROBABILITY = 0.75  # for scenes with a relation; else "there is ..."
# Perturbation weights of a hard negative's changed field (symmetric, so true and false
# statements have the same text distribution).
_FIELD_WEIGHTS = {
    "subject.shape": 1.0,
    "subject.colour": 1.0,
    "subject.size": 1.0,
    "reference.shape": 1.0,
    "reference.colour": 1.0,
    "reference.size": 1.0,
    "relation": 3.0,
}
_FIELD_VALUES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES}

# Relation phrases; the first one of each is the canonical one used in statements.
RELATION_PHRASES = {
    "left": ("to the left of", "on the left of", "left of"),
    "right": ("to the right of", "on the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under"),
}
# "<reference> with <subject> <phrase>": "a large blue square with a small red circle on its left"
RELATION_PRONOUN_PHRASES = {
    "left": ("on its left", "to its left"),
    "right": ("on its right", "to its right"),
    "above": ("above it", "over it"),
    "below": ("below it", "under it"),
}

# Caption templates. {a} is the relation's subject, {b} its reference, {c} the third object;
# {x} {y} {z} are the objects in a random order; {r} a phrase for the relation (a to b), {ri}
# one for the inverse (b to a), {p} a pronoun phrase, {bg} the background word.
ONE_OBJECT_TEMPLATES = (
    "{a}",
    "there is {a}",
    "{a} on a {bg} background",
    "there is {a} on a {bg} background",
    "a {bg} background with {a}",
    "a picture of {a}",
    "an image of {a}",
    "a picture of {a} on a {bg} background",
)
TWO_OBJECT_TEMPLATES = (
    "{a} {r} {b}",
    "{b} {ri} {a}",
    "there is {a} {r} {b}",
    "{a} is {r} {b}",
    "{b} is {ri} {a}",
    "{b} with {a} {p}",
    "{a} {r} {b} on a {bg} background",
    "a picture of {a} {r} {b}",
    "{x} and {y}",
    "a picture of {x} and {y}",
)
THREE_OBJECT_TEMPLATES = (
    "{a} {r} {b} and {c}",
    "{b} {ri} {a} and {c}",
    "there is {c} and {a} {r} {b}",
    "{a} is {r} {b} and there is {c}",
    "{b} is {ri} {a} and there is {c}",
    "{b} with {a} {p} and {c}",
    "a picture of {a} {r} {b} and {c}",
    "{x} and {y} and {z}",
    "a picture of {x} and {y} and {z}",
)
CAPTION_TEMPLATES = {
    1: ONE_OBJECT_TEMPLATES,
    2: TWO_OBJECT_TEMPLATES,
    3: THREE_OBJECT_TEMPLATES,
}
CAPTIONS_PER_IMAGE = 5

# On-disk layout (the shared one of `dataset_layout`, plus the scenes' ground truth).
SCENES_FILE = "scenes.jsonl"
INFO_FILE = "shapes.json"
GENERATOR_NAME = "xmodal_keras.data.shapes"
FORMAT_VERSION = 1

MIN_NUM_IMAGES = 10
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024
SUPERSAMPLING = 4  # anti-aliasing: samples per pixel along each axis
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


def _check_params(num_images: object, image_size: object, seed: object) -> tuple[int, int, int]:
    return (
        check_int("num_images", num_images, MIN_NUM_IMAGES),
        check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
        check_int("seed", seed, 0),
    )


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


def _relation_clearly_false(a: SceneObject, b: SceneObject, relation: str) -> bool:
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


# ----------------------------------------------------------------------------- rendering


def _star_polygon(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


# Polygons in unit coordinates (y points down), inside the square [-1, 1]^2.
_POLYGONS = {
    "triangle": np.array([[0.0, -1.0], [0.95, 0.75], [-0.95, 0.75]]),
    "diamond": np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
    "star": _star_polygon(),
}


def _inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points; u has shape (1, W), v shape (H, 1)."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        x_at_v = x1 + (x2 - x1) * (v - y1) / (y2 - y1)
        inside ^= crosses & (u < x_at_v)
    return inside


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.82) & (np.abs(v) <= 0.82)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.32) & (av <= 0.95)) | ((av <= 0.32) & (au <= 0.95))
    return _inside_polygon(u, v, _POLYGONS[shape])


def _coverage(obj: SceneObject, image_size: int) -> tuple[slice, slice, np.ndarray]:
    """The object's pixel window and its anti-aliased coverage (fraction inside) there."""
    cx, cy, half = obj.x * image_size, obj.y * image_size, obj.half_extent * image_size
    x0, x1 = max(0, int(np.floor(cx - half))), min(image_size, int(np.ceil(cx + half)))
    y0, y1 = max(0, int(np.floor(cy - half))), min(image_size, int(np.ceil(cy + half)))
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING
    xs = (np.arange(x0, x1)[:, None] + offsets[None, :]).reshape(1, -1)
    ys = (np.arange(y0, y1)[:, None] + offsets[None, :]).reshape(-1, 1)
    mask = _shape_mask(obj.shape, (xs - cx) / half, (ys - cy) / half)
    coverage = mask.reshape(y1 - y0, SUPERSAMPLING, x1 - x0, SUPERSAMPLING).mean(axis=(1, 3))
    return slice(y0, y1), slice(x0, x1), coverage


def _background(kind: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """A dark, nearly grey texture (float32, HxWx3) so every object colour stands out."""
    centres = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
    xx, yy = centres[None, :], centres[:, None]
    low = rng.uniform(30.0, 70.0)
    high = low + rng.uniform(25.0, 55.0)
    if kind == "noisy":
        grey = rng.uniform(low, high) + rng.normal(0.0, 14.0, (image_size, image_size))
    elif kind == "shaded":
        angle = rng.uniform(0.0, 2 * np.pi)
        ramp = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        grey = low + (high - low) * ramp
    elif kind == "striped":
        angle = rng.choice([0.0, 0.25, 0.5, 0.75]) * np.pi
        period = rng.uniform(0.1, 0.2)
        phase = rng.uniform(0.0, period)
        along = np.cos(angle) * xx + np.sin(angle) * yy + phase
        grey = np.where(np.floor(2 * along / period) % 2 == 0, low, high)
    else:  # checkered
        cell = rng.uniform(0.08, 0.16)
        dx, dy = rng.uniform(0.0, cell, size=2)
        grey = np.where(
            (np.floor((xx + dx) / cell) + np.floor((yy + dy) / cell)) % 2 == 0, low, high
        )
    tint = rng.uniform(-10.0, 10.0, size=3)
    grey = np.broadcast_to(grey, (image_size, image_size))
    return (grey[:, :, None] + tint[None, None, :]).astype(np.float32)


def render_scene(scene: Scene, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws `scene` (anti-aliased shapes on its background texture) as uint8 HxWx3.

    Args:
        scene: the scene; its coordinates are fractions of the side, so any size works.
        image_size: the side of the square image in pixels.
        rng: the random generator for texture, colour jitter and pixel noise.

    Example:

    >>> scene = sample_scene(np.random.default_rng(0), "a.png", 32)
    >>> image = render_scene(scene, 32, np.random.default_rng(0))
    >>> image.shape, image.dtype
    ((32, 32, 3), dtype('uint8'))
    """
    image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    image = _background(scene.background, image_size, rng)
    for obj in scene.objects:
        rows, cols, coverage = _coverage(obj, image_size)
        colour = np.asarray(COLOUR_RGB[obj.colour], np.float32) + rng.uniform(-12.0, 12.0, 3)
        alpha = coverage[:, :, None].astype(np.float32)
        image[rows, cols] = image[rows, cols] * (1.0 - alpha) + colour.astype(np.float32) * alpha
    image += rng.normal(0.0, 4.0, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- captions


def describe_scene(
    scene: Scene, rng: np.random.Generator, num_captions: int = CAPTIONS_PER_IMAGE
) -> list[str]:
    """Returns `num_captions` different true captions of `scene` from varied templates.

    Captions are lowercase words separated by single spaces, without punctuation, drawn from
    `CAPTION_TEMPLATES` with random relation synonyms ("to the left of", "on the left of",
    "left of", "over", "under", "with ... on its left", ...).

    Args:
        scene: the scene to describe.
        rng: the random generator choosing templates, synonyms and object order.
        num_captions: how many captions. Defaults to 5.

    Example:

    >>> a = SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    >>> b = SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    >>> scene = Scene("a.png", (a, b), Relation(0, "left", 1), "striped")
    >>> captions = describe_scene(scene, np.random.default_rng(3))
    >>> len(set(captions)), all(c == c.lower() for c in captions)
    (5, True)
    """
    templates = CAPTION_TEMPLATES.get(len(scene.objects))
    if templates is None:
        raise ValueError(
            f"A scene must have 1 to 3 objects. Received: {len(scene.objects)} objects"
        )
    num_captions = check_int("num_captions", num_captions, 1, len(templates))
    if len(scene.objects) == 1:
        valid_relation = scene.relation is None
    else:
        valid_relation = scene.relation is not None and (
            (scene.relation.subject, scene.relation.reference) == (0, 1)
        )
    if not valid_relation:
        raise ValueError(
            "A scene relates object 0 to object 1 when it has several objects, and has no "
            f"relation otherwise. Received: relation={scene.relation!r} with "
            f"{len(scene.objects)} objects"
        )
    texts = [obj.description.text for obj in scene.objects]
    captions: list[str] = []
    for _ in range(50):
        for index in rng.permutation(len(templates)):
            caption = _fill_template(templates[index], scene, texts, rng)
            if caption not in captions:
                captions.append(caption)
            if len(captions) == num_captions:
                return captions
    raise RuntimeError(f"Could not find {num_captions} distinct captions.")


def _fill_template(template: str, scene: Scene, texts: list[str], rng) -> str:
    order = rng.permutation(len(texts))
    fields = {"bg": scene.background, "a": texts[0]}
    fields.update({name: texts[i] for name, i in zip("xyz", order, strict=False)})
    if scene.relation is not None:
        relation = scene.relation.relation
        inverse = INVERSE_RELATION[relation]
        fields["b"] = texts[1]
        fields["r"] = RELATION_PHRASES[relation][rng.integers(len(RELATION_PHRASES[relation]))]
        fields["ri"] = RELATION_PHRASES[inverse][rng.integers(len(RELATION_PHRASES[inverse]))]
        pronouns = RELATION_PRONOUN_PHRASES[relation]
        fields["p"] = pronouns[rng.integers(len(pronouns))]
    if len(texts) == 3:
        fields["c"] = texts[2]
    return template.format(**fields)


def _vocabulary() -> tuple[str, ...]:
    words = set(SHAPES) | set(COLOURS) | set(SIZES) | set(BACKGROUNDS) | {"a"}
    for templates in CAPTION_TEMPLATES.values():
        for template in templates:
            words.update(w for w in template.split() if not w.startswith("{"))
    for phrases in (*RELATION_PHRASES.values(), *RELATION_PRONOUN_PHRASES.values()):
        for phrase in phrases:
            words.update(phrase.split())
    return tuple(sorted(words))


VOCABULARY = _vocabulary()  # every word a caption or statement can use


# ----------------------------------------------------------------------------- statements


def statement_text(statement: Statement) -> str:
    """The statement in the caption grammar, with the canonical relation phrase.

    Example:

    >>> red_circle = ObjectDescription("circle", "red", "small")
    >>> statement_text(Statement(red_circle))
    'there is a small red circle'
    >>> statement_text(Statement(red_circle, "left", ObjectDescription("square", "blue", "large")))
    'a small red circle is to the left of a large blue square'
    """
    if statement.relation is None:
        return f"there is {statement.subject.text}"
    phrase = RELATION_PHRASES[statement.relation][0]
    return f"{statement.subject.text} is {phrase} {statement.reference.text}"


def parse_statement(text: str) -> Statement:
    """The inverse of `statement_text`; raises ValueError for any other text.

    Example:

    >>> parse_statement("a small red circle is above a large blue square").relation
    'above'
    """

    def description(words: list[str]) -> ObjectDescription:
        if len(words) != 4 or words[0] != "a":
            raise ValueError(f"Not a shapes statement. Received: text={text!r}")
        try:
            return ObjectDescription(shape=words[3], colour=words[2], size=words[1])
        except ValueError:
            raise ValueError(f"Not a shapes statement. Received: text={text!r}") from None

    words = text.split(" ")
    if words[:2] == ["there", "is"]:
        return Statement(description(words[2:]))
    for relation in RELATIONS:
        phrase = ["is", *RELATION_PHRASES[relation][0].split()]
        if words[4 : 4 + len(phrase)] == phrase:
            return Statement(
                description(words[:4]), relation, description(words[4 + len(phrase) :])
            )
    raise ValueError(f"Not a shapes statement. Received: text={text!r}")


def _matches(obj: SceneObject, description: ObjectDescription) -> bool:
    return (obj.shape, obj.colour, obj.size) == (
        description.shape,
        description.colour,
        description.size,
    )


def _candidate_pairs(scene: Scene, statement: Statement):
    subjects = [o for o in scene.objects if _matches(o, statement.subject)]
    references = [o for o in scene.objects if _matches(o, statement.reference)]
    return [(s, r) for s in subjects for r in references if s is not r]


def statement_holds(scene: Scene, statement: Statement) -> bool:
    """Whether `statement` is true of `scene` (some objects fit the descriptions).

    A relation holds when the two objects' boxes are separated along its axis
    (see `relation_holds`).

    Example:

    >>> a = SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    >>> b = SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    >>> scene = Scene("a.png", (a, b), Relation(0, "left", 1), "noisy")
    >>> text = "a small red circle is to the left of a large blue square"
    >>> statement_holds(scene, parse_statement(text))
    True
    >>> statement_holds(scene, parse_statement("there is a large red circle"))
    False
    """
    if statement.relation is None:
        return any(_matches(o, statement.subject) for o in scene.objects)
    return any(
        relation_holds(s, r, statement.relation) for s, r in _candidate_pairs(scene, statement)
    )


def _clearly_false(scene: Scene, statement: Statement) -> bool:
    """False with a margin: no pair of fitting objects is even roughly in that relation."""
    if statement.relation is None:
        return not statement_holds(scene, statement)
    if statement.subject == statement.reference:
        return False  # never produced for true statements: would give the label away
    return all(
        _relation_clearly_false(s, r, statement.relation)
        for s, r in _candidate_pairs(scene, statement)
    )


def statement_fields(statement: Statement) -> dict[str, str | None]:
    """The statement as flat fields ("subject.shape", ..., "relation", "reference.size").

    Example:

    >>> statement_fields(parse_statement("there is a small red circle"))["subject.colour"]
    'red'
    """
    fields: dict[str, str | None] = {"relation": statement.relation}
    for role in ("subject", "reference"):
        description = getattr(statement, role)
        for attribute in ("shape", "colour", "size"):
            fields[f"{role}.{attribute}"] = (
                None if description is None else getattr(description, attribute)
            )
    return fields


def _with_field(statement: Statement, field: str, value: str) -> Statement:
    if field == "relation":
        return dataclasses.replace(statement, relation=value)
    role, attribute = field.split(".")
    description = dataclasses.replace(getattr(statement, role), **{attribute: value})
    return dataclasses.replace(statement, **{role: description})


def _true_statement(scene: Scene, rng: np.random.Generator) -> Statement:
    if scene.relation is not None and rng.random() < RELATION_STATEMENT_PROBABILITY:
        subject = scene.objects[scene.relation.subject].description
        reference = scene.objects[scene.relation.reference].description
        if rng.random() < 0.5:
            return Statement(subject, scene.relation.relation, reference)
        return Statement(reference, INVERSE_RELATION[scene.relation.relation], subject)
    return Statement(scene.objects[rng.integers(len(scene.objects))].description)


def make_statement_pair(scene: Scene, rng: np.random.Generator) -> tuple[Statement, Statement]:
    """A true statement about `scene` and a hard negative that is clearly false of it.

    The negative changes exactly one field of the positive: the shape, colour or size of one
    object, or the relation. The field is drawn with fixed weights and the new value
    uniformly, so the change is symmetric and false statements follow (up to rare
    rejections) the same text distribution as true ones: a text-only model is at chance,
    and with one true and one false statement per image so is an image-only model.

    Example:

    >>> scene = sample_scene(np.random.default_rng(5), "a.png", 64)
    >>> positive, negative = make_statement_pair(scene, np.random.default_rng(0))
    >>> statement_holds(scene, positive), statement_holds(scene, negative)
    (True, False)
    """
    for _ in range(20):
        positive = _true_statement(scene, rng)
        if positive.relation is None:
            fields = ["subject.shape", "subject.colour", "subject.size"]
        else:
            fields = list(_FIELD_WEIGHTS)
        weights = np.array([_FIELD_WEIGHTS[f] for f in fields])
        current = statement_fields(positive)
        for _ in range(100):
            field = fields[rng.choice(len(fields), p=weights / weights.sum())]
            choices = RELATIONS if field == "relation" else _FIELD_VALUES[field.split(".")[1]]
            alternatives = [value for value in choices if value != current[field]]
            negative = _with_field(positive, field, alternatives[rng.integers(len(alternatives))])
            if _clearly_false(scene, negative):
                return positive, negative
    raise RuntimeError(f"Could not find a false statement for scene {scene.image_id!r}.")


# ----------------------------------------------------------------------------- JSON


def scene_to_dict(scene: Scene) -> dict:
    """The JSON form of a scene (one line of `scenes.jsonl`)."""
    relation = scene.relation
    return {
        "background": scene.background,
        "image_id": scene.image_id,
        "objects": [
            {
                "colour": o.colour,
                "half_extent": o.half_extent,
                "shape": o.shape,
                "size": o.size,
                "x": o.x,
                "y": o.y,
            }
            for o in scene.objects
        ],
        "relation": None
        if relation is None
        else {
            "reference": relation.reference,
            "relation": relation.relation,
            "subject": relation.subject,
        },
    }


def scene_from_dict(data: dict) -> Scene:
    """The inverse of `scene_to_dict`; raises ValueError (or TypeError) for a bad dict.

    Example:

    >>> scene = sample_scene(np.random.default_rng(2), "a.png", 32)
    >>> scene_from_dict(json.loads(json.dumps(scene_to_dict(scene)))) == scene
    True
    """
    relation = data["relation"]
    return Scene(
        image_id=data["image_id"],
        objects=tuple(SceneObject(**obj) for obj in data["objects"]),
        relation=None if relation is None else Relation(**relation),
        background=data["background"],
    )


def read_scenes(root: str | os.PathLike) -> dict[str, Scene]:
    """Reads `scenes.jsonl` of a shapes dataset: image id (file name) -> `Scene`.

    Raises `DataValidationError` listing every bad line (1-based) and field.

    Example:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     scenes = read_scenes(generate_shapes(tmp, num_images=10, image_size=32))
    >>> len(scenes), type(scenes["shapes_00000.png"]).__name__
    (10, 'Scene')
    """
    path = pathlib.Path(root) / SCENES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {SCENES_FILE} in the shapes dataset. Received: root={root!r}")
    problems = ProblemCollector()
    scenes: dict[str, Scene] = {}
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                problems.add(
                    path, line_number, None, "a JSON object", f"invalid JSON ({error.msg})"
                )
                continue
            scene = _scene_or_problem(data, path, line_number, problems)
            if scene is None:
                continue
            if scene.image_id in scenes:
                problems.add(path, line_number, "image_id", "a unique image id", scene.image_id)
            scenes[scene.image_id] = scene
    problems.raise_if_any(path)
    return scenes


def _scene_or_problem(data, path, line_number, problems) -> Scene | None:
    if not isinstance(data, dict):
        problems.add(path, line_number, None, "a JSON object", type(data).__name__)
        return None
    missing = [key for key in ("image_id", "objects", "relation", "background") if key not in data]
    for key in missing:
        problems.add(path, line_number, key, "a value (missing field)")
    if missing:
        return None
    try:
        return scene_from_dict(data)
    except (ValueError, TypeError, KeyError) as error:
        problems.add(path, line_number, None, "a valid scene", repr(error))
        return None


# ----------------------------------------------------------------------------- writing


def _image_rngs(seed: int, index: int) -> list[np.random.Generator]:
    """Independent generators for one image's scene, pixels, captions and statements."""
    children = np.random.SeedSequence([seed, 0, index]).spawn(4)
    return [np.random.default_rng(child) for child in children]


def split_assignment(num_images: int, seed: int) -> list[str]:
    """The split of each image index: 80 / 10 / 10 % (at least one val and test image).

    Example:

    >>> splits = split_assignment(40, seed=0)
    >>> splits.count("train"), splits.count("val"), splits.count("test")
    (32, 4, 4)
    """
    num_images, _, seed = _check_params(num_images, MIN_IMAGE_SIZE, seed)
    num_val = num_test = max(1, num_images // 10)
    order = np.random.default_rng(np.random.SeedSequence([seed, 1])).permutation(num_images)
    splits = ["train"] * num_images
    for position, index in enumerate(order):
        if position < num_val:
            splits[index] = "val"
        elif position < num_val + num_test:
            splits[index] = "test"
    return splits


def _dataset_info(num_images: int, image_size: int, seed: int) -> dict:
    return dataset_info(GENERATOR_NAME, FORMAT_VERSION, num_images, image_size, seed)


def _write_dataset(root: pathlib.Path, num_images: int, image_size: int, seed: int) -> None:
    images_dir = root / IMAGES_DIR
    images_dir.mkdir()
    width = max(5, len(str(num_images - 1)))
    splits = split_assignment(num_images, seed)
    token_lines: list[str] = []
    scene_lines: list[str] = []
    split_images: dict[str, list[str]] = {split: [] for split in SPLITS}
    fusion_lines: dict[str, list[str]] = {split: [] for split in SPLITS}
    for index in range(num_images):
        stem = f"shapes_{index:0{width}d}"
        file_name = f"{stem}.png"
        scene_rng, pixel_rng, caption_rng, statement_rng = _image_rngs(seed, index)
        scene = sample_scene(scene_rng, file_name, image_size)
        image = render_scene(scene, image_size, pixel_rng)
        Image.fromarray(image).save(
            images_dir / file_name, format="PNG", compress_level=PNG_COMPRESS_LEVEL
        )
        for k, caption in enumerate(describe_scene(scene, caption_rng)):
            token_lines.append(f"{file_name}#{k}\t{caption}")
        scene_lines.append(json_line(scene_to_dict(scene)))
        split = splits[index]
        split_images[split].append(file_name)
        positive, negative = make_statement_pair(scene, statement_rng)
        pairs = [(positive, 1), (negative, 0)]
        for k, pair_index in enumerate(statement_rng.permutation(2)):
            statement, label = pairs[pair_index]
            record = {
                "id": f"{stem}_{k}",
                "img": f"{IMAGES_DIR}/{file_name}",
                "label": label,
                "text": statement_text(statement),
            }
            fusion_lines[split].append(json_line(record))
    write_lines(root / TOKEN_FILE, token_lines)
    write_lines(root / SCENES_FILE, scene_lines)
    for split in SPLITS:
        write_lines(root / FLICKR_SPLIT_FILES[split], split_images[split])
        write_lines(root / FUSION_SPLIT_FILES[split], fusion_lines[split])
    info = _dataset_info(num_images, image_size, seed)
    info["splits"] = {split: len(split_images[split]) for split in SPLITS}
    write_lines(root / INFO_FILE, [json.dumps(info, sort_keys=True, indent=2)])


def _is_complete(root: pathlib.Path, num_images: int, image_size: int, seed: int) -> bool:
    return info_matches(root, INFO_FILE, _dataset_info(num_images, image_size, seed))


def generate_shapes(
    out_dir: str | os.PathLike,
    num_images: int = 5000,
    image_size: int = 64,
    seed: int = 0,
) -> pathlib.Path:
    """Writes the shapes dataset to `out_dir` (the dataset root) and returns its path.

    Files are first written to a hidden temporary directory beside `out_dir` and renamed
    into place at the end, so an interrupted run leaves no half dataset. `out_dir` may be
    missing, empty or a previous shapes dataset (replaced); anything else is refused.

    Args:
        out_dir: the dataset root to write.
        num_images: how many images (>= 10). Defaults to 5000.
        image_size: the side of the square images in pixels (32-1024). Defaults to 64.
        seed: the random seed (>= 0); the same arguments give byte-identical files.
            Defaults to 0.

    Example:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = generate_shapes(tmp, num_images=10, image_size=32, seed=1)
    ...     sorted(p.name for p in root.iterdir())[:3]
    ['Flickr8k.token.txt', 'Flickr_8k.devImages.txt', 'Flickr_8k.testImages.txt']
    """
    num_images, image_size, seed = _check_params(num_images, image_size, seed)
    return write_dataset_atomically(
        out_dir,
        lambda staging: _write_dataset(staging, num_images, image_size, seed),
        name="shapes",
        info_file=INFO_FILE,
        generator=GENERATOR_NAME,
    )


# ----------------------------------------------------------------------------- cache


def shapes_dir(num_images: int = 5000, image_size: int = 64, seed: int = 0) -> pathlib.Path:
    """Where `load_shapes` keeps the dataset with these parameters (see `data_home`).

    Example:

    >>> shapes_dir(5000, 64, 0).name
    'shapes-v1-n5000-64px-seed0'
    """
    num_images, image_size, seed = _check_params(num_images, image_size, seed)
    return cache_dir("shapes", FORMAT_VERSION, num_images, image_size, seed)


def load_shapes(num_images: int = 5000, image_size: int = 64, seed: int = 0) -> pathlib.Path:
    """Returns the root of the cached shapes dataset, generating it only if missing.

    Example:

    >>> from unittest import mock
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with mock.patch.dict(os.environ, {"XMODAL_DATA_DIR": tmp}):
    ...         root = load_shapes(num_images=10, image_size=32)
    ...         load_shapes(num_images=10, image_size=32) == root  # cached: not regenerated
    True
    """
    root = shapes_dir(num_images, image_size, seed)
    return load_cached(
        root,
        lambda: _is_complete(root, num_images, image_size, seed),
        lambda: generate_shapes(root, num_images=num_images, image_size=image_size, seed=seed),
    )
