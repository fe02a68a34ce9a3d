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

Modules: `scene` (dataclasses, sampling, relations), `render` (pixels), `language` (captions,
vocabulary, statements) and `writer` (the files on disk, `read_scenes`, the cache).

Example:

>>> import numpy as np
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

from xmodal_keras.data.shapes.language import (
    CAPTION_TEMPLATES,
    CAPTIONS_PER_IMAGE,
    ONE_OBJECT_TEMPLATES,
    RELATION_PHRASES,
    RELATION_PRONOUN_PHRASES,
    RELATION_STATEMENT_PROBABILITY,
    THREE_OBJECT_TEMPLATES,
    TWO_OBJECT_TEMPLATES,
    VOCABULARY,
    describe_scene,
    make_statement_pair,
    parse_statement,
    statement_fields,
    statement_holds,
    statement_text,
)
from xmodal_keras.data.shapes.render import (
    COLOUR_RGB,
    SUPERSAMPLING,
    render_scene,
)
from xmodal_keras.data.shapes.scene import (
    ALIGN_JITTER,
    BACKGROUNDS,
    CLEARLY_FALSE_OFFSET,
    COLOURS,
    EDGE_MARGIN,
    INVERSE_RELATION,
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    NUM_OBJECTS_PROBABILITIES,
    OBJECT_GAP,
    RELATION_GAP,
    RELATIONS,
    SHAPES,
    SIZE_HALF_EXTENT,
    SIZE_JITTER,
    SIZES,
    ObjectDescription,
    Relation,
    Scene,
    SceneObject,
    Statement,
    relation_holds,
    sample_scene,
)
from xmodal_keras.data.shapes.writer import (
    FORMAT_VERSION,
    GENERATOR_NAME,
    INFO_FILE,
    MIN_NUM_IMAGES,
    SCENES_FILE,
    TOKEN_FILE,
    generate_shapes,
    load_shapes,
    read_scenes,
    scene_from_dict,
    scene_to_dict,
    shapes_dir,
    split_assignment,
)

__all__ = [
    "ALIGN_JITTER",
    "BACKGROUNDS",
    "CAPTIONS_PER_IMAGE",
    "CAPTION_TEMPLATES",
    "CLEARLY_FALSE_OFFSET",
    "COLOURS",
    "COLOUR_RGB",
    "EDGE_MARGIN",
    "FORMAT_VERSION",
    "GENERATOR_NAME",
    "INFO_FILE",
    "INVERSE_RELATION",
    "MAX_IMAGE_SIZE",
    "MIN_IMAGE_SIZE",
    "MIN_NUM_IMAGES",
    "NUM_OBJECTS_PROBABILITIES",
    "OBJECT_GAP",
    "ONE_OBJECT_TEMPLATES",
    "ObjectDescription",
    "RELATIONS",
    "RELATION_GAP",
    "RELATION_PHRASES",
    "RELATION_PRONOUN_PHRASES",
    "RELATION_STATEMENT_PROBABILITY",
    "Relation",
    "SCENES_FILE",
    "SHAPES",
    "SIZES",
    "SIZE_HALF_EXTENT",
    "SIZE_JITTER",
    "SUPERSAMPLING",
    "Scene",
    "SceneObject",
    "Statement",
    "THREE_OBJECT_TEMPLATES",
    "TOKEN_FILE",
    "TWO_OBJECT_TEMPLATES",
    "VOCABULARY",
    "describe_scene",
    "generate_shapes",
    "load_shapes",
    "make_statement_pair",
    "parse_statement",
    "read_scenes",
    "relation_holds",
    "render_scene",
    "sample_scene",
    "scene_from_dict",
    "scene_to_dict",
    "shapes_dir",
    "split_assignment",
    "statement_fields",
    "statement_holds",
    "statement_text",
]
