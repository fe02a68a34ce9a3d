"""Readers for real caption and image-text pair datasets, returning validated DataFrames.

Caption data (one row per caption: ``image_id``, ``image_path`` (absolute), ``caption``,
``split``) comes from Flickr8k folders, Karpathy split JSON, COCO captions JSON or a CSV.
Pair data for fusion models (one row per pair: ``id``, ``image_path`` (absolute), ``text``,
``label`` (int64, -1 = unlabelled), ``split`` + extra columns) comes from Hateful-Memes JSONL
or a CSV. Split names are always ``"train"``, ``"val"``, ``"test"`` (``dev`` -> ``val``,
``restval`` -> ``train``).

Every reader checks every row and raises one `DataValidationError` (a `ValueError`) listing
all problems as ``file:line: field 'name': expected ..., got ...``. Line numbers are 1-based
physical lines (a CSV header is line 1); JSON documents have no useful line per item, so
their problems name the item instead (``field 'images[3].split'``). A UTF-8 byte-order mark
and CRLF line ends are accepted anywhere.

Every image path must name a regular JPEG/PNG/GIF/BMP/WEBP file (by its first bytes; a
FIFO, directory or device is refused without being opened: `image_files`) inside the data
folder: the image folder of Flickr8k, the image root of a JSON file (its folder by
default), the folder of a CSV or JSONL file. A path leaving it (`../../etc/passwd`, an
absolute path elsewhere, a Karpathy `filepath` climbing upwards) is a problem unless
`allow_outside_root=True` (`--allow-outside-root`). Captions and texts must have a letter
or digit and not be a missing-value marker (`NaN`); a CSV row repeated verbatim and a data
file without rows are problems too.

Example:

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "dog.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n")
>>> _ = (root / "captions.csv").write_text("image_path,caption\\ndog.png, A dog runs. \\n")
>>> frame = read_captions(root / "captions.csv")
>>> frame[["image_id", "caption", "split"]].values.tolist()
[['dog.png', 'A dog runs.', 'train']]
>>> read_captions(root / "missing.csv")
Traceback (most recent call last):
...
FileNotFoundError: No such file or directory: ...
"""

import codecs
import csv
import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Callable, Iterable

import pandas as pd

from xmodal_keras.data.image_files import NOT_FOUND, file_problem, image_file_problem
from xmodal_keras.data.validation import DataValidationError, Problem, ProblemCollector

PathLike = str | os.PathLike

SPLITS = ("train", "val", "test")
CAPTION_COLUMNS = ("image_id", "image_path", "caption", "split")
PAIR_COLUMNS = ("id", "image_path", "text", "label", "split")
CAPTION_FORMATS = ("flickr8k", "karpathy", "coco", "csv")
PAIR_FORMATS = ("hateful_memes", "csv")

# Split names accepted in files (case-insensitive) and the name they become.
SPLIT_ALIASES = {
    "train": "train",
    "restval": "train",
    "val": "val",
    "dev": "val",
    "validation": "val",
    "test": "test",
}
_SPLIT_NAMES_TEXT = "one of train, val, test (or dev, validation, restval)"
# Captions / texts refused as missing values (compared lowercased).
MISSING_VALUE_MARKERS = frozenset({"nan", "none", "null", "n/a", "<na>"})
OUTSIDE_ROOT_HINT = "--allow-outside-root or allow_outside_root=True reads files elsewhere"

FLICKR8K_TOKEN_FILE = "Flickr8k.token.txt"
FLICKR8K_TEXT_DIR = "Flickr8k_text"
FLICKR8K_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
# "Flicker8k_Dataset" is the spelling inside the original Flickr8k_Dataset.zip.
FLICKR8K_IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images")

