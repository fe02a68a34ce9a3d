"""The built-in "digits" dataset: captioned scenes made from real images (no download).

The second built-in captioning dataset, so that defaults are not chosen on our own
renderer alone. Its pixels are real: the handwritten digits are the 1,797 scanned
digits of the UCI "Optical Recognition of Handwritten Digits" set that scikit-learn
ships (`sklearn.datasets.load_digits`, 8x8, 17 grey levels, written by 43 people), and
the backgrounds are crops of the two photographs scikit-learn ships
(`load_sample_images`: a temple and a flower). Each scene holds one or two digits,
each scaled (small or large), tinted one of five colours and pasted on a darkened
photo crop; two digits stand in a clear left / right / above / below relation. Every
image gets 5 different captions ("a large red seven to the left of a small white two")
and one true and one false statement (one digit, colour, size or the relation changed).

The scanned digits are split once into train / val / test pools (75 / 12.5 / 12.5 %),
and an image of a split only uses digits of its pool, so the test images show
handwriting the model never saw. The split of images is the same 75 / 12.5 / 12.5 %
(3,000 / 500 / 500 for the benchmark-sized 4,000 images).

It is written in the layout of `dataset_layout` (Flickr8k + Hateful-Memes JSONL), so
`read_captions(root, "flickr8k")` and `read_pairs(root)` load it. `load_digits_scenes`
returns a cached copy under `$XMODAL_DATA_DIR`; the same arguments give byte-identical
files.

Example:

>>> rng = np.random.default_rng(0)
>>> source = digit_source()
>>> scene = sample_digit_scene(rng, source.pools["train"], "example.png")
>>> render_digit_scene(scene, source, 64, rng).shape
(64, 64, 3)
>>> len(set(describe_digit_scene(scene, rng)))
5
"""

import dataclasses
import functools
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

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLOURS = ("white", "red", "green", "blue", "yellow")
SIZES = ("small", "large")
RELATIONS = ("left", "right", "above", "below")
INVERSE_RELATION = {"left": "right", "right": "left", "above": "below", "below": "above"}
INVERSE_SIZE = {"small": "large", "large": "small"}
COLOUR_RGB = {
    "white": (250, 250, 250),
    "red": (255, 60, 50),
    "green": (60, 230, 80),
    "blue": (70, 130, 255),
    "yellow": (255, 230, 40),
}
# Side of a digit's square, as a fraction of the image side (jittered by +-8 %).
SIZE_FRACTION = {"small": 0.26, "large": 0.42}
SIZE_JITTER = 0.08
BACKGROUND_BRIGHTNESS = (0.25, 0.45)  # photo crops are darkened so the digits stand out
BACKGROUND_CROP = (0.25, 0.6)  # crop side as a fraction of the photo's shorter side
TWO_DIGITS_PROBABILITY = 0.6
POOL_FRACTIONS = {"val": 0.125, "test": 0.125}  # the rest is train

RELATION_PHRASES = {
    "left": ("to the left of", "left of"),
    "right": ("to the right of", "right of"),
    "above": ("above", "over"),
    "below": ("below", "under"),
}
# {a}: the subject ("a large red seven"), {b}: the reference, {n}/{c}: the one digit's
# name/colour, {r}/{ri}: phrases for the relation and its inverse, {x}/{y}: both digits in
# a random order, {na}/{nb}: the two names alone.
ONE_DIGIT_TEMPLATES = (
    "{a}",
    "there is {a}",
    "a picture of {a}",
    "the digit {n} in {c}",
    "a handwritten {n} written in {c}",
    "{a} on a photo",
    "a {c} {n}",
)
TWO_DIGIT_TEMPLATES = (
    "{a} {r} {b}",
    "{b} {ri} {a}",
    "there is {a} {r} {b}",
    "{a} is {r} {b}",
    "a picture of {a} {r} {b}",
    "{x} and {y}",
    "a {na} {r} a {nb}",
    "two digits {na} and {nb}",
)
CAPTIONS_PER_IMAGE = 5

INFO_FILE = "digits.json"
GENERATOR_NAME = "xmodal_keras.data.digits"
FORMAT_VERSION = 1
MIN_NUM_IMAGES = 16
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 512


