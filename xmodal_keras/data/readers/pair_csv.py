"""Image-text pairs from a CSV with columns `image_path, text, label[, split, id, ...]`."""

import os
import re

import pandas as pd

from xmodal_keras.data.readers.common import (
    PAIR_COLUMNS,
    PAIR_FORMATS_HELP,
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

_INTEGER = re.compile(r"\+?[0-9]+")


def read_pair_csv_result(
    path: PathLike,
    *,
    check_images: bool = True,
    default_split: str = "train",
    allow_outside_root: bool = False,
) -> ReadResult:
    """`read_pair_csv` without raising: the valid rows, every problem and notes."""
    path = existing_path(path, PAIR_FORMATS_HELP)
    default_split = check_split_argument(default_split)
    problems = ProblemCollector()
    table = read_csv(path, ("image_path", "text", "label"), problems)
    header = table.header if table else []
    extra_columns = [name for name in header if name not in ("id", *PAIR_COLUMNS)]
    base = os.path.abspath(path.parent)
    index = FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows: list[dict[str, object]] = []
    first_line_of: dict[str, int] = {}
    for line, record in table.rows if table else []:
        ok = True
        row: dict[str, object] = {name: record[name] for name in extra_columns}
        split = default_split
        if "split" in record:
            split = SPLIT_ALIASES.get(record["split"].strip().lower())
            if split is None:
                problems.add(path, line, "split", SPLIT_NAMES_TEXT, repr(record["split"]))
                ok = False
        item_id = record["id"].strip() if "id" in record else str(line)
        if not item_id:
            problems.add(path, line, "id", "an id", repr(record["id"]))
            ok = False
        elif item_id in first_line_of:
            problems.add(
                path,
                line,
                "id",
                "a unique id",
                f"{item_id!r} (first on line {first_line_of[item_id]})",
            )
            ok = False
        else:
            first_line_of[item_id] = line
        text_value = record["text"].strip()
        bad_text = text_problem(record["text"])
        if bad_text:
            problems.add(path, line, "text", *bad_text)
            ok = False
        raw_label = record["label"].strip()
        if _INTEGER.fullmatch(raw_label):
            label = int(raw_label)
        elif split == "test" and raw_label in ("", "-1"):
            label = -1
        else:
            label = None
            expected = "an integer >= 0" + (
                " (or empty in the test split)" if split == "test" else ""
            )
            problems.add(path, line, "label", expected, repr(record["label"]))
            ok = False
        for column in ("image_path", "audio_path"):
            if column not in record:
                continue
            relative = record[column].strip()
            if not relative:
                problems.add(path, line, column, "a file path", repr(record[column]))
                ok = False
                continue
            row[column] = index.resolve(base, relative)
            kind = "image" if column == "image_path" else "audio"
            bad_file = index.problem(row[column], root=base, written=relative, kind=kind)
            if bad_file:
                problems.add(path, line, column, *bad_file)
                ok = False
        copy = table.copy_problem(line) if ok else None
        if copy:
            problems.add(path, line, None, *copy)
            ok = False
        if ok:
            row.update(id=item_id, text=text_value, label=label, split=split)
            rows.append(row)
    return make_result("pairs", "csv", path, problems, rows, extra_columns=extra_columns)


def read_pair_csv(
    path: PathLike,
    *,
    check_images: bool = True,
    default_split: str = "train",
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read image-text pairs from a CSV with columns `image_path, text, label[, split, id]`.

    Labels are integers >= 0 (an empty label, or -1, means "unlabelled" in the test split).
    Without an `id` column the id is the row's line number. Any other column is kept as a
    tabular feature: int64/float64 when every cell is a number, else text. An `audio_path`
    column is resolved like `image_path` (relative to the CSV's folder) and checked too.
    Paths may not leave the CSV's folder unless `allow_outside_root`; a row repeated
    verbatim, a text like `NaN` and a file without rows are problems.

    Args:
        path: the CSV file.
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file (and every audio
            path a regular file). Defaults to `True`.
        default_split: split for every row when there is no `split` column.
            Defaults to `"train"`.
        allow_outside_root: accept paths outside the CSV's folder. Defaults to `False`.

    Returns:
        A pair DataFrame: `id`, `image_path`, `text`, `label` (int64), `split`, extra columns.

    Raises:
        DataValidationError: listing every problem, by line (the header is line 1).
    """
    return read_pair_csv_result(
        path,
        check_images=check_images,
        default_split=default_split,
        allow_outside_root=allow_outside_root,
    ).raise_if_problems()