_CAPTION_FORMATS_HELP = (
    "flickr8k (a folder with Flickr8k.token.txt and Flickr_8k.{train,dev,test}Images.txt, "
    "or that file itself), karpathy (dataset_*.json with images[].sentences), "
    "coco (captions_*.json with images and annotations), "
    "csv (columns image_path, caption[, split])"
)
_PAIR_FORMATS_HELP = (
    "hateful_memes (train.jsonl / dev*.jsonl / test*.jsonl, or a folder holding them), "
    "csv (columns image_path, text, label[, split, id, audio_path, ...])"
)


@dataclasses.dataclass
class ReadResult:
    """What a reader found: the valid rows, every problem, and notes (dropped rows etc.).

    Public readers raise when `problems` is not empty; `inspect_dataset` shows both.
    """

    frame: pd.DataFrame
    problems: list[Problem]
    source: str
    kind: str  # "captions" or "pairs"
    format: str
    notes: list[str] = dataclasses.field(default_factory=list)

    def raise_if_problems(self) -> pd.DataFrame:
        if self.problems:
            raise DataValidationError(self.source, self.problems)
        return self.frame


# --------------------------------------------------------------------------- shared helpers


def _existing_path(path: PathLike, formats_help: str) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No such file or directory: {os.fspath(path)!r}. Supported formats: {formats_help}."
        )
    return path


