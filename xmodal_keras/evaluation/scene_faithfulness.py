"""Scene faithfulness of shapes captions: is everything a caption states true of its scene?

The shapes generator knows each image's `Scene`, so a generated caption can be checked
claim by claim. `caption_claims` parses the caption grammar of `xmodal_keras.data.shapes`
(`CAPTION_TEMPLATES`: objects "a small red circle", relation phrases and their synonyms
"to the left of" / "left of" / "over" / "under" ..., the pronoun form "<b> with <a> on its
left", "there is", "and", "a picture of", "an image of", "a <bg> background with",
"on a <bg> background") into the objects and relations it states. The grammar is read a
little more generally than the templates (any number of clauses joined by "and", each
optionally "there is ..."), so a well-formed caption the templates happen not to produce
still parses; anything else (garbage, a repeated word, a caption cut off mid-phrase, an
empty caption) does not, and counts as *not faithful*.

A caption is faithful to a scene when

- it parses and mentions at least one object;
- every object it mentions exists in the scene, matched by size + colour + shape
  (`statement_holds(scene, Statement(object))`), and it mentions no description more often
  than the scene holds it ("a small red circle and a small red circle" claims two);
- every relation it states holds between some fitting pair of distinct objects
  (`statement_holds(scene, Statement(subject, relation, reference))`, i.e.
  `relation_holds`: the boxes are separated along the relation's axis).

The background word is parsed too (`CaptionClaims.background`) but is not an object or a
relation, so it is checked only with ``check_background=True``.

`scene_faithfulness` is the share of faithful captions; `scene_faithfulness_details` gives
each caption's verdict and the reason it failed (for `captions.jsonl`).

Example:

>>> from xmodal_keras.data.shapes import Relation, Scene, SceneObject
>>> a = SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
>>> b = SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
>>> scene = Scene("a.png", (a, b), Relation(0, "left", 1), "striped")
>>> claims = caption_claims("a large blue square with a small red circle on its left")
>>> [s.relation for s in claims.relations]
['left']
>>> caption_is_faithful(scene, "a small red circle left of a large blue square")
True
>>> caption_faithfulness(scene, "a small red circle over a large blue square").reason
'relation is false: a small red circle is above a large blue square'
>>> scene_faithfulness({"a.png": scene}, {"a.png": "there is a small green circle"})
0.0
"""

import collections
import dataclasses
from collections.abc import Mapping

from xmodal_keras.data.shapes import (
    BACKGROUNDS,
    COLOURS,
    RELATION_PHRASES,
    RELATION_PRONOUN_PHRASES,
    SHAPES,
    SIZES,
    ObjectDescription,
    Scene,
    Statement,
    statement_holds,
    statement_text,
)
from xmodal_keras.data.text_tokenizer import normalize_caption


@dataclasses.dataclass(frozen=True)
class CaptionClaims:
    """What a shapes caption states.

    Attributes:
        objects: every object mention, in caption order (a description mentioned twice
            appears twice).
        relations: every relation, as a `Statement` "subject is <relation> of reference"
            (inverse phrasings and the pronoun form are turned into this form as written:
            "b right of a" stays `Statement(b, "right", a)`).
        background: the background word, or None when the caption names none.
    """

    objects: tuple[ObjectDescription, ...]
    relations: tuple[Statement, ...]
    background: str | None = None


@dataclasses.dataclass(frozen=True)
class FaithfulnessCheck:
    """The verdict on one caption: `faithful`, and `reason` (None when faithful)."""

    faithful: bool
    reason: str | None = None


# Phrase tables as word tuples, longest first so "to the left of" wins over "left of".
def _phrase_table(phrases: Mapping[str, tuple[str, ...]]) -> list[tuple[tuple[str, ...], str]]:
    table = [(tuple(p.split()), relation) for relation, ps in phrases.items() for p in ps]
    return sorted(table, key=lambda item: -len(item[0]))


