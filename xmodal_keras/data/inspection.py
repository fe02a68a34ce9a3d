"""Dataset inspection: what a folder or file holds, per split, and what is wrong with it.

`inspect_dataset` never raises on bad data: it reads with `readers.read_with_problems`,
computes statistics on the valid rows and lists the problems. `format_report` renders the
plain-text table printed by `xmodal data inspect PATH`.

Example:

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "dog.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n")
>>> _ = (root / "c.csv").write_text("image_path,caption\\ndog.png,A dog.\\nnope.png,\\n")
>>> report = inspect_dataset(root / "c.csv")
>>> report.views[0].captions.captions_per_split, report.views[0].problem_count
({'train': 1}, 2)
"""

import dataclasses
import os

import numpy as np
import pandas as pd

from xmodal_keras.data import readers
from xmodal_keras.data.image_files import find_unusable_images
from xmodal_keras.data.text_tokenizer import normalize_caption
from xmodal_keras.data.validation import MAX_LISTED_PROBLEMS, Problem

PERCENTILES = (5, 50, 95)


@dataclasses.dataclass
class CaptionStats:
    """Counts for caption data; lengths are in words of `normalize_caption(text).split()`."""

    images_per_split: dict[str, int]
    captions_per_split: dict[str, int]
    vocabulary_size: int | None  # distinct train-split words; None without a train split
    caption_length: dict[str, int]  # "p5", "p50", "p95", "max"
    captions_per_image: dict[str, float]  # "min", "mean", "max"


@dataclasses.dataclass
class PairStats:
    """Counts for image-text pair data; label -1 means unlabelled."""

    pairs_per_split: dict[str, int]
    labels_per_split: dict[str, dict[int, int]]
    text_length: dict[str, int]  # "p5", "p50", "p95", "max"
    extra_columns: list[str]


@dataclasses.dataclass
class ViewReport:
    """One view of the data (captions or pairs) in one format."""

    kind: str  # "captions" or "pairs"
    format: str
    source: str
    captions: CaptionStats | None = None
    pairs: PairStats | None = None
    problem_count: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)  # the first 20, as text
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DatasetReport:
    """Everything `inspect_dataset` found at `path`."""

    path: str
    views: list[ViewReport]

    @property
    def formats(self) -> list[str]:
        return [view.format for view in self.views]

    @property
    def problem_count(self) -> int:
        return sum(view.problem_count for view in self.views)


def _ordered_splits(values: pd.Series) -> list[str]:
    present = set(values)
    return [s for s in readers.SPLITS if s in present] + sorted(present - set(readers.SPLITS))


def _length_summary(texts: pd.Series) -> dict[str, int]:
    lengths = np.array([len(normalize_caption(text).split()) for text in texts], dtype=np.int64)
    if lengths.size == 0:
        return {}
    values = np.percentile(lengths, PERCENTILES, method="nearest")
    summary = {f"p{p}": int(v) for p, v in zip(PERCENTILES, values, strict=True)}
    summary["max"] = int(lengths.max())
    return summary


def _caption_stats(frame: pd.DataFrame) -> CaptionStats:
    splits = _ordered_splits(frame["split"])
    by_split = frame.groupby("split", sort=False)
    train = frame.loc[frame["split"] == "train", "caption"]
    vocabulary = None
    if len(train):
        vocabulary = len({word for text in train for word in normalize_caption(text).split()})
    per_image = frame.groupby("image_path", sort=False).size()
    return CaptionStats(
        images_per_split={s: int(by_split.get_group(s)["image_path"].nunique()) for s in splits},
        captions_per_split={s: int(len(by_split.get_group(s))) for s in splits},
        vocabulary_size=vocabulary,
        caption_length=_length_summary(frame["caption"]),
        captions_per_image=(
            {
                "min": int(per_image.min()),
                "mean": float(per_image.mean()),
                "max": int(per_image.max()),
            }
            if len(per_image)
            else {}
        ),
    )


def _pair_stats(frame: pd.DataFrame) -> PairStats:
    splits = _ordered_splits(frame["split"])
    labels = {}
    for split in splits:
        counts = frame.loc[frame["split"] == split, "label"].value_counts()
        labels[split] = {int(label): int(counts[label]) for label in sorted(counts.index)}
    return PairStats(
        pairs_per_split={s: int((frame["split"] == s).sum()) for s in splits},
        labels_per_split=labels,
        text_length=_length_summary(frame["text"]),
        extra_columns=[c for c in frame.columns if c not in readers.PAIR_COLUMNS],
    )


def _undecodable_images(image_paths: pd.Series) -> list[Problem]:
    """A `Problem` for each image that does not decode in full (missing ones included)."""
    return [
        Problem(path, None, None, "a JPEG, PNG, GIF, BMP or WEBP image", reason)
        for path, reason in find_unusable_images(image_paths.astype(str), mode="decode")
    ]