def _read_text(path: pathlib.Path, problems: ProblemCollector) -> tuple[str | None, set[int]]:
    """Whole file as text: BOM dropped, CRLF -> LF, undecodable lines reported (and returned)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        problems.add(path, None, None, "a readable file", error.strerror or error)
        return None, set()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    bad_lines = set()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                bad_lines.add(number)
                problems.add(
                    path,
                    number,
                    None,
                    "UTF-8 text",
                    f"undecodable byte 0x{raw[error.start]:02x} at column {error.start + 1}",
                )
        text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n"), bad_lines


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _load_json(path: pathlib.Path, problems: ProblemCollector) -> object:
    text, bad_lines = _read_text(path, problems)
    if text is None or bad_lines:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problems.add(path, error.lineno, None, "valid JSON", f"{error.msg} at column {error.colno}")
        return None


@dataclasses.dataclass
class _CSVTable:
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (1-based first physical line, values by column)
    copy_of: dict[int, int]  # line of a row repeated verbatim -> line of its first copy

    def copy_problem(self, line: int) -> tuple[str, str] | None:
        """`(expected, got)` when the row at `line` repeats an earlier one, else None."""
        if line in self.copy_of:
            return "each row once", f"a copy of line {self.copy_of[line]}"
        return None


def _read_csv(
    path: pathlib.Path, required: tuple[str, ...], problems: ProblemCollector
) -> _CSVTable | None:
    """Parse a comma-separated file with a header, keeping every value as text.

    The stdlib `csv` module is used (not `pandas.read_csv`) because it reports the physical
    line of every record, so each bad row -- wrong field count included -- is named exactly.
    """
    text, bad_lines = _read_text(path, problems)
    if text is None:
        return None
    reader = csv.reader((line + "\n" for line in _split_lines(text)), strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    first_line_of: dict[tuple[str, ...], int] = {}  # a row's stripped cells -> its line
    copy_of: dict[int, int] = {}
    records_seen = 0  # lines after the header that are not blank, bad ones included
    last_line = 0
    while True:
        first_line = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            # The reader resumes at the next line; a quote left open swallows the rest.
            last_line = reader.line_num
            message = str(error)
            if message == "unexpected end of data":
                message = "a quote opened on this line and never closed"
            problems.add(path, first_line, None, "valid CSV", message)
            records_seen += header is not None
            continue
        last_line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line
        if bad_lines and bad_lines.intersection(range(first_line, last_line + 1)):
            records_seen += header is not None
            continue  # already reported as undecodable
        if header is None:
            header = [name.strip() for name in record]
            header_line = first_line
            continue
        records_seen += 1
        if len(record) != len(header):
            problems.add(
                path,
                first_line,
                None,
                f"{len(header)} comma-separated fields ({','.join(header)})",
                f"{len(record)} field{'s' if len(record) != 1 else ''}",
            )
            continue
        cells = tuple(value.strip() for value in record)
        if cells in first_line_of:
            copy_of[first_line] = first_line_of[cells]
        first_line_of.setdefault(cells, first_line)
        rows.append((first_line, dict(zip(header, record, strict=True))))
    if header is None:
        if not bad_lines:
            problems.add(
                path, None, None, f"a header line with columns {', '.join(required)}", "no lines"
            )
        return None
    ok = True
    for name in sorted({name for name in header if header.count(name) > 1}):
        problems.add(path, header_line, name, "each column name once in the header", "it twice")
        ok = False
    for name in required:
        if name not in header:
            problems.add(
                path,
                header_line,
                name,
                f"a '{name}' column in the header",
                f"columns {', '.join(header)}",
            )
            ok = False
    if ok and not records_seen:
        problems.add(path, None, None, "at least one row below the header line", "none")
    return _CSVTable(header, rows, copy_of) if ok else None


def _is_inside(path: str, root: str) -> bool:
    """Whether the normalised absolute `path` lies in the folder `root` (symlinks not followed:
    a link inside the folder may point elsewhere, the usual way to keep images on another disk).
    """
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _FileIndex:
    """Resolves paths and checks each file once: inside the data folder, then a regular
    image (or audio) file (`image_file_problem` / `file_problem`).

    Both answers are cached, so 100k rows naming 8k images cost 8k checks.

    Args:
        check_files: check the files themselves (the readers' `check_images`).
        allow_outside_root: accept paths that leave the data folder.
    """

    def __init__(self, *, check_files: bool = True, allow_outside_root: bool = False) -> None:
        self.check_files = check_files
        self.allow_outside_root = allow_outside_root
        self._resolved: dict[tuple[str, str], str] = {}
        self._reasons: dict[tuple[str, str], str | None] = {}

    def resolve(self, base: str, relative: str) -> str:
        """`relative` joined to the absolute folder `base`, normalised (absolute stays)."""
        key = (base, relative)
        path = self._resolved.get(key)
        if path is None:
            path = self._resolved[key] = os.path.normpath(os.path.join(base, relative))
        return path

    def problem(
        self,
        path: str,
        *,
        root: str,
        written: str,
        kind: str = "image",
        expected: str | None = None,
        got: str | None = None,
    ) -> tuple[str, str] | None:
        """`(expected, got)` for `ProblemCollector.add` when `path` is not usable, else None.

        Args:
            path: the resolved absolute path (`resolve`).
            root: the data folder `path` must stay in (absolute, normalised).
            written: the path as the data file wrote it.
            kind: "image" (a JPEG/PNG/GIF/BMP/WEBP file by its first bytes) or "audio"
                (any regular file; `check_side_inputs` decodes it).
            expected, got: the problem's wording when the file is missing. Defaults to
                "an existing <kind> file" and `path`.
        """
        if not self.allow_outside_root and not _is_inside(path, root):
            return f"a file inside the data folder {root} ({OUTSIDE_ROOT_HINT})", repr(written)
        if not self.check_files:
            return None
        key = (kind, path)
        if key not in self._reasons:
            check = image_file_problem if kind == "image" else file_problem
            self._reasons[key] = check(path)
        reason = self._reasons[key]
        if reason is None:
            return None
        got = path if got is None else got
        return (
            expected or f"an existing {kind} file",
            got if reason == NOT_FOUND else f"{got} ({reason})",
        )


def _split_from_prefix(name: str) -> str | None:
    """Hateful-Memes style: train.jsonl, dev_seen.jsonl, test_unseen.jsonl -> train/val/test."""
    match = re.match(r"(train|restval|validation|val|dev|test)", name.lower())
    return SPLIT_ALIASES[match.group(1)] if match else None


def _split_from_name(name: str) -> str | None:
    """COCO style: captions_train2017.json -> train, captions_val2014.json -> val."""
    match = re.search(r"(?<![a-z])(train|restval|validation|val|dev|test)", name.lower())
    return SPLIT_ALIASES[match.group(1)] if match else None


def _check_split_argument(split: str | None) -> str | None:
    if split is None:
        return None
    if not isinstance(split, str) or split.lower() not in SPLIT_ALIASES:
        raise ValueError(f"`split` must be {_SPLIT_NAMES_TEXT}. Received: split={split!r}")
    return SPLIT_ALIASES[split.lower()]


def _is_nonempty_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _text_problem(value: object) -> tuple[str, str] | None:
    """`(expected, got)` when a caption or text is empty, blank, a missing-value marker
    (`NaN`, `None`, `null`, `N/A`, `<NA>`: what a DataFrame with gaps writes) or has no
    letter or digit (punctuation, zero-width spaces); else None."""
    if not _is_nonempty_text(value):
        return "non-empty text", repr(value)
    text = value.strip()
    if text.lower() in MISSING_VALUE_MARKERS:
        return "non-empty text", f"{value!r} (a missing-value marker)"
    if not any(character.isalnum() for character in text):
        return "text with a letter or digit", repr(value)
    return None


def _caption_frame(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            name: pd.Series([row[i] for row in rows], dtype=str)
            for i, name in enumerate(CAPTION_COLUMNS)
        }
    )


def _pair_frame(rows: list[dict[str, object]], extra_columns: Iterable[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": pd.Series([row["id"] for row in rows], dtype=str),
            "image_path": pd.Series([row["image_path"] for row in rows], dtype=str),
            "text": pd.Series([row["text"] for row in rows], dtype=str),
            "label": pd.Series([row["label"] for row in rows], dtype="int64"),
            "split": pd.Series([row["split"] for row in rows], dtype=str),
        }
    )
    for name in extra_columns:
        values = pd.Series([row[name] for row in rows], dtype=str)
        frame[name] = values if name == "audio_path" else _maybe_numeric(values)
    return frame


def _maybe_numeric(values: pd.Series) -> pd.Series:
    """A tabular column becomes int64/float64 when every value is a number, else stays text."""
    stripped = values.str.strip()
    if stripped.empty or (stripped == "").any():
        return values
    numbers = pd.to_numeric(stripped, errors="coerce")
    if numbers.isna().any():
        return values
    return numbers.astype("int64" if pd.api.types.is_integer_dtype(numbers) else "float64")


def _result(
    kind: str,
    fmt: str,
    source: PathLike,
    problems: ProblemCollector,
    rows: list,
    notes: list[str] | None = None,
    extra_columns: Iterable[str] = (),
) -> ReadResult:
    frame = _caption_frame(rows) if kind == "captions" else _pair_frame(rows, extra_columns)
    # List problems file by file (in order of first mention), by line within a file.
    file_order: dict[str, int] = {}
    for problem in problems.problems:
        file_order.setdefault(problem.file, len(file_order))
    ordered = sorted(problems.problems, key=lambda p: (file_order[p.file], p.line or 0))
    return ReadResult(frame, ordered, os.fspath(source), kind, fmt, notes or [])


# --------------------------------------------------------------------------- Flickr8k


def _flickr8k_text_dir(path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(token file, folder of the text files) for a root folder, Flickr8k_text/ or the file."""
    if path.is_file():
        return path, path.parent
    for folder in (path, path / FLICKR8K_TEXT_DIR):
        if (folder / FLICKR8K_TOKEN_FILE).is_file():
            return folder / FLICKR8K_TOKEN_FILE, folder
    return path / FLICKR8K_TOKEN_FILE, path


def _flickr8k_image_dir(text_dir: pathlib.Path) -> pathlib.Path | None:
    roots = [text_dir.parent, text_dir] if text_dir.name == FLICKR8K_TEXT_DIR else [text_dir]
    for root in roots:
        for name in FLICKR8K_IMAGE_DIRS:
            if (root / name).is_dir():
                return root / name
    return None


def _read_flickr8k(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    path = _existing_path(path, _CAPTION_FORMATS_HELP)
    token_file, text_dir = _flickr8k_text_dir(path)
    problems = ProblemCollector()
    if not token_file.is_file():
        problems.add(token_file, None, None, "the Flickr8k caption file", "no such file")
        return _result("captions", "flickr8k", path, problems, [])

    if images_dir is None:
        found = _flickr8k_image_dir(text_dir)
        if found is None and check_images:
            problems.add(
                text_dir,
                None,
                None,
                f"an image folder named {', '.join(FLICKR8K_IMAGE_DIRS)} (or pass images_dir=)",
                "none",
            )
        images_dir = found if found is not None else text_dir / FLICKR8K_IMAGE_DIRS[-1]
    images_dir = os.path.abspath(images_dir)

    # Caption lines: "<image file>#<n>\t<caption>".
    entries: list[tuple[int, str, str]] = []
    first_seen: dict[str, int] = {}
    text, bad_lines = _read_text(token_file, problems)
    for number, line in enumerate(_split_lines(text or ""), start=1):
        if number in bad_lines or not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        key = key.strip()
        image, hash_sign, _ = key.rpartition("#")
        if not tab or not hash_sign or not image:
            problems.add(
                token_file, number, None, "'<image file>#<n><TAB><caption>'", repr(line[:80])
            )
            continue
        if key in first_seen:
            problems.add(
                token_file,
                number,
                "id",
                "a unique '<image file>#<n>' id",
                f"{key!r} (first on line {first_seen[key]})",
            )
            continue
        first_seen[key] = number
        caption = caption.strip()
        bad_text = _text_problem(caption)
        if bad_text:
            problems.add(token_file, number, "caption", *bad_text)
            continue
        entries.append((number, image, caption))
    captioned = {image for _, image, _ in entries}

    # Split files: one image file name a line.
    split_of: dict[str, str] = {}
    listed_at: dict[str, str] = {}
    split_files_found = 0
    index = _FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    missing_images: set[str] = set()
    for split, name in FLICKR8K_SPLIT_FILES.items():
        split_file = text_dir / name
        if not split_file.is_file():
            continue
        split_files_found += 1
        text, bad_lines = _read_text(split_file, problems)
        for number, line in enumerate(_split_lines(text or ""), start=1):
            image = line.strip()
            if number in bad_lines or not image:
                continue
            if image in listed_at:
                problems.add(
                    split_file,
                    number,
                    "image",
                    "an image listed once, in one split file",
                    f"{image!r} (already listed at {listed_at[image]})",
                )
                continue
            listed_at[image] = f"{split_file.name}:{number}"
            split_of[image] = split
            if image not in captioned:
                problems.add(
                    split_file,
                    number,
                    "image",
                    f"an image with captions in {token_file.name}",
                    repr(image),
                )
            elif bad_file := index.problem(
                index.resolve(images_dir, image),
                root=images_dir,
                written=image,
                expected=f"an existing image file in {images_dir}",
                got=repr(image),
            ):
                missing_images.add(image)
                problems.add(split_file, number, "image", *bad_file)
    if split_files_found == 0:
        problems.add(
            text_dir,
            None,
            None,
            f"at least one split file ({', '.join(FLICKR8K_SPLIT_FILES.values())})",
            "none",
        )

    rows = []
    unsplit: dict[str, None] = {}
    for _, image, caption in entries:
        split = split_of.get(image)
        if split is None:
            unsplit[image] = None
        elif image not in missing_images:
            rows.append((image, os.path.join(images_dir, image), caption, split))
    notes = []
    if unsplit and split_files_found:
        examples = ", ".join(repr(image) for image in list(unsplit)[:3])
        notes.append(
            f"{len(unsplit)} image(s) in {token_file.name} are in no split file and were "
            f"dropped: {examples}{' ...' if len(unsplit) > 3 else ''}"
        )
    return _result("captions", "flickr8k", path, problems, rows, notes)


def read_flickr8k(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Read Flickr8k captions: `Flickr8k.token.txt` + `Flickr_8k.{train,dev,test}Images.txt`.

    `path` is the dataset folder (text files in it or in its `Flickr8k_text/` subfolder) or the
    token file itself. Images are looked up in `Flicker8k_Dataset/` (the original zip's
    spelling), `Flickr8k_Dataset/` or `Images/` next to the text files (or their parent for the
    `Flickr8k_text/` layout) unless `images_dir` is given. Images in the token file but in no
    split file are dropped, not reported (the original release has one such entry); an image
    listed in a split file without captions, listed twice, or missing on disk is a problem.
    Split files that do not exist are skipped; at least one must exist. Image names may not
    leave the image folder (`../x.jpg`, an absolute path) unless `allow_outside_root`.

    Args:
        path: dataset folder or caption file.
        images_dir: folder with the image files. Defaults to the folder found as above.
        check_images: check every image is a JPEG/PNG/GIF/BMP/WEBP file (a regular file, by
            its first bytes). Defaults to `True`.
        allow_outside_root: accept image names that leave the image folder. Defaults to
            `False`.

    Returns:
        A DataFrame with `image_id` (the file name), `image_path`, `caption`, `split`, in the
        token file's order.

    Raises:
        DataValidationError: listing every problem found.
    """
    return _read_flickr8k(
        path, images_dir, check_images=check_images, allow_outside_root=allow_outside_root
    ).raise_if_problems()


# --------------------------------------------------------------------------- Karpathy JSON


def _read_karpathy_json(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    path = _existing_path(path, _CAPTION_FORMATS_HELP)
    problems = ProblemCollector()
    if path.is_dir():
        found = sorted(path.glob("dataset_*.json"))
        if len(found) != 1:
            problems.add(path, None, None, "one dataset_*.json file", f"{len(found)}")
            return _result("captions", "karpathy", path, problems, [])
        path = found[0]
    data = _load_json(path, problems)
    images = data.get("images") if isinstance(data, dict) else None
    if data is not None and not isinstance(images, list):
        problems.add(
            path, None, "images", "a JSON object with an 'images' list", type(images).__name__
        )
    base = os.path.abspath(images_dir if images_dir is not None else path.parent)
    index = _FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows = []
    first_seen: dict[str, int] = {}
    for i, image in enumerate(images if isinstance(images, list) else []):
        where = f"images[{i}]"
        if not isinstance(image, dict):
            problems.add(path, None, where, "a JSON object", type(image).__name__)
            continue
        ok = True
        filename, filepath = image.get("filename"), image.get("filepath", "")
        if not _is_nonempty_text(filename):
            problems.add(path, None, f"{where}.filename", "a file name", repr(filename))
            ok = False
        if not isinstance(filepath, str):
            problems.add(path, None, f"{where}.filepath", "a folder name", repr(filepath))
            ok = False
        raw_split = image.get("split")
        split = SPLIT_ALIASES.get(raw_split.strip().lower()) if isinstance(raw_split, str) else None
        if split is None:
            problems.add(path, None, f"{where}.split", _SPLIT_NAMES_TEXT, repr(raw_split))
            ok = False
        sentences = image.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            problems.add(path, None, f"{where}.sentences", "a non-empty list", repr(sentences))
            sentences, ok = [], False
        captions = []
        for j, sentence in enumerate(sentences):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            bad_text = _text_problem(raw)
            if bad_text:
                problems.add(path, None, f"{where}.sentences[{j}].raw", *bad_text)
                ok = False
            else:
                captions.append(raw.strip())
        if not _is_nonempty_text(filename) or not isinstance(filepath, str):
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
    return _result("captions", "karpathy", path, problems, rows)


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
    return _read_karpathy_json(
        path, images_dir, check_images=check_images, allow_outside_root=allow_outside_root
    ).raise_if_problems()


# --------------------------------------------------------------------------- COCO captions


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


def _read_coco_captions(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    split: str | None = None,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    path = _existing_path(path, _CAPTION_FORMATS_HELP)
    split = _check_split_argument(split) or _split_from_name(path.stem)
    if split is None:
        raise ValueError(
            f"Cannot tell the split of {os.fspath(path)!r} from its name (expected e.g. "
            "captions_train2017.json or captions_val2017.json); pass split='train', 'val' or "
            f"'test'. Received: split=None"
        )
    problems = ProblemCollector()
    data = _load_json(path, problems)
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
        if not _is_nonempty_text(file_name):
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
        bad_text = _text_problem(caption)
        if bad_text:
            problems.add(path, None, f"{where}.caption", *bad_text)
            ok = False
        if ok:
            captions.setdefault(str(image_id), []).append(caption.strip())

    index = _FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
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
    return _result("captions", "coco", path, problems, rows)


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
    return _read_coco_captions(
        path,
        images_dir,
        split=split,
        check_images=check_images,
        allow_outside_root=allow_outside_root,
    ).raise_if_problems()


# --------------------------------------------------------------------------- caption CSV


def _read_caption_csv(
    path: PathLike,
    images_dir: PathLike | None = None,
    *,
    check_images: bool = True,
    default_split: str = "train",
    allow_outside_root: bool = False,
) -> ReadResult:
    path = _existing_path(path, _CAPTION_FORMATS_HELP)
    default_split = _check_split_argument(default_split)
    problems = ProblemCollector()
    table = _read_csv(path, ("image_path", "caption"), problems)
    base = os.path.abspath(images_dir if images_dir is not None else path.parent)
    index = _FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows = []
    split_of: dict[str, tuple[str, int]] = {}
    for line, record in table.rows if table else []:
        ok = True
        relative, caption = record["image_path"].strip(), record["caption"].strip()
        if not relative:
            problems.add(path, line, "image_path", "a file path", repr(record["image_path"]))
            ok = False
        bad_text = _text_problem(record["caption"])
        if bad_text:
            problems.add(path, line, "caption", *bad_text)
            ok = False
        split = default_split
        if "split" in record:
            split = SPLIT_ALIASES.get(record["split"].strip().lower())
            if split is None:
                problems.add(path, line, "split", _SPLIT_NAMES_TEXT, repr(record["split"]))
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
    return _result("captions", "csv", path, problems, rows)


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
    return _read_caption_csv(
        path,
        images_dir,
        check_images=check_images,
        default_split=default_split,
        allow_outside_root=allow_outside_root,
    ).raise_if_problems()


# --------------------------------------------------------------------------- Hateful Memes


def _hateful_memes_files(path: pathlib.Path) -> list[pathlib.Path]:
    order = {split: i for i, split in enumerate(SPLITS)}
    files = [p for p in path.glob("*.jsonl") if p.is_file() and _split_from_prefix(p.name)]
    return sorted(files, key=lambda p: (order[_split_from_prefix(p.name)], p.name))


def _read_hateful_memes(
    path: PathLike,
    *,
    split: str | None = None,
    check_images: bool = True,
    allow_outside_root: bool = False,
) -> ReadResult:
    path = _existing_path(path, _PAIR_FORMATS_HELP)
    split = _check_split_argument(split)
    problems = ProblemCollector()
    if path.is_dir():
        files = [(p, _split_from_prefix(p.name)) for p in _hateful_memes_files(path)]
        if not files:
            problems.add(path, None, None, "train*.jsonl, dev*.jsonl or test*.jsonl files", "none")
    else:
        file_split = split or _split_from_prefix(path.name)
        if file_split is None:
            raise ValueError(
                f"Cannot tell the split of {os.fspath(path)!r} from its name (expected train*, "
                "dev*, val* or test*.jsonl); pass split='train', 'val' or 'test'. "
                "Received: split=None"
            )
        files = [(path, file_split)]

    index = _FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows: list[dict[str, object]] = []
    seen: dict[str, tuple[pathlib.Path, int, tuple]] = {}  # id -> (file, line, row values)
    deduplicated = 0
    for file, file_split in files:
        text, bad_lines = _read_text(file, problems)
        base = os.path.abspath(file.parent)
        for number, line in enumerate(_split_lines(text or ""), start=1):
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
            if not _is_nonempty_text(img):
                problems.add(file, number, "img", "an image path", repr(img))
                ok = False
            bad_text = _text_problem(text_value)
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
    return _result("pairs", "hateful_memes", source, problems, rows, notes)


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
    return _read_hateful_memes(
        path, split=split, check_images=check_images, allow_outside_root=allow_outside_root
    ).raise_if_problems()


# --------------------------------------------------------------------------- pair CSV

_INTEGER = re.compile(r"\+?[0-9]+")


def _read_pair_csv(
    path: PathLike,
    *,
    check_images: bool = True,
    default_split: str = "train",
    allow_outside_root: bool = False,
) -> ReadResult:
    path = _existing_path(path, _PAIR_FORMATS_HELP)
    default_split = _check_split_argument(default_split)
    problems = ProblemCollector()
    table = _read_csv(path, ("image_path", "text", "label"), problems)
    header = table.header if table else []
    extra_columns = [name for name in header if name not in ("id", *PAIR_COLUMNS)]
    base = os.path.abspath(path.parent)
    index = _FileIndex(check_files=check_images, allow_outside_root=allow_outside_root)
    rows: list[dict[str, object]] = []
    first_line_of: dict[str, int] = {}
    for line, record in table.rows if table else []:
        ok = True
        row: dict[str, object] = {name: record[name] for name in extra_columns}
        split = default_split
        if "split" in record:
            split = SPLIT_ALIASES.get(record["split"].strip().lower())
            if split is None:
                problems.add(path, line, "split", _SPLIT_NAMES_TEXT, repr(record["split"]))
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
        bad_text = _text_problem(record["text"])
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
    return _result("pairs", "csv", path, problems, rows, extra_columns=extra_columns)


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
    return _read_pair_csv(
        path,
        check_images=check_images,
        default_split=default_split,
        allow_outside_root=allow_outside_root,
    ).raise_if_problems()


# --------------------------------------------------------------------------- detection


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
        if _hateful_memes_files(path):
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
        ("captions", "flickr8k"): _read_flickr8k,
        ("captions", "karpathy"): _read_karpathy_json,
        ("captions", "coco"): _read_coco_captions,
        ("captions", "csv"): _read_caption_csv,
        ("pairs", "hateful_memes"): _read_hateful_memes,
        ("pairs", "csv"): _read_pair_csv,
    }
    return readers[(kind, fmt)]


def _choose_format(path: PathLike, kind: str, fmt: str) -> str:
    formats, help_text = (
        (CAPTION_FORMATS, _CAPTION_FORMATS_HELP)
        if kind == "captions"
        else (PAIR_FORMATS, _PAIR_FORMATS_HELP)
    )
    if fmt != "auto":
        if fmt not in formats:
            raise ValueError(
                f"Unknown {kind} format. Supported formats: 'auto', "
                f"{', '.join(repr(f) for f in formats)}. Received: format={fmt!r}"
            )
        _existing_path(path, help_text)
        return fmt
    path = _existing_path(path, help_text)
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
        result = _read_coco_captions(path, images_dir, split=split, **options)
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