_RELATION_WORDS = _phrase_table(RELATION_PHRASES)
_PRONOUN_WORDS = _phrase_table(RELATION_PRONOUN_PHRASES)
_INTROS = (("a", "picture", "of"), ("an", "image", "of"))


class _Unparseable(ValueError):
    pass


class _Parser:
    """Recursive descent over the caption's words.

    caption := intro? clause ("and" clause)* ("on a" BG "background")?
    intro   := "a picture of" | "an image of" | "a" BG "background with"
    clause  := "there is"? object ( "is"? RELATION object | "with" object PRONOUN )?
    object  := "a" SIZE COLOUR SHAPE
    ("there is" may not follow an intro; a background is named at most once.)
    """

    def __init__(self, text: str, words: list[str]):
        self.text = text
        self.words = words
        self.position = 0
        self.objects: list[ObjectDescription] = []
        self.relations: list[Statement] = []
        self.background: str | None = None

    def fail(self, expected: str) -> None:
        found = (
            f"{self.words[self.position]!r} (word {self.position + 1})"
            if self.position < len(self.words)
            else "the end of the caption"
        )
        raise _Unparseable(f"expected {expected}, found {found}")

    def accept(self, phrase: tuple[str, ...]) -> bool:
        end = self.position + len(phrase)
        if tuple(self.words[self.position : end]) == phrase:
            self.position = end
            return True
        return False

    def accept_background(self, prefix: tuple[str, ...], suffix: tuple[str, ...]) -> bool:
        """`prefix BG suffix`, e.g. "on a striped background"; records the background."""
        start = self.position
        if not self.accept(prefix):
            return False
        word = self.words[self.position] if self.position < len(self.words) else None
        if word in BACKGROUNDS:
            self.position += 1
            if self.accept(suffix):
                self.background = word
                return True
        self.position = start
        return False

    def accept_relation(self, table) -> str | None:
        for phrase, relation in table:
            if self.accept(phrase):
                return relation
        return None

    def parse_object(self) -> ObjectDescription:
        fields = []
        for expected, choices in (
            ("'a'", ("a",)),
            (f"a size {list(SIZES)}", SIZES),
            (f"a colour {list(COLOURS)}", COLOURS),
            (f"a shape {list(SHAPES)}", SHAPES),
        ):
            if self.position >= len(self.words) or self.words[self.position] not in choices:
                self.fail(f"an object 'a <size> <colour> <shape>': {expected}")
            fields.append(self.words[self.position])
            self.position += 1
        description = ObjectDescription(shape=fields[3], colour=fields[2], size=fields[1])
        self.objects.append(description)
        return description

    def parse_clause(self, allow_there_is: bool) -> None:
        if allow_there_is:
            self.accept(("there", "is"))
        first = self.parse_object()
        if self.accept(("with",)):
            second = self.parse_object()
            relation = self.accept_relation(_PRONOUN_WORDS)
            if relation is None:
                self.fail("a pronoun relation phrase such as 'on its left' or 'above it'")
            self.relations.append(Statement(second, relation, first))
            return
        start = self.position
        had_is = self.accept(("is",))
        relation = self.accept_relation(_RELATION_WORDS)
        if relation is None:
            if had_is:
                self.position = start + 1
                self.fail("a relation phrase such as 'to the left of' or 'above'")
            return
        second = self.parse_object()
        self.relations.append(Statement(first, relation, second))

    def parse(self) -> CaptionClaims:
        if not self.words:
            raise _Unparseable("the caption is empty")
        intro = any(self.accept(phrase) for phrase in _INTROS) or self.accept_background(
            ("a",), ("background", "with")
        )
        self.parse_clause(allow_there_is=not intro)
        while self.accept(("and",)):
            self.parse_clause(allow_there_is=True)
        if self.background is None:
            self.accept_background(("on", "a"), ("background",))
        if self.position != len(self.words):
            self.fail("'and', a relation phrase or the end of the caption")
        return CaptionClaims(tuple(self.objects), tuple(self.relations), self.background)


