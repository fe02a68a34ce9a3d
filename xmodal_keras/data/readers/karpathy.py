"""Karpathy split JSON (`dataset_coco.json`, `dataset_flickr8k.json`, ...) captions."""

import os

import pandas as pd

from xmodal_keras.data.readers.common import (
    CAPTION_FORMATS_HELP,
    SPLIT_ALIASES,
    SPLIT_NAMES_TEXT,
    FileIndex,
    PathLike,
    ReadResult,
    existing_path,
    is_nonempty_text,
    load_json,
    make_result,
    text_problem,
)
from xmodal_keras.data.validation import ProblemCollector


def read_karpathy_json_result(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    """`read_karpathy_json` without raising: the valid rows, every problem and notes."""
    path = existing_path(path, CAPTION_FORMATS_HELP)
    problems = ProblemCollector()
    if path.is_dir():
        found = sorted(path.glob("dataset_*.json"))
        if len(found) != 1:
            problems.add(path, None, None, "one dataset_*.json file", f"{len(found)}")
            return make_result("captions", "karpathy", path, problems, [])
        path = found[0]
    data = load_json(path, problems)
    images = data.get("images") if isinstance(data, dict) else None
    if data is not None and not isinstance(images, list):
        problems.add(
            path, None, "images", "a JSON object with an 'images' list", type(images).__name__
        )
    base = os.path.abspath(images_dir if images_dir is not None else path.parent)
    index = FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows = []
    first_seen: dict[str, int] = {}
    for i, image in enumerate(images if isinstance(images, list) else []):
        where = f"images[{i}]"
        if not isinstance(image, dict):
            problems.add(path, None, where, "a JSON object", type(image).__name__)
            continue
        ok = True
        filename, filepath = image.get("filename"), image.get("filepath", "")
        if not is_nonempty_text(filename):
            problems.add(path, None, f"{where}.filename", "a file name", repr(filename))
            ok = False
        if not isinstance(filepath, str):
            problems.add(path, None, f"{where}.filepath", "a folder name", repr(filepath))
            ok = False
        raw_split = image.get("split")
        split = SPLIT_ALIASES.get(raw_split.strip().lower()) if isinstance(raw_split, str) else None
        if split is None:
            problems.add(path, None, f"{where}.split", SPLIT_NAMES_TEXT, repr(raw_split))
            ok = False
        sentences = image.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            problems.add(path, None, f"{where}.sentences", "a non-empty list", repr(sentences))
            sentences, ok = [], False
        captions = []
        for j, sentence in enumerate(sentences):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            bad_text = text_problem(raw)
            if bad_text:
                problems.add(path, None, f"{where}.sentences[{j}].raw", *bad_text)
                ok = False
            else:
                captions.append(raw.strip())
        if not is_nonempty_text(filename) or not isinstance(filepath, str):
            continue
        image_id = f"{filepath.strip('/')}/{filename}" if filepath else filename
        if image_id in first_seen:
            problems.add(
                path,
                None,
                f"{where}.filename",
                "each image once",
                f"{image_id!r} (also images[{first_seen[image_id]}])",
            )
            continue
        first_seen[image_id] = i
        written = os.path.join(filepath, filename)
        image_path = index.resolve(base, written)
        bad_file = index.problem(image_path, root=base, written=written)
        if bad_file:
            problems.add(path, None, f"{where}.filename", *bad_file)
            ok = False
        if ok:
            rows.extend((image_id, image_path, caption, split) for caption in captions)
    return make_result("captions", "karpathy", path, problems, rows)


def read_karpathy_json(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read a Karpathy split file (`dataset_coco.json`, `dataset_flickr8k.json`, ...).

    Uses `images[].filename`, `.filepath` (COCO only), `.split` (`restval` counts as train)
    and `.sentences[].raw`. The image path is `images_dir/filepath/filename`; it may not
    leave `images_dir` (a `filepath` like `../..`) unless `allow_outside_root`.

    Args:
        path: the JSON file.
        images_dir: folder the image paths are relative to. Defaults to the JSON's folder.
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file. Defaults to `True`.
        allow_outside_root: accept image paths outside `images_dir`. Defaults to `False`.

    Returns:
        A caption DataFrame; `image_id` is `filepath/filename` (or `filename`).

    Raises:
        DataValidationError: listing every problem; JSON problems name the item
            (`field 'images[3].split'`) instead of a line.
    """
    return read_karpathy_json_result(
        path, images_dir, check_images=check_images, allow_outside_root=allow_outside_root
    ).raise_if_problems()
