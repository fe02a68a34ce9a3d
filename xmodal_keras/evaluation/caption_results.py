"""`write_caption_results`: a metrics.json and a captions.jsonl per scored split, atomically."""

import json
import math
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xmodal_keras.atomic_files import atomic_write_text


def _caption_row(index: int, row: Any) -> dict[str, Any]:
    def bad(expected: str) -> ValueError:
        return ValueError(f"rows[{index}] {expected}. Received: {row!r}")

    if not isinstance(row, Mapping):
        raise bad("must be a dict with 'image_id', 'generated', 'references'")
    for key in ("image_id", "generated", "references"):
        if key not in row:
            raise bad(f"has no {key!r} key")
    out: dict[str, Any] = {"image_id": row["image_id"]}
    if not isinstance(row["image_id"], str | int) or isinstance(row["image_id"], bool):
        raise bad("'image_id' must be a string or an int")
    if row.get("image_path") is not None:
        if not isinstance(row["image_path"], str | os.PathLike):
            raise bad("'image_path' must be a path string")
        out["image_path"] = os.fspath(row["image_path"])
    if not isinstance(row["generated"], str):
        raise bad("'generated' must be a string")
    refs = row["references"]
    if isinstance(refs, str) or not isinstance(refs, Sequence):
        raise bad("'references' must be a list of strings")
    if not all(isinstance(ref, str) for ref in refs):
        raise bad("'references' must hold only strings")
    out["generated"] = row["generated"]
    out["references"] = list(refs)
    return out


def write_caption_results(
    out_dir: str | os.PathLike,
    metrics: Mapping[str, float],
    rows: Iterable[Mapping[str, Any]],
) -> dict[str, pathlib.Path]:
    """Write `metrics.json` and `captions.jsonl` into `out_dir`, each atomically.

    `metrics.json` has sorted keys and indent 2; NaN (e.g. METEOR without Java) is written
    as `null` so the file stays strict JSON. `captions.jsonl` has one object per row, in
    order: `{"image_id", "image_path" (if given), "generated", "references"}`. Each file is
    written atomically (`atomic_write_text`), so a reader never sees half a file.

    Args:
        out_dir: directory (created if missing).
        metrics: metric name -> value, e.g. from `compute_caption_metrics`.
        rows: dicts with `image_id` (str or int), `generated` (str), `references` (list of
            str) and optionally `image_path`.

    Returns:
        `{"metrics": path of metrics.json, "captions": path of captions.jsonl}`.

    Example:

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> paths = write_caption_results(
    ...     out, {"bleu_4": 0.5}, [{"image_id": "1", "generated": "a dog", "references": ["a dog"]}]
    ... )
    >>> print(paths["captions"].read_text(), end="")
    {"image_id": "1", "generated": "a dog", "references": ["a dog"]}
    """
    out = pathlib.Path(out_dir)
    clean_metrics: dict[str, float | None] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or isinstance(value, bool):
            raise ValueError(f"`metrics` must map names to numbers. Received: {name!r}: {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"`metrics` must map names to numbers. Received: {name!r}: {value!r}"
            ) from None
        clean_metrics[name] = None if math.isnan(number) else number
    lines = [
        json.dumps(_caption_row(index, row), ensure_ascii=False, allow_nan=False)
        for index, row in enumerate(rows)
    ]
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, captions_path = out / "metrics.json", out / "captions.jsonl"
    atomic_write_text(
        metrics_path, json.dumps(clean_metrics, sort_keys=True, indent=2, allow_nan=False) + "\n"
    )
    atomic_write_text(captions_path, "".join(line + "\n" for line in lines))
    return {"metrics": metrics_path, "captions": captions_path}