def _as_text(text: str | bytes) -> str:
    if isinstance(text, bytes):
        return text.decode("utf-8")
    if not isinstance(text, str):
        raise ValueError(
            f"A caption must be a str (or UTF-8 bytes). Received: text={text!r} of type "
            f"{type(text).__name__}"
        )
    return text


def caption_claims(text: str | bytes) -> CaptionClaims:
    """Parses a shapes caption into the objects and relations it states.

    The text is normalised first (`normalize_caption`: lowercase, spaces collapsed).

    Args:
        text: the caption (str, or UTF-8 bytes as a `tf.string` gives them).

    Returns:
        A `CaptionClaims`.

    Raises:
        ValueError: when the caption is empty or not in the shapes caption grammar (the
            message says what was expected where).

    Example:

    >>> claims = caption_claims("a picture of a small red circle above a large blue square")
    >>> [o.text for o in claims.objects], claims.relations[0].relation
    (['a small red circle', 'a large blue square'], 'above')
    >>> caption_claims("a small red")
    Traceback (most recent call last):
    ...
    ValueError: Not a shapes caption: expected an object 'a <size> <colour> <shape>': \
a shape ['circle', 'square', 'triangle', 'diamond', 'star', 'cross'], found the end of the \
caption. Received: text='a small red'
    """
    text = _as_text(text)
    words = normalize_caption(text).split()
    try:
        return _Parser(text, words).parse()
    except _Unparseable as error:
        raise ValueError(f"Not a shapes caption: {error}. Received: text={text!r}") from None


def _check_scene(scene: Scene) -> None:
    if not isinstance(scene, Scene):
        raise ValueError(
            f"`scene` must be a shapes `Scene`. Received: scene of type {type(scene).__name__}"
        )


def caption_faithfulness(
    scene: Scene, text: str | bytes, *, check_background: bool = False
) -> FaithfulnessCheck:
    """The verdict on one caption of `scene`, with the first reason it fails.

    Reasons: "unparseable: ..." (also for an empty caption), "mentions no object",
    "object not in the scene: <object>", "object mentioned N times, the scene has M:
    <object>", "relation is false: <statement>", "wrong background: ..." (only with
    `check_background`).

    Args:
        scene: the image's ground-truth scene (`read_scenes(root)[image_id]`).
        text: the generated caption.
        check_background: also require a named background to be the scene's.
            Defaults to False (the issue's definition: objects and relations only).

    Example:

    >>> from xmodal_keras.data.shapes import Scene, SceneObject
    >>> scene = Scene("a.png", (SceneObject("star", "white", "large", 0.5, 0.5, 0.2),),
    ...               None, "noisy")
    >>> caption_faithfulness(scene, "there is a large white star")
    FaithfulnessCheck(faithful=True, reason=None)
    >>> caption_faithfulness(scene, "a small white star").reason
    'object not in the scene: a small white star'
    """
    _check_scene(scene)
    text = _as_text(text)
    try:
        claims = caption_claims(text)
    except ValueError as error:
        reason = str(error).removeprefix("Not a shapes caption: ").split(". Received:")[0]
        return FaithfulnessCheck(False, f"unparseable: {reason}")
    if not claims.objects:
        return FaithfulnessCheck(False, "mentions no object")
    in_scene = collections.Counter(obj.description for obj in scene.objects)
    mentioned = collections.Counter(claims.objects)
    for description in claims.objects:  # caption order: the first failing object
        if not statement_holds(scene, Statement(description)):
            return FaithfulnessCheck(False, f"object not in the scene: {description.text}")
        if mentioned[description] > in_scene[description]:
            return FaithfulnessCheck(
                False,
                f"object mentioned {mentioned[description]} times, the scene has "
                f"{in_scene[description]}: {description.text}",
            )
    for statement in claims.relations:
        if not statement_holds(scene, statement):
            return FaithfulnessCheck(False, f"relation is false: {statement_text(statement)}")
    if check_background and claims.background not in (None, scene.background):
        return FaithfulnessCheck(
            False, f"wrong background: {claims.background} (the scene's is {scene.background})"
        )
    return FaithfulnessCheck(True)