@dataclasses.dataclass(frozen=True)
class Digit:
    """One pasted digit: which scan (`sample`), what it shows, and where (fractions)."""

    sample: int
    digit: int
    colour: str
    size: str
    x: float
    y: float
    side: float

    @property
    def text(self) -> str:
        """The noun phrase, e.g. "a large red seven"."""
        return f"a {self.size} {self.colour} {DIGIT_NAMES[self.digit]}"


@dataclasses.dataclass(frozen=True)
class DigitScene:
    """One or two digits; with two, `digits[0]` is `relation` of `digits[1]`."""

    image_id: str
    digits: tuple[Digit, ...]
    relation: str | None
    background: int  # index of the photo
    crop: tuple[float, float, float]  # left, top, side as fractions of the photo


@dataclasses.dataclass(frozen=True)
class DigitSource:
    """The real images scenes are made from: scans (`[N, 8, 8]` in 0..16), labels, photos."""

    scans: np.ndarray
    labels: np.ndarray
    photos: tuple[np.ndarray, ...]
    pools: dict[str, np.ndarray]  # split -> indices of the scans it may use


@functools.cache
def digit_source(seed: int = 0) -> DigitSource:
    """The scanned digits and photos scikit-learn ships, the scans split into pools.

    Example:

    >>> source = digit_source()
    >>> source.scans.shape, len(source.photos)
    ((1797, 8, 8), 2)
    >>> sorted(len(pool) for pool in source.pools.values())
    [225, 225, 1347]
    """
    from sklearn.datasets import load_digits, load_sample_images

    digits = load_digits()
    photos = tuple(np.asarray(image, np.uint8) for image in load_sample_images().images)
    order = np.random.default_rng(np.random.SeedSequence([seed, 7])).permutation(len(digits.target))
    num_val = int(round(len(order) * POOL_FRACTIONS["val"]))
    num_test = int(round(len(order) * POOL_FRACTIONS["test"]))
    pools = {
        "val": np.sort(order[:num_val]),
        "test": np.sort(order[num_val : num_val + num_test]),
        "train": np.sort(order[num_val + num_test :]),
    }
    return DigitSource(
        scans=np.asarray(digits.images, np.float32),
        labels=np.asarray(digits.target, np.int64),
        photos=photos,
        pools=pools,
    )


def _check_params(num_images: object, image_size: object, seed: object) -> tuple[int, int, int]:
    return (
        check_int("num_images", num_images, MIN_NUM_IMAGES),
        check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
        check_int("seed", seed, 0),
    )


def _digit(rng, pool: np.ndarray, source_labels, exclude: int | None, x, y, size) -> Digit:
    sample = int(rng.choice(pool))
    while exclude is not None and source_labels[sample] == exclude:
        sample = int(rng.choice(pool))
    side = SIZE_FRACTION[size] * (1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER))
    return Digit(
        sample=sample,
        digit=int(source_labels[sample]),
        colour=str(rng.choice(COLOURS)),
        size=size,
        x=float(x),
        y=float(y),
        side=float(side),
    )


