"""COCO captions JSON (`captions_train2017.json`: images + annotations)."""

import os
import pathlib
import re

import pandas as pd

from xmodal_keras.data.readers.common import (
    CAPTION_FORMATS_HELP,
    FileIndex,
    PathLike,
    ReadResult,
    check_split_argument,
    existing_path,
    is_nonempty_text,
    load_json,
    make_result,
    split_from_name,
    text_problem,
)
from xmodal_keras.data.validation import ProblemCollector


def _coco_images_dir(path: pathlib.Path) -> pathlib.Path:
    """`annotations/captions_train2017.json` -> the nearest `train2017/` folder."""
    match = re.match(r"captions_(.+)", path.stem)
    folder = match.group(1) if match else path.stem
    parent = path.parent
    candidates = [
        parent / folder,
        parent.parent / folder,
        parent.parent / "images" / folder,
        parent / "images" / folder,
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return parent


def read_coco_captions_result(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    split: str | None = None,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    """`read_coco_captions` without raising: the valid rows, every problem and notes."""
    path = existing_path(path, CAPTION_FORMATS_HELP)
    split = check_split_argument(split) or split_from_name(path.stem)
    if split is None:
        raise ValueError(
            f"Cannot tell the split of {os.fspath(path)!r} from its name (expected e.g. "
            "captions_train2017.json or captions_val2017.json); pass split='train', 'val' or "
            f"'test'. Received: split=None"
        )
    problems = ProblemCollector()
    data = load_json(path, problems)
    if data is not None and not isinstance(data, dict):
        problems.add(
            path, None, None, "a JSON object with 'images' and 'annotations'", type(data).__name__
        )
        data = None
    images = data.get("images") if data is not None else []
    annotations = data.get("annotations") if data is not None else []
    for name, value in (("images", images), ("annotations", annotations)):
        if not isinstance(value, list):
            problems.add(path, None, name, "a list", type(value).__name__)
    images = images if isinstance(images, list) else []
    annotations = annotations if isinstance(annotations, list) else []
    base = os.path.abspath(images_dir if images_dir is not None else _coco_images_dir(path))

    image_info: dict[str, tuple[int, str]] = {}  # id -> (position, file name)
    for i, image in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(image, dict):
            problems.add(path, None, where, "a JSON object", type(image).__name__)
            continue
        image_id, file_name = image.get("id"), image.get("file_name")
        if isinstance(image_id, bool) or not isinstance(image_id, int | str) or image_id == "":
            problems.add(path, None, f"{where}.id", "an integer or text id", repr(image_id))
            continue
        if not is_nonempty_text(file_name):
            problems.add(path, None, f"{where}.file_name", "a file name", repr(file_name))
            continue
        key = str(image_id)
        if key in image_info:
            problems.add(
                path,
                None,
                f"{where}.id",
                "a unique image id",
                f"{image_id!r} (also images[{image_info[key][0]}])",
            )
            continue
        image_info[key] = (i, file_name)

    captions: dict[str, list[str]] = {}
    annotation_ids: dict[object, int] = {}
    for k, annotation in enumerate(annotations):
        where = f"annotations[{k}]"
        if not isinstance(annotation, dict):
            problems.add(path, None, where, "a JSON object", type(annotation).__name__)
            continue
        annotation_id = annotation.get("id")
        if annotation_id is not None:
            if annotation_id in annotation_ids:
                problems.add(
                    path,
                    None,
                    f"{where}.id",
                    "a unique annotation id",
                    f"{annotation_id!r} (also annotations[{annotation_ids[annotation_id]}])",
                )
                continue
            annotation_ids[annotation_id] = k
        image_id, caption = annotation.get("image_id"), annotation.get("caption")
        ok = True
        if isinstance(image_id, bool) or str(image_id) not in image_info:
            problems.add(
                path, None, f"{where}.image_id", "the id of an entry in 'images'", repr(image_id)
            )
            ok = False
        bad_text = text_problem(caption)
        if bad_text:
            problems.add(path, None, f"{where}.caption", *bad_text)
            ok = False
        if ok:
            captions.setdefault(str(image_id), []).append(caption.strip())

    index = FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows = []
    for key, (i, file_name) in image_info.items():
        if key not in captions:
            continue
        image_path = index.resolve(base, file_name)
        bad_file = index.problem(image_path, root=base, written=file_name)
        if bad_file:
            problems.add(path, None, f"images[{i}].file_name", *bad_file)
            continue
        rows.extend((key, image_path, caption, split) for caption in captions[key])
    return make_result("captions", "coco", path, problems, rows)


def read_coco_captions(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    split: str | None = None,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read COCO captions (`captions_train2017.json`: `images[{id, file_name}]`,
    `annotations[{image_id, caption}]`).

    Args:
        path: the JSON file.
        images_dir: folder holding the images. Defaults to the first folder that exists among
            `<json dir>/<name>`, `<json dir>/../<name>`, `<json dir>/../images/<name>`,
            `<json dir>/images/<name>` (`<name>` = `train2017` for `captions_train2017.json`),
            else the JSON's folder.
        split: the split of every row. Defaults to the one in the file name.
        check_images: check every captioned image is a JPEG/PNG/GIF/BMP/WEBP file.
            Defaults to `True`.
        allow_outside_root: accept `file_name`s that leave the image folder. Defaults to
            `False`.

    Returns:
        A caption DataFrame (`image_id` = the COCO image id as text), grouped by image in the
        file's image order. Images without captions are left out.

    Raises:
        DataValidationError: listing every problem (items named like `annotations[7].caption`).
        ValueError: if no split is given and the file name does not tell it.
    """
    return read_coco_captions_result(
        path,
        images_dir,
        split=split,
        check_images=check_images,
        allow_outside_root=allow_outside_root,
    ).raise_if_problems()