def caption_is_faithful(scene: Scene, text: str | bytes, *, check_background: bool = False) -> bool:
    """Whether every object and relation `text` states is true of `scene` (see module doc).

    Example:

    >>> from xmodal_keras.data.shapes import Relation, Scene, SceneObject
    >>> a = SceneObject("circle", "red", "small", x=0.2, y=0.5, half_extent=0.1)
    >>> b = SceneObject("square", "blue", "large", x=0.7, y=0.5, half_extent=0.2)
    >>> scene = Scene("a.png", (a, b), Relation(0, "left", 1), "striped")
    >>> caption_is_faithful(scene, "a large blue square right of a small red circle")
    True
    >>> caption_is_faithful(scene, "")
    False
    """
    return caption_faithfulness(scene, text, check_background=check_background).faithful


def scene_faithfulness_details(
    scenes: Mapping[str, Scene],
    captions: Mapping[str, str | bytes],
    *,
    check_background: bool = False,
) -> dict[str, FaithfulnessCheck]:
    """Each caption's `FaithfulnessCheck`, keyed like `captions`.

    Args:
        scenes: image id -> `Scene` (e.g. `read_scenes(root)`); may hold more ids.
        captions: image id -> generated caption; every id must have a scene.
        check_background: see `caption_faithfulness`. Defaults to False.

    Example:

    >>> from xmodal_keras.data.shapes import Scene, SceneObject
    >>> scene = Scene("a.png", (SceneObject("star", "white", "large", 0.5, 0.5, 0.2),),
    ...               None, "noisy")
    >>> scene_faithfulness_details({"a.png": scene}, {"a.png": "star star"})["a.png"].reason
    "unparseable: expected an object 'a <size> <colour> <shape>': 'a', found 'star' (word 1)"
    """
    if not isinstance(scenes, Mapping) or not isinstance(captions, Mapping):
        raise ValueError(
            "`scenes` must be a dict image_id -> Scene and `captions` a dict image_id -> "
            f"caption. Received: scenes of type {type(scenes).__name__}, captions of type "
            f"{type(captions).__name__}"
        )
    if not captions:
        raise ValueError("`captions` must hold at least one caption. Received: captions={}")
    missing = [image_id for image_id in captions if image_id not in scenes]
    if missing:
        listed = ", ".join(repr(i) for i in sorted(missing, key=str)[:5])
        more = f", ... ({len(missing)} in all)" if len(missing) > 5 else ""
        raise ValueError(
            f"Every caption needs the scene of its image; no scene for [{listed}{more}]. "
            f"Received: {len(captions)} captions and {len(scenes)} scenes"
        )
    return {
        image_id: caption_faithfulness(scenes[image_id], text, check_background=check_background)
        for image_id, text in captions.items()
    }


def scene_faithfulness(
    scenes: Mapping[str, Scene],
    captions: Mapping[str, str | bytes],
    *,
    check_background: bool = False,
) -> float:
    """The share (0..1) of `captions` that are faithful to their image's scene.

    Args:
        scenes: image id -> `Scene` (e.g. `read_scenes(root)`); may hold more ids.
        captions: image id -> generated caption; every id must have a scene.
        check_background: see `caption_faithfulness`. Defaults to False.

    Example:

    >>> from xmodal_keras.data.shapes import Scene, SceneObject
    >>> scene = Scene("a.png", (SceneObject("star", "white", "large", 0.5, 0.5, 0.2),),
    ...               None, "noisy")
    >>> scenes = {"a.png": scene, "b.png": scene}
    >>> scene_faithfulness(scenes, {"a.png": "a large white star", "b.png": "a star"})
    0.5
    """
    details = scene_faithfulness_details(scenes, captions, check_background=check_background)
    return sum(check.faithful for check in details.values()) / len(details)