def inspect_dataset(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    check_images: bool = True,
    decode_images: bool = False,
    allow_outside_root: bool = False,
) -> DatasetReport:
    """Detect the format(s) at `path`, read them, and summarise counts and problems.

    A folder holding both caption and pair files (the built-in shapes dataset) gets one view
    for each. Problems in the data are reported, never raised. A `.csv` file whose header
    fits neither kind is read as "csv" captions, as with `format="csv"`, so both name the
    columns it lacks.

    Args:
        path: a dataset folder or file.
        format: "auto", or one of `readers.CAPTION_FORMATS` / `readers.PAIR_FORMATS` (for
            "csv", the header decides captions vs pairs). Defaults to "auto".
        check_images: check image files exist. Defaults to `True`.
        decode_images: also decode every image the valid rows name, in full, as training
            does (`find_unusable_images(mode="decode")`: catches truncated, corrupt files).
            Defaults to `False`.
        allow_outside_root: accept image paths that leave the data folder (see
            `readers`). Defaults to `False`.

    Returns:
        A `DatasetReport`.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if `format` is unknown or no supported format is found.
    """
    known = ("auto", *dict.fromkeys((*readers.CAPTION_FORMATS, *readers.PAIR_FORMATS)))
    if format not in known:
        raise ValueError(
            f"Unknown format. Supported formats: {', '.join(repr(f) for f in known)}. "
            f"Received: format={format!r}"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No such file or directory: {os.fspath(path)!r}. Supported formats: "
            f"{', '.join(known[1:])}."
        )
    detected = readers.detect_formats(path)
    is_csv_file = os.path.isfile(path) and os.fspath(path).lower().endswith(".csv")
    if format == "auto" and not detected and is_csv_file:
        format = "csv"
    if format == "csv":
        views = [(kind, fmt) for kind, fmt in detected if fmt == "csv"] or [("captions", "csv")]
    elif format != "auto":
        kind = "captions" if format in readers.CAPTION_FORMATS else "pairs"
        views = [(kind, format)]
    else:
        views = detected
    if not views:
        raise ValueError(
            f"Could not recognise a dataset at {os.fspath(path)!r}. Supported formats: "
            f"{', '.join(known[1:])}. Received: path={os.fspath(path)!r}"
        )
    report = DatasetReport(path=os.fspath(path), views=[])
    for kind, fmt in views:
        result = readers.read_with_problems(
            path,
            kind=kind,
            format=fmt,
            check_images=check_images,
            allow_outside_root=allow_outside_root,
        )
        problems = list(result.problems)
        if decode_images and len(result.frame):
            problems += _undecodable_images(result.frame["image_path"])
        view = ViewReport(
            kind=kind,
            format=fmt,
            source=result.source,
            problem_count=len(problems),
            problems=[str(problem) for problem in problems[:MAX_LISTED_PROBLEMS]],
            notes=list(result.notes),
        )
        if kind == "captions":
            view.captions = _caption_stats(result.frame)
        else:
            view.pairs = _pair_stats(result.frame)
        report.views.append(view)
    return report


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _summary(values: dict[str, float]) -> str:
    if not values:
        return "n/a"
    return " ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def _caption_lines(stats: CaptionStats) -> list[str]:
    rows = [
        [split, str(stats.images_per_split[split]), str(stats.captions_per_split[split])]
        for split in stats.captions_per_split
    ]
    rows.append(
        [
            "total",
            str(sum(stats.images_per_split.values())),
            str(sum(stats.captions_per_split.values())),
        ]
    )
    vocabulary = "n/a (no train split)" if stats.vocabulary_size is None else stats.vocabulary_size
    return [
        *_table(["split", "images", "captions"], rows),
        f"  vocabulary (train, words): {vocabulary}",
        f"  caption length (words): {_summary(stats.caption_length)}",
        f"  captions per image: {_summary(stats.captions_per_image)}",
    ]


def _label_name(label: int) -> str:
    return "unlabelled" if label == -1 else f"label {label}"


def _pair_lines(stats: PairStats) -> list[str]:
    labels = sorted({label for counts in stats.labels_per_split.values() for label in counts})
    labels = [label for label in labels if label != -1] + [-1] * (-1 in labels)
    rows = []
    for split, total in stats.pairs_per_split.items():
        counts = stats.labels_per_split[split]
        rows.append(
            [split, str(total)]
            + [
                f"{counts.get(label, 0)} ({100 * counts.get(label, 0) / total:.0f}%)"
                for label in labels
            ]
        )
    totals = [
        sum(counts.get(label, 0) for counts in stats.labels_per_split.values()) for label in labels
    ]
    rows.append(["total", str(sum(stats.pairs_per_split.values())), *map(str, totals)])
    return [
        *_table(["split", "pairs", *map(_label_name, labels)], rows),
        f"  text length (words): {_summary(stats.text_length)}",
        f"  extra columns: {', '.join(stats.extra_columns) or 'none'}",
    ]


def format_report(report: DatasetReport) -> str:
    """Render a `DatasetReport` as plain text (one section per view).

    Example:

    >>> print(format_report(DatasetReport(path="empty", views=[])))
    Dataset: empty
    Formats: none
    """
    lines = [f"Dataset: {report.path}"]
    formats = [f"{view.format} ({view.kind})" for view in report.views]
    lines.append(f"Formats: {', '.join(formats) or 'none'}")
    for view in report.views:
        lines += ["", f"== {view.kind} ({view.format}): {view.source} =="]
        if view.captions is not None:
            lines += _caption_lines(view.captions)
        if view.pairs is not None:
            lines += _pair_lines(view.pairs)
        lines += [f"  note: {note}" for note in view.notes]
        lines.append(f"  problems found: {view.problem_count}")
        lines += [f"    {problem}" for problem in view.problems]
        if view.problem_count > len(view.problems):
            lines.append(f"    ... and {view.problem_count - len(view.problems)} more")
    return "\n".join(lines)
