"""The language of shapes scenes: caption templates, vocabulary and checkable statements.

`describe_scene` gives varied true captions; `statement_text` / `parse_statement` convert
statements to and from text; `make_statement_pair` draws a true statement and a hard
negative (one field changed) for the fusion view.
"""

import dataclasses

import numpy as np

from xmodal_keras.data.dataset_layout import check_int
from xmodal_keras.data.shapes.scene import (
    BACKGROUNDS,
    COLOURS,
    INVERSE_RELATION,
    RELATIONS,
    SHAPES,
    SIZES,
    ObjectDescription,
    Scene,
    SceneObject,
    Statement,
    relation_clearly_false,
    relation_holds,
)

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

    >>> from xmodal_keras.data.shapes.scene import Relation
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

    >>> from xmodal_keras.data.shapes.scene import Relation
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
        relation_clearly_false(s, r, statement.relation)
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

    >>> from xmodal_keras.data.shapes.scene import sample_scene
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
