"""What every SavedModel exporter shares: the version folder (checked name and version,
atomic write with the op check, the warm-up file and `xmodal_export.json`), the default
warm-up inputs, and the checks of a model's image input and of its tokenizer."""

import io
import json
import os
import pathlib
import re
from collections.abc import Sequence

import keras
from PIL import Image, ImageDraw
from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.clip_text_tokenizer import ClipTextTokenizer
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.data.wordpiece_text_tokenizer import TextTokenizer, WordPieceTextTokenizer
from xmodal_keras.export.atomic_directory import write_version
from xmodal_keras.export.graph_ops import non_core_ops, saved_model_ops
from xmodal_keras.export.warmup_requests import write_prediction_logs

EXPORT_INFO_FILE = "xmodal_export.json"
DEFAULT_WARMUP_TEXT = "a red circle"


def drawn_jpeg() -> bytes:
    """A small drawn JPEG (a red disc on grey): the warm-up image when none is given."""
    image = Image.new("RGB", (64, 64), (200, 200, 200))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(200, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def default_model_name(folder: str | os.PathLike) -> str:
    """A folder's name as a TF Serving model name (letters, digits, `_`, `-`).

    Example:

    >>> default_model_name("runs/demo run")
    'demo_run'
    """
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", pathlib.Path(folder).resolve().name).strip("_")
    return name or "captioner"


def serving_model_dir(
    base_dir: str | os.PathLike, name: str, version: int | None = None
) -> pathlib.Path:
    """`base_dir/name`, TF Serving's model folder, after checking `name` (letters, digits,
    `_`, `-`) and `version` (None, or a positive int that does not exist yet), so a bad
    argument is refused before anything is traced.

    Example:

    >>> import tempfile
    >>> serving_model_dir(tempfile.mkdtemp(), "fusion").name
    'fusion'
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(
            f"`name` must use letters, digits, '_' and '-' only. Received: name={name!r}"
        )
    model_dir = pathlib.Path(base_dir) / name
    if version is not None:
        check_positive_int("version", version)
        if (model_dir / str(version)).exists():
            raise FileExistsError(
                f"Refusing to overwrite an existing folder: {model_dir / str(version)}"
            )
    return model_dir


def write_serving_version(
    archive: keras.export.ExportArchive,
    model_dir: str | os.PathLike,
    *,
    version: int | None = None,
    warmup_logs: Sequence[PredictionLog],
    info: dict,
) -> pathlib.Path:
    """Write `archive` to `model_dir/VERSION` atomically, for TF Serving (`write_version`:
    readable modes, the next free number at the end when `version` is None).

    In a staging folder beside it: the SavedModel, a check that its graph has core ops
    only (`RuntimeError` naming the others), the warm-up file of `warmup_logs` and
    `xmodal_export.json` (`info`); then one rename. Returns the version folder.
    """

    def write(staging: pathlib.Path) -> None:
        archive.write_out(str(staging), verbose=False)
        unsupported = non_core_ops(saved_model_ops(staging))
        if unsupported:
            raise RuntimeError(
                f"The serving graph uses ops stock TF Serving may not have: {unsupported}"
            )
        write_prediction_logs(staging, warmup_logs)
        (staging / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")

    return write_version(model_dir, write, version=version)


def image_size(model: keras.Model, key: str = "images") -> tuple[int, int]:
    """`(height, width)` of a model's uint8 image input `key` (a fixed size is required)."""
    tensor = model.input[key] if isinstance(model.input, dict) else model.input
    height, width = tensor.shape[1:3]
    if height is None or width is None or tensor.shape[-1] != 3:
        raise ValueError(
            f"Exporting needs a fixed-size RGB image input. Received: {key} shape={tensor.shape}"
        )
    return int(height), int(width)


def check_tokenizer(tokenizer: TextTokenizer | None, ids_length: int) -> TextTokenizer:
    """`tokenizer` when it makes token ids of the model's length `ids_length`."""
    if not isinstance(tokenizer, CaptionTokenizer | WordPieceTextTokenizer | ClipTextTokenizer):
        raise ValueError(
            "A model with a text input needs its `CaptionTokenizer`, "
            f"`WordPieceTextTokenizer` or `ClipTextTokenizer`. Received: tokenizer={tokenizer!r}"
        )
    if tokenizer.ids_length != ids_length:
        raise ValueError(
            f"The tokenizer makes {tokenizer.ids_length} ids a text but the model reads "
            f"{ids_length}. Received: tokenizer.sequence_length={tokenizer.sequence_length}"
        )
    return tokenizer
