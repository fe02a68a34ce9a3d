"""Format detection and the format-independent entry points `read_captions` / `read_pairs`."""

import csv
import os
import pathlib
from collections.abc import Callable

import pandas as pd

from xmodal_keras.data.readers.caption_csv import read_caption_csv_result
from xmodal_keras.data.readers.coco import read_coco_captions_result
from xmodal_keras.data.readers.common import (
    CAPTION_FORMATS,
    CAPTION_FORMATS_HELP,
    PAIR_FORMATS,
    PAIR_FORMATS_HELP,
    PathLike,
    ReadResult,
    existing_path,
)
from xmodal_keras.data.readers.flickr8k import (
    FLICKR8K_TEXT_DIR,
    FLICKR8K_TOKEN_FILE,
    read_flickr8k_result,
)
from xmodal_keras.data.readers.hateful_memes import hateful_memes_files, read_hateful_memes_result
from xmodal_keras.data.readers.karpathy import read_karpathy_json_result
from xmodal_keras.data.readers.pair_csv import read_pair_csv_result


def _sniff_json(path: pathlib.Path) -> str | None:
    """ "karpathy" or "coco" from the first 64 KiB (image entries come early in both)."""
    try:
        with open(path, "rb") as file:
            head = file.read(1 << 16).decode("utf-8", errors="replace")
    except OSError:
        return None
    if '"sentences"' in head:
        return "karpathy"
    if '"annotations"' in head or '"file_name"' in head:
        return "coco"
    return None


