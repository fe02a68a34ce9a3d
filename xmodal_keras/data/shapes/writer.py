"""Writing the shapes dataset, reading its `scenes.jsonl`, and the cached copy.

`generate_shapes` writes the Flickr8k and Hateful-Memes layouts plus `scenes.jsonl`;
`load_shapes` returns a copy cached under `shapes_dir`, generating it only when missing.
"""

import json
import os
import pathlib
import tempfile  # noqa: F401  (the doctests use it)

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
from xmodal_keras.data.shapes.language import (
    describe_scene,
    make_statement_pair,
    statement_text,
)
from xmodal_keras.data.shapes.render import render_scene
from xmodal_keras.data.shapes.scene import (
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    Relation,
    Scene,
    SceneObject,
    sample_scene,
)
from xmodal_keras.data.validation import ProblemCollector

# On-disk layout (the shared one of `dataset_layout`, plus the scenes' ground truth).
SCENES_FILE = "scenes.jsonl"
INFO_FILE = "shapes.json"
# Written to the info file and compared when a cached copy is loaded: keep this value.
GENERATOR_NAME = "xmodal_keras.data.shapes"
FORMAT_VERSION = 1

MIN_NUM_IMAGES = 10


def _check_params(num_images: object, image_size: object, seed: object) -> tuple[int, int, int]:
    return (
        check_int("num_images", num_images, MIN_NUM_IMAGES),
        check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
        check_int("seed", seed, 0),
    )


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
