"""Hateful-Memes style JSONL image-text pairs (`train.jsonl`, `dev_seen.jsonl`, ...)."""

import json
import os
import pathlib

import pandas as pd

from xmodal_keras.data.readers.common import (
    PAIR_FORMATS_HELP,
    SPLITS,
    FileIndex,
    PathLike,
    ReadResult,
    check_split_argument,
    existing_path,
    is_nonempty_text,
    make_result,
    read_text,
    split_from_prefix,
    split_lines,
    text_problem,
)
from xmodal_keras.data.validation import ProblemCollector


def hateful_memes_files(path: pathlib.Path) -> list[pathlib.Path]:
    """The `train*`, `dev*`, `val*` and `test*.jsonl` files in folder `path`, by split and name."""
    order = {split: i for i, split in enumerate(SPLITS)}
    files = [p for p in path.glob("*.jsonl") if p.is_file() and split_from_prefix(p.name)]
    return sorted(files, key=lambda p: (order[split_from_prefix(p.name)], p.name))


def read_hateful_memes_result(
    path: PathLike,
    *,
    split: str | None = None,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    """`read_hateful_memes` without raising: the valid rows, every problem and notes."""
    path = existing_path(path, PAIR_FORMATS_HELP)
    split = check_split_argument(split)
    problems = ProblemCollector()
    if path.is_dir():
        files = [(p, split_from_prefix(p.name)) for p in hateful_memes_files(path)]
        if not files:
            problems.add(path, None, None, "train*.jsonl, dev*.jsonl or test*.jsonl files", "none")
    else:
        file_split = split or split_from_prefix(path.name)
        if file_split is None:
            raise ValueError(
                f"Cannot tell the split of {os.fspath(path)!r} from its name (expected train*, "
                "dev*, val* or test*.jsonl); pass split='train', 'val' or 'test'. "
                "Received: split=None"
            )
        files = [(path, file_split)]

    index = FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows: list[dict[str, object]] = []
    seen: dict[str, tuple[pathlib.Path, int, tuple]] = {}  # id -> (file, line, row values)
    deduplicated = 0
    for file, file_split in files:
        text, bad_lines = read_text(file, problems)
        base = os.path.abspath(file.parent)
        for number, line in enumerate(split_lines(text or ""), start=1):
            if number in bad_lines or not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                problems.add(
                    file, number, None, "a JSON object", f"{error.msg} at column {error.colno}"
                )
                continue
            if not isinstance(item, dict):
                problems.add(file, number, None, "a JSON object", type(item).__name__)
                continue
            ok = True
            item_id, img, text_value = item.get("id"), item.get("img"), item.get("text")
            if isinstance(item_id, bool) or not isinstance(item_id, int | str) or item_id == "":
                problems.add(file, number, "id", "an integer or text id", repr(item_id))
                ok = False
            if not is_nonempty_text(img):
                problems.add(file, number, "img", "an image path", repr(img))
                ok = False
            bad_text = text_problem(text_value)
            if bad_text:
                problems.add(file, number, "text", *bad_text)
                ok = False
            label = item.get("label")
            if label is None and file_split == "test":
                label = -1
            elif isinstance(label, bool) or label not in (0, 1) or not isinstance(label, int):
                problems.add(
                    file, number, "label", "0 or 1", repr(label) if "label" in item else "nothing"
                )
                ok = False
            if not ok:
                continue
            item_id = str(item_id)
            image_path = index.resolve(base, img)
            row = {
                "id": item_id,
                "image_path": image_path,
                "text": text_value.strip(),
                "label": label,
                "split": file_split,
            }
            content = tuple(row.values())
            if item_id in seen:
                first_file, first_line, first_content = seen[item_id]
                if first_file != file and first_content == content:
                    deduplicated += 1  # e.g. the same meme in dev_seen and dev_unseen
                    continue
                problems.add(
                    file,
                    number,
                    "id",
                    "a unique id",
                    f"{item_id!r} (also {first_file.name}:{first_line})",
                )
                continue
            seen[item_id] = (file, number, content)
            bad_file = index.problem(image_path, root=base, written=img)
            if bad_file:
                problems.add(file, number, "img", *bad_file)
                continue
            rows.append(row)
    notes = []
    if deduplicated:
        notes.append(f"{deduplicated} identical entries listed in two files of one split kept once")
    source = path if path.is_dir() else files[0][0]
    return make_result("pairs", "hateful_memes", source, problems, rows, notes)


def read_hateful_memes(
    path: PathLike,
    *,
    split: str | None = None,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read Hateful-Memes style JSONL: one `{"id", "img", "text", "label"}` object a line.

    `path` is one `.jsonl` file or a folder holding `train*.jsonl`, `dev*.jsonl` /
    `val*.jsonl` (-> "val") and `test*.jsonl` (-> "test"); other `.jsonl` files in the folder
    are ignored. `img` is relative to the JSONL's folder and may not leave it unless
    `allow_outside_root`. Labels must be 0 or 1; a test file
    may leave them out (-> -1). The same id in two files of one split with identical content
    (dev_seen / dev_unseen overlap) is kept once; any other repeated id is a problem.

    Args:
        path: a `.jsonl` file or a folder of them.
        split: split of a single file. Defaults to the one its name starts with.
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file. Defaults to `True`.
        allow_outside_root: accept `img` paths outside the JSONL's folder. Defaults to
            `False`.

    Returns:
        A pair DataFrame (`id`, `image_path`, `text`, `label`, `split`).

    Raises:
        DataValidationError: listing every problem, by file and line.
    """
    return read_hateful_memes_result(
        path, split=split, check_images=check_images, allow_outside_root=allow_outside_root
    ).raise_if_problems()