def _csv_header(path: pathlib.Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
            for record in csv.reader(file):
                if record and any(field.strip() for field in record):
                    return [field.strip() for field in record]
    except (OSError, csv.Error):
        pass
    return []


def detect_formats(path: PathLike) -> list[tuple[str, str]]:
    """The `(kind, format)` views found at `path`, kind being "captions" or "pairs".

    A folder can hold both, e.g. the built-in shapes dataset (Flickr8k + Hateful-Memes files).

    Example:

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "Flickr8k.token.txt").write_text("")
    >>> _ = (folder / "train.jsonl").write_text("")
    >>> detect_formats(folder)
    [('captions', 'flickr8k'), ('pairs', 'hateful_memes')]
    """
    path = pathlib.Path(path)
    found = []
    if path.is_dir():
        if any(
            (folder / FLICKR8K_TOKEN_FILE).is_file() for folder in (path, path / FLICKR8K_TEXT_DIR)
        ):
            found.append(("captions", "flickr8k"))
        else:
            karpathy = sorted(path.glob("dataset_*.json"))
            if len(karpathy) == 1 and _sniff_json(karpathy[0]) == "karpathy":
                found.append(("captions", "karpathy"))
        if hateful_memes_files(path):
            found.append(("pairs", "hateful_memes"))
        return found
    suffix = path.suffix.lower()
    if path.name == FLICKR8K_TOKEN_FILE:
        found.append(("captions", "flickr8k"))
    elif suffix == ".json":
        fmt = _sniff_json(path)
        if fmt:
            found.append(("captions", fmt))
    elif suffix == ".jsonl":
        found.append(("pairs", "hateful_memes"))
    elif suffix == ".csv":
        header = _csv_header(path)
        if "caption" in header:
            found.append(("captions", "csv"))
        elif "text" in header and "label" in header:
            found.append(("pairs", "csv"))
    return found


def _reader_for(kind: str, fmt: str) -> Callable[..., ReadResult]:
    readers = {
        ("captions", "flickr8k"): read_flickr8k_result,
        ("captions", "karpathy"): read_karpathy_json_result,
        ("captions", "coco"): read_coco_captions_result,
        ("captions", "csv"): read_caption_csv_result,
        ("pairs", "hateful_memes"): read_hateful_memes_result,
        ("pairs", "csv"): read_pair_csv_result,
    }
    return readers[(kind, fmt)]


def _choose_format(path: PathLike, kind: str, fmt: str) -> str:
    formats, help_text = (
        (CAPTION_FORMATS, CAPTION_FORMATS_HELP)
        if kind == "captions"
        else (PAIR_FORMATS, PAIR_FORMATS_HELP)
    )
    if fmt != "auto":
        if fmt not in formats:
            raise ValueError(
                f"Unknown {kind} format. Supported formats: 'auto', "
                f"{', '.join(repr(f) for f in formats)}. Received: format={fmt!r}"
            )
        existing_path(path, help_text)
        return fmt
    path = existing_path(path, help_text)
    for found_kind, found_format in detect_formats(path):
        if found_kind == kind:
            return found_format
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv"  # the CSV reader names the columns the header lacks, as with format="csv"
    raise ValueError(
        f"Could not recognise {kind} data at {os.fspath(path)!r}. Supported formats: "
        f"{help_text}. Received: path={os.fspath(path)!r}"
    )


def read_with_problems(
    path: PathLike,
    *,
    kind: str,
    format: str = "auto",
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    """Like `read_captions` / `read_pairs` but returns the valid rows and the problems.

    Used by `inspect_dataset`, which reports problems instead of raising.
    """
    if kind not in ("captions", "pairs"):
        raise ValueError(f"`kind` must be 'captions' or 'pairs'. Received: kind={kind!r}")
    fmt = _choose_format(path, kind, format)
    return _reader_for(kind, fmt)(
        path, check_images=check_images, allow_outside_root=allow_outside_root
    )


def read_captions(
    path: PathLike,
    format: str = "auto",
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    split: str | None = None,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read a caption dataset in any supported format into one DataFrame.

    With `format="auto"`: a folder with `Flickr8k.token.txt` (or `Flickr8k_text/`) is
    "flickr8k", a folder with one `dataset_*.json` or a `.json` with `images[].sentences` is
    "karpathy", a `.json` with `annotations` is "coco", a `.csv` with a `caption` column is
    "csv" (another `.csv` is read as "csv" too, so the error names the missing columns).

    Args:
        path: file or folder.
        format: "auto", "flickr8k", "karpathy", "coco" or "csv". Defaults to "auto".
        images_dir: image folder (see each reader). Defaults to the reader's default.
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file. Defaults to `True`.
        split: COCO only: the split of all rows. Defaults to the one in the file name.
        allow_outside_root: accept image paths that leave the data folder (the image
            folder, the JSON's or the CSV's folder: see each reader). Defaults to `False`.

    Returns:
        A DataFrame with `image_id`, `image_path` (absolute), `caption`, `split`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: for an unknown or unrecognised format.
        DataValidationError: listing every problem in the data.

    Example:

    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "cat.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n")
    >>> _ = (root / "c.csv").write_text("image_path,caption,split\\ncat.png,A cat.,dev\\n")
    >>> read_captions(root / "c.csv").split.tolist()
    ['val']
    """
    fmt = _choose_format(path, "captions", format)
    if split is not None and fmt != "coco":
        raise ValueError(
            f"`split` applies to the 'coco' format only (other formats name splits in the "
            f"data). Received: split={split!r} for format={fmt!r}"
        )
    options = {"check_images": check_images, "allow_outside_root": allow_outside_root}
    if fmt == "coco":
        result = read_coco_captions_result(path, images_dir, split=split, **options)
    else:
        result = _reader_for("captions", fmt)(path, images_dir, **options)
    return result.raise_if_problems()


def read_pairs(
    path: PathLike,
    format: str = "auto",
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read an image-text pair (fusion) dataset into one DataFrame.

    With `format="auto"`: a folder with `train*.jsonl` / `dev*.jsonl` / `test*.jsonl` or a
    `.jsonl` file is "hateful_memes"; a `.csv` is "csv".

    Args:
        path: file or folder.
        format: "auto", "hateful_memes" or "csv". Defaults to "auto".
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file (and every audio
            path a regular file). Defaults to `True`.
        allow_outside_root: accept paths that leave the data folder (the JSONL's or CSV's
            folder). Defaults to `False`.

    Returns:
        A DataFrame with `id`, `image_path` (absolute), `text`, `label` (int64), `split` and
        any extra CSV columns.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: for an unknown or unrecognised format.
        DataValidationError: listing every problem in the data.
    """
    return read_with_problems(
        path,
        kind="pairs",
        format=format,
        check_images=check_images,
        allow_outside_root=allow_outside_root,
    ).raise_if_problems()