def sample_digit_scene(
    rng: np.random.Generator, pool: np.ndarray, image_id: str, *, labels: np.ndarray | None = None
) -> DigitScene:
    """Draws a scene of one or two digits taken from the scans in `pool`.

    Two digits are placed on either side of the image's centre line along the relation's
    axis (so the relation is clear) and roughly aligned on the other axis; they show
    different digits.
    """
    labels = digit_source().labels if labels is None else labels
    background = int(rng.integers(2))
    crop_side = float(rng.uniform(*BACKGROUND_CROP))
    crop = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), crop_side)
    if rng.random() >= TWO_DIGITS_PROBABILITY:
        size = str(rng.choice(SIZES))
        half = SIZE_FRACTION[size] * (1 + SIZE_JITTER) / 2
        x, y = rng.uniform(half, 1 - half, size=2)
        digit = _digit(rng, pool, labels, None, x, y, size)
        return DigitScene(image_id, (digit,), None, background, crop)
    relation = str(rng.choice(RELATIONS))
    sizes = [str(s) for s in rng.choice(SIZES, size=2)]
    halves = [SIZE_FRACTION[s] * (1 + SIZE_JITTER) / 2 for s in sizes]
    # Along the axis: the subject in the first half (left/top for left/above), the
    # reference in the other, each box inside its half (so the two never overlap).
    first = relation in ("left", "above")
    along = []
    for index, half in enumerate(halves):
        in_first_half = (index == 0) == first
        low, high = (half, 0.49 - half) if in_first_half else (0.51 + half, 1 - half)
        along.append(rng.uniform(low, max(low, high)))
    centre = rng.uniform(max(halves), 1 - max(halves))
    across = [centre + rng.uniform(-0.05, 0.05) for _ in halves]
    across = [min(max(c, h), 1 - h) for c, h in zip(across, halves, strict=True)]
    horizontal = relation in ("left", "right")
    positions = [(a, c) if horizontal else (c, a) for a, c in zip(along, across, strict=True)]
    subject = _digit(rng, pool, labels, None, *positions[0], sizes[0])
    reference = _digit(rng, pool, labels, subject.digit, *positions[1], sizes[1])
    return DigitScene(image_id, (subject, reference), relation, background, crop)


def _background(scene: DigitScene, source: DigitSource, image_size: int, rng) -> np.ndarray:
    photo = source.photos[scene.background]
    height, width = photo.shape[:2]
    side = int(scene.crop[2] * min(height, width))
    left = int(scene.crop[0] * (width - side))
    top = int(scene.crop[1] * (height - side))
    patch = Image.fromarray(photo[top : top + side, left : left + side])
    patch = np.asarray(patch.resize((image_size, image_size), Image.BILINEAR), np.float32)
    return patch * rng.uniform(*BACKGROUND_BRIGHTNESS)


