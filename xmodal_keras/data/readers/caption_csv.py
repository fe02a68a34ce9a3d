"""Captions from a CSV with columns `image_path, caption[, split][, image_id]`."""

import os

import pandas as pd

from xmodal_keras.data.readers.common import (
    CAPTION_FORMATS_HELP,
    SPLIT_ALIASES,
    SPLIT_NAMES_TEXT,
    FileIndex,
    PathLike,
    ReadResult,
    check_split_argument,
    existing_path,
    make_result,
    read_csv,
    text_problem,
)
from xmodal_keras.data.validation import ProblemCollector


def read_caption_csv_result(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    default_split: str = "train",
    allow_outside_root: bool = False,
) -> ReadResult:
    """`read_caption_csv` without raising: the valid rows, every problem and notes."""
    path = existing_path(path, CAPTION_FORMATS_HELP)
    default_split = check_split_argument(default_split)
    problems = ProblemCollector()
    table = read_csv(path, ("image_path", "caption"), problems)
    base = os.path.abspath(images_dir if images_dir is not None else path.parent)
    index = FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows = []
    split_of: dict[str, tuple[str, int]] = {}
    for line, record in table.rows if table else []:
        ok = True
        relative, caption = record["image_path"].strip(), record["caption"].strip()
        if not relative:
            problems.add(path, line, "image_path", "a file path", repr(record["image_path"]))
            ok = False
        bad_text = text_problem(record["caption"])
        if bad_text:
            problems.add(path, line, "caption", *bad_text)
            ok = False
        split = default_split
        if "split" in record:
            split = SPLIT_ALIASES.get(record["split"].strip().lower())
            if split is None:
                problems.add(path, line, "split", SPLIT_NAMES_TEXT, repr(record["split"]))
                ok = False
        image_id = record["image_id"].strip() if "image_id" in record else relative
        if "image_id" in record and not image_id:
            problems.add(path, line, "image_id", "an image id", repr(record["image_id"]))
            ok = False
        if not relative:
            continue
        image_path = index.resolve(base, relative)
        if split is not None:
            first_split, first_line = split_of.setdefault(image_path, (split, line))
            if first_split != split:
                problems.add(
                    path,
                    line,
                    "split",
                    f"split {first_split!r} for this image, as on line {first_line}",
                    repr(split),
                )
                ok = False
        bad_file = index.problem(image_path, root=base, written=relative)
        if bad_file:
            problems.add(path, line, "image_path", *bad_file)
            ok = False
        copy = table.copy_problem(line) if ok else None
        if copy:
            problems.add(path, line, None, *copy)
            ok = False
        if ok:
            rows.append((image_id, image_path, caption, split))
    return make_result("captions", "csv", path, problems, rows)


def read_caption_csv(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    default_split: str = "train",
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read captions from a CSV with columns `image_path, caption[, split][, image_id]`.

    Relative image paths are relative to the CSV's folder (or `images_dir`); a path that
    leaves that folder (`../x.png`, an absolute path elsewhere) is refused unless
    `allow_outside_root`. Without a `split` column every row is `default_split`; with one,
    every cell must name a split. An image may have many captions but only one split; a
    row repeated verbatim, a caption like `NaN` and a file without rows are problems.
    Other columns are ignored.

    Args:
        path: the CSV file (comma-separated, header line, UTF-8 with or without BOM).
        images_dir: folder relative image paths start from. Defaults to the CSV's folder.
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file. Defaults to `True`.
        default_split: split for every row when there is no `split` column.
            Defaults to `"train"`.
        allow_outside_root: accept image paths outside that folder. Defaults to `False`.

    Returns:
        A caption DataFrame; `image_id` is the `image_id` cell or the path as written.

    Raises:
        DataValidationError: listing every problem, by line (the header is line 1).
    """
    return read_caption_csv_result(
        path,
        images_dir,
        check_images=check_images,
        default_split=default_split,
        allow_outside_root=allow_outside_root,
    ).raise_if_problems()
