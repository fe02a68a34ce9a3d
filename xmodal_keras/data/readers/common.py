"""What every reader shares: split names, text / JSON / CSV reading, the file index, frames.

Every reader returns a `ReadResult` (valid rows + every problem); `make_result` builds its
caption or pair DataFrame with the columns `CAPTION_COLUMNS` / `PAIR_COLUMNS`.
"""

import codecs
import csv
import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Iterable

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
SPLIT_NAMES_TEXT = "one of train, val, test (or dev, validation, restval)"
# Captions / texts refused as missing values (compared lowercased).
MISSING_VALUE_MARKERS = frozenset({"nan", "none", "null", "n/a", "<na>"})
OUTSIDE_ROOT_HINT = "--allow-outside-root or allow_outside_root=True reads files elsewhere"
ALLOW_OUTSIDE_ROOT_HELP = (
    "read image (and audio) paths that leave the data folder (../x.png, absolute paths "
    "elsewhere); refused by default"
)
# The supported formats, as named in "no such file" and "could not recognise" errors.
CAPTION_FORMATS_HELP = (
    "flickr8k (a folder with Flickr8k.token.txt and Flickr_8k.{train,dev,test}Images.txt, "
    "or that file itself), karpathy (dataset_*.json with images[].sentences), "
    "coco (captions_*.json with images and annotations), "
    "csv (columns image_path, caption[, split])"
)
PAIR_FORMATS_HELP = (
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


def existing_path(path: PathLike, formats_help: str) -> pathlib.Path:
    """`path` as a `Path`; FileNotFoundError naming the supported formats if it is missing."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No such file or directory: {os.fspath(path)!r}. Supported formats: {formats_help}."
        )
    return path


def read_text(path: pathlib.Path, problems: ProblemCollector) -> tuple[str | None, set[int]]:
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


def split_lines(text: str) -> list[str]:
    """`text`'s lines (LF-separated), without the empty string after a final newline."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def load_json(path: pathlib.Path, problems: ProblemCollector) -> object:
    """The parsed JSON document, or None (the problem reported) when unreadable or invalid."""
    text, bad_lines = read_text(path, problems)
    if text is None or bad_lines:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problems.add(path, error.lineno, None, "valid JSON", f"{error.msg} at column {error.colno}")
        return None


@dataclasses.dataclass
class CSVTable:
    """A parsed CSV file: its header and rows, and which rows repeat an earlier one."""

    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (1-based first physical line, values by column)
    copy_of: dict[int, int]  # line of a row repeated verbatim -> line of its first copy

    def copy_problem(self, line: int) -> tuple[str, str] | None:
        """`(expected, got)` when the row at `line` repeats an earlier one, else None."""
        if line in self.copy_of:
            return "each row once", f"a copy of line {self.copy_of[line]}"
        return None


def read_csv(
    path: pathlib.Path, required: tuple[str, ...], problems: ProblemCollector
) -> CSVTable | None:
    """Parse a comma-separated file with a header, keeping every value as text.

    The stdlib `csv` module is used (not `pandas.read_csv`) because it reports the physical
    line of every record, so each bad row -- wrong field count included -- is named exactly.
    """
    text, bad_lines = read_text(path, problems)
    if text is None:
        return None
    reader = csv.reader((line + "\n" for line in split_lines(text)), strict=True)
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
    return CSVTable(header, rows, copy_of) if ok else None


def is_inside(path: str, root: str) -> bool:
    """Whether the normalised absolute `path` lies in the folder `root` (symlinks not followed:
    a link inside the folder may point elsewhere, the usual way to keep images on another disk).
    """
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class FileIndex:
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
        if not self.allow_outside_root and not is_inside(path, root):
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


def split_from_prefix(name: str) -> str | None:
    """Hateful-Memes style: train.jsonl, dev_seen.jsonl, test_unseen.jsonl -> train/val/test."""
    match = re.match(r"(train|restval|validation|val|dev|test)", name.lower())
    return SPLIT_ALIASES[match.group(1)] if match else None


def split_from_name(name: str) -> str | None:
    """COCO style: captions_train2017.json -> train, captions_val2014.json -> val."""
    match = re.search(r"(?<![a-z])(train|restval|validation|val|dev|test)", name.lower())
    return SPLIT_ALIASES[match.group(1)] if match else None


def check_split_argument(split: str | None) -> str | None:
    """A `split=` argument as "train" / "val" / "test" (None stays None); ValueError if unknown."""
    if split is None:
        return None
    if not isinstance(split, str) or split.lower() not in SPLIT_ALIASES:
        raise ValueError(f"`split` must be {SPLIT_NAMES_TEXT}. Received: split={split!r}")
    return SPLIT_ALIASES[split.lower()]


def is_nonempty_text(value: object) -> bool:
    """Whether `value` is a string with something other than whitespace."""
    return isinstance(value, str) and bool(value.strip())


def text_problem(value: object) -> tuple[str, str] | None:
    """`(expected, got)` when a caption or text is empty, blank, a missing-value marker
    (`NaN`, `None`, `null`, `N/A`, `<NA>`: what a DataFrame with gaps writes) or has no
    letter or digit (punctuation, zero-width spaces); else None."""
    if not is_nonempty_text(value):
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


def make_result(
    kind: str,
    fmt: str,
    source: PathLike,
    problems: ProblemCollector,
    rows: list,
    notes: list[str] | None = None,
    extra_columns: Iterable[str] = (),
) -> ReadResult:
    """The `ReadResult` of a reader: `rows` as a caption or pair frame, problems ordered.

    Args:
        kind: "captions" (`rows` are `(image_id, image_path, caption, split)` tuples) or
            "pairs" (`rows` are dicts with the `PAIR_COLUMNS` and `extra_columns`).
        fmt: the format name.
        source: the file or folder read.
        problems: every problem found.
        rows: the valid rows.
        notes: remarks such as dropped rows. Defaults to none.
        extra_columns: pair CSV columns to keep (numeric ones become int64 / float64).
    """
    frame = _caption_frame(rows) if kind == "captions" else _pair_frame(rows, extra_columns)
    # List problems file by file (in order of first mention), by line within a file.
    file_order: dict[str, int] = {}
    for problem in problems.problems:
        file_order.setdefault(problem.file, len(file_order))
    ordered = sorted(problems.problems, key=lambda p: (file_order[p.file], p.line or 0))
    return ReadResult(frame, ordered, os.fspath(source), kind, fmt, notes or [])