def render_digit_scene(
    scene: DigitScene, source: DigitSource, image_size: int, rng: np.random.Generator
) -> np.ndarray:
    """The scene's pixels: `uint8 [image_size, image_size, 3]`."""
    image = _background(scene, source, image_size, rng)
    for digit in scene.digits:
        side = max(4, int(round(digit.side * image_size)))
        scan = Image.fromarray(source.scans[digit.sample] / 16.0, mode="F")
        alpha = np.clip(np.asarray(scan.resize((side, side), Image.BILINEAR)), 0.0, 1.0)
        left = int(round(digit.x * image_size - side / 2))
        top = int(round(digit.y * image_size - side / 2))
        left, top = min(max(left, 0), image_size - side), min(max(top, 0), image_size - side)
        colour = np.asarray(COLOUR_RGB[digit.colour], np.float32)
        region = image[top : top + side, left : left + side]
        region[:] = region * (1 - alpha[..., None]) + colour * alpha[..., None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def describe_digit_scene(scene: DigitScene, rng: np.random.Generator) -> list[str]:
    """`CAPTIONS_PER_IMAGE` different captions of the scene, from different templates."""
    if scene.relation is None:
        (digit,) = scene.digits
        values = {"a": digit.text, "n": DIGIT_NAMES[digit.digit], "c": digit.colour}
        templates = ONE_DIGIT_TEMPLATES
    else:
        subject, reference = scene.digits
        x, y = (subject, reference) if rng.random() < 0.5 else (reference, subject)
        values = {
            "a": subject.text,
            "b": reference.text,
            "na": DIGIT_NAMES[subject.digit],
            "nb": DIGIT_NAMES[reference.digit],
            "x": x.text,
            "y": y.text,
        }
        templates = TWO_DIGIT_TEMPLATES
    chosen = rng.choice(len(templates), size=CAPTIONS_PER_IMAGE, replace=False)
    captions = []
    for index in chosen:
        if scene.relation is not None:
            values["r"] = str(rng.choice(RELATION_PHRASES[scene.relation]))
            values["ri"] = str(rng.choice(RELATION_PHRASES[INVERSE_RELATION[scene.relation]]))
        captions.append(templates[index].format(**values))
    return captions


def statement_text(digits: tuple[Digit, ...], relation: str | None) -> str:
    """The canonical statement: "a large red seven" or "<a> to the left of <b>"."""
    if relation is None:
        return digits[0].text
    return f"{digits[0].text} {RELATION_PHRASES[relation][0]} {digits[1].text}"


def make_statement_pair(scene: DigitScene, rng: np.random.Generator) -> tuple[str, str]:
    """A true statement of the scene and a false one (one digit, colour, size or relation
    changed to another value)."""
    true = statement_text(scene.digits, scene.relation)
    fields = ["digit", "colour", "size"] * len(scene.digits)
    if scene.relation is not None:
        fields += ["relation"] * 3
    field = fields[int(rng.integers(len(fields)))]
    digits, relation = list(scene.digits), scene.relation
    if field == "relation":
        relation = str(rng.choice([r for r in RELATIONS if r != relation]))
    else:
        index = int(rng.integers(len(digits)))
        digit = digits[index]
        taken = {d.digit for d in digits}
        if field == "digit":
            choices = [d for d in range(10) if d not in taken]
            digits[index] = dataclasses.replace(digit, digit=int(rng.choice(choices)))
        elif field == "colour":
            choices = [c for c in COLOURS if c != digit.colour]
            digits[index] = dataclasses.replace(digit, colour=str(rng.choice(choices)))
        else:
            digits[index] = dataclasses.replace(digit, size=INVERSE_SIZE[digit.size])
    return true, statement_text(tuple(digits), relation)


def split_assignment(num_images: int, seed: int) -> list[str]:
    """The split of each image index: 75 / 12.5 / 12.5 % (at least one val and test image).

    Example:

    >>> splits = split_assignment(4000, seed=0)
    >>> splits.count("train"), splits.count("val"), splits.count("test")
    (3000, 500, 500)
    """
    num_images, _, seed = _check_params(num_images, MIN_IMAGE_SIZE, seed)
    num_val = num_test = max(1, num_images // 8)
    order = np.random.default_rng(np.random.SeedSequence([seed, 1])).permutation(num_images)
    splits = ["train"] * num_images
    for index in order[:num_val]:
        splits[index] = "val"
    for index in order[num_val : num_val + num_test]:
        splits[index] = "test"
    return splits


def _dataset_info(num_images: int, image_size: int, seed: int) -> dict:
    return dataset_info(GENERATOR_NAME, FORMAT_VERSION, num_images, image_size, seed)


def _scenes(num_images: int, seed: int):
    """`(split, scene, pixel_rng, caption_rng, statement_rng)` of every image, in order."""
    source = digit_source(seed)
    width = max(5, len(str(num_images - 1)))
    splits = split_assignment(num_images, seed)
    for index in range(num_images):
        file_name = f"digits_{index:0{width}d}.png"
        split = splits[index]
        children = np.random.SeedSequence([seed, 0, index]).spawn(4)
        scene_rng, pixel_rng, caption_rng, statement_rng = map(np.random.default_rng, children)
        scene = sample_digit_scene(scene_rng, source.pools[split], file_name, labels=source.labels)
        yield split, scene, pixel_rng, caption_rng, statement_rng


def read_digit_scenes(root: str | os.PathLike) -> dict[str, DigitScene]:
    """The scenes of a digits dataset: image id (file name) -> `DigitScene`.

    The dataset stores no scene file; its info file's `num_images` and `seed` draw the
    same scenes again (the generator is deterministic). Raises `FileNotFoundError` when
    `root` has no info file and `ValueError` when another generator wrote it.

    Example:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     scenes = read_digit_scenes(generate_digits_scenes(tmp, num_images=16, image_size=32))
    >>> len(scenes), type(scenes["digits_00000.png"]).__name__
    (16, 'DigitScene')
    """
    path = pathlib.Path(root) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No {INFO_FILE} in the digits dataset. Received: root={root!r}")
    info = json.loads(path.read_text(encoding="utf-8"))
    if info.get("generator") != GENERATOR_NAME:
        raise ValueError(
            f"{path}: field 'generator': expected {GENERATOR_NAME!r}, got {info.get('generator')!r}"
        )
    num_images, _, seed = _check_params(info["num_images"], info["image_size"], info["seed"])
    return {scene.image_id: scene for _, scene, *_ in _scenes(num_images, seed)}


def _write_dataset(root: pathlib.Path, num_images: int, image_size: int, seed: int) -> None:
    source = digit_source(seed)
    images_dir = root / IMAGES_DIR
    images_dir.mkdir()
    token_lines: list[str] = []
    split_images: dict[str, list[str]] = {split: [] for split in SPLITS}
    fusion_lines: dict[str, list[str]] = {split: [] for split in SPLITS}
    for split, scene, pixel_rng, caption_rng, statement_rng in _scenes(num_images, seed):
        file_name = scene.image_id
        stem = file_name.removesuffix(".png")
        image = render_digit_scene(scene, source, image_size, pixel_rng)
        Image.fromarray(image).save(
            images_dir / file_name, format="PNG", compress_level=PNG_COMPRESS_LEVEL
        )
        for k, caption in enumerate(describe_digit_scene(scene, caption_rng)):
            token_lines.append(f"{file_name}#{k}\t{caption}")
        split_images[split].append(file_name)
        true, false = make_statement_pair(scene, statement_rng)
        pairs = [(true, 1), (false, 0)]
        for k, pair_index in enumerate(statement_rng.permutation(2)):
            text, label = pairs[pair_index]
            record = {
                "id": f"{stem}_{k}",
                "img": f"{IMAGES_DIR}/{file_name}",
                "label": label,
                "text": text,
            }
            fusion_lines[split].append(json_line(record))
    write_lines(root / TOKEN_FILE, token_lines)
    for split in SPLITS:
        write_lines(root / FLICKR_SPLIT_FILES[split], split_images[split])
        write_lines(root / FUSION_SPLIT_FILES[split], fusion_lines[split])
    info = _dataset_info(num_images, image_size, seed)
    info["splits"] = {split: len(split_images[split]) for split in SPLITS}
    write_lines(root / INFO_FILE, [json.dumps(info, sort_keys=True, indent=2)])


def generate_digits_scenes(
    out_dir: str | os.PathLike, num_images: int = 4000, image_size: int = 64, seed: int = 0
) -> pathlib.Path:
    """Writes the digits dataset to `out_dir` (the dataset root) and returns its path.

    Written to a hidden folder and renamed into place (no half dataset after a crash);
    `out_dir` may be missing, empty or an earlier digits dataset (replaced).

    Args:
        out_dir: the dataset root to write.
        num_images: how many images (>= 16). Defaults to 4000 (3,000 / 500 / 500).
        image_size: side of the square images in pixels (32-512). Defaults to 64.
        seed: the random seed (>= 0); the same arguments give byte-identical files.
            Defaults to 0.

    Example:

    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = generate_digits_scenes(tmp, num_images=16, image_size=32)
    ...     len(list((root / "Images").iterdir()))
    16
    """
    num_images, image_size, seed = _check_params(num_images, image_size, seed)
    return write_dataset_atomically(
        out_dir,
        lambda staging: _write_dataset(staging, num_images, image_size, seed),
        name="digits",
        info_file=INFO_FILE,
        generator=GENERATOR_NAME,
    )


def digits_scenes_dir(num_images: int = 4000, image_size: int = 64, seed: int = 0) -> pathlib.Path:
    """Where `load_digits_scenes` keeps the dataset with these parameters (see `data_home`).

    Example:

    >>> digits_scenes_dir(4000, 64, 0).name
    'digits-v1-n4000-64px-seed0'
    """
    num_images, image_size, seed = _check_params(num_images, image_size, seed)
    return cache_dir("digits", FORMAT_VERSION, num_images, image_size, seed)


def load_digits_scenes(num_images: int = 4000, image_size: int = 64, seed: int = 0) -> pathlib.Path:
    """Returns the root of the cached digits dataset, generating it only if missing."""
    root = digits_scenes_dir(num_images, image_size, seed)
    return load_cached(
        root,
        lambda: info_matches(root, INFO_FILE, _dataset_info(num_images, image_size, seed)),
        lambda: generate_digits_scenes(root, num_images, image_size, seed),
    )
