"""PNG pictures for a run directory: attention heat-maps per word and training curves.

Figures are drawn with matplotlib's object API on the Agg canvas (no screen, no pyplot
global state, safe in threads and on servers) and written atomically (`atomic_write`), so
a reader never sees half a PNG.

Example:

>>> import tempfile, numpy as np
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = plot_attention_map(np.zeros((32, 32, 3), "uint8"), ["a", "red", "circle"],
...                               np.full((3, 16), 1 / 16), f"{tmp}/attention.png")
...     curves = plot_training_curves({"loss": [2.0, 1.0], "val_cider": [float("nan"), 1.2]},
...                                   f"{tmp}/curves.png")
...     path.name, curves.stat().st_size > 0
('attention.png', True)
"""

import csv
import math
import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from xmodal_keras.atomic_files import atomic_write

MAX_COLUMNS = 5  # attention panels per row
PANEL_INCHES = 2.2
DPI = 100

# Training-curve panels: (title, y label, keys in drawing order). A panel is drawn when
# at least one of its keys has a finite value.
CURVE_PANELS = (
    ("Loss", "loss", ("loss", "val_loss")),
    (
        "Masked token accuracy",
        "accuracy",
        ("masked_token_accuracy", "val_masked_token_accuracy"),
    ),
    ("Validation CIDEr-D", "CIDEr-D", ("val_cider",)),
    (
        "Validation {names}",
        "score",
        ("val_bleu_4", "val_meteor", "val_rouge_l", "val_scene_faithfulness"),
    ),
)
_DISPLAY_NAMES = {
    "val_bleu_4": "BLEU-4",
    "val_meteor": "METEOR",
    "val_rouge_l": "ROUGE-L",
    "val_scene_faithfulness": "scene faithfulness",
}


def _write_figure(figure: Figure, out_path: str | os.PathLike) -> pathlib.Path:
    """Saves `figure` as a PNG at `out_path` atomically (`atomic_write`)."""
    path = pathlib.Path(out_path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"`out_path` must end with .png. Received: out_path={str(out_path)!r}")
    FigureCanvasAgg(figure)
    return atomic_write(
        path, lambda staging: figure.savefig(staging, format="png", dpi=DPI), suffix=".png"
    )


# ----------------------------------------------------------------------------- attention


def _square_grid(num_regions: int) -> tuple[int, int]:
    side = math.isqrt(num_regions)
    if side * side != num_regions:
        raise ValueError(
            "The attention has a number of regions that is not a square; pass "
            f"`grid_shape=(rows, columns)`. Received: num_regions={num_regions}"
        )
    return side, side


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float [rows, columns] map to [height, width]."""
    image = Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def plot_attention_map(
    image: np.ndarray,
    words: Sequence[str],
    attention: np.ndarray,
    out_path: str | os.PathLike,
    grid_shape: tuple[int, int] | None = None,
) -> pathlib.Path:
    """Draws the image, then one panel per generated word with its attention over the image.

    Row `t` of `attention` (the weights over the encoder's region grid while the model
    produced `words[t]`) is reshaped to the grid (row-major, as the encoder flattens it),
    resized bilinearly to the image and overlaid as a heat-map; the panel's title is the
    word. Each map is scaled to its own maximum, so a flat map shows as uniform colour.

    Args:
        image: uint8 RGB `[H, W, 3]`.
        words: the generated words (at least one), e.g. `text.split()` (+ "<end>").
        attention: float `[len(words), N]` (e.g. `generate(..., return_attention=True)
            ["attention"][i, :len(words)]`).
        out_path: the `.png` file to write (parent directories are created).
        grid_shape: `(rows, columns)` of the region grid. Defaults to a square grid inferred
            from `N` (a ValueError when `N` is not a square).

    Returns:
        The path written.

    Example:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = plot_attention_map(np.zeros((32, 64, 3), "uint8"), ["a", "star"],
    ...                               np.ones((2, 8)) / 8, f"{tmp}/a.png", grid_shape=(2, 4))
    ...     path.read_bytes()[1:4]
    b'PNG'
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            "`image` must be a uint8 RGB array [H, W, 3]. "
            f"Received: image.shape={image.shape}, image.dtype={image.dtype}"
        )
    if isinstance(words, str) or not all(isinstance(word, str) for word in words):
        raise ValueError(f"`words` must be a list of strings. Received: words={words!r}")
    words = list(words)
    if not words:
        raise ValueError("`words` must hold at least one word. Received: words=[]")
    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 2 or attention.shape[0] != len(words):
        raise ValueError(
            "`attention` must be [len(words), num_regions]. "
            f"Received: attention.shape={attention.shape}, len(words)={len(words)}"
        )
    num_regions = attention.shape[1]
    if grid_shape is None:
        rows, columns = _square_grid(num_regions)
    else:
        ok = (
            isinstance(grid_shape, Sequence)
            and len(grid_shape) == 2
            and all(isinstance(n, int) and n > 0 for n in grid_shape)
        )
        if not ok or grid_shape[0] * grid_shape[1] != num_regions:
            raise ValueError(
                "`grid_shape` must be (rows, columns) of positive ints with rows * columns "
                f"= num_regions. Received: grid_shape={grid_shape!r}, "
                f"num_regions={num_regions}"
            )
        rows, columns = grid_shape
    if not np.all(np.isfinite(attention)):
        raise ValueError("`attention` must be finite. Received: NaN or inf values")

    height, width = image.shape[:2]
    panels = len(words) + 1
    grid_columns = min(MAX_COLUMNS, panels)
    grid_rows = math.ceil(panels / grid_columns)
    aspect = height / width
    figure = Figure(
        figsize=(PANEL_INCHES * grid_columns, (PANEL_INCHES * aspect + 0.35) * grid_rows),
        layout="constrained",
    )
    axes = figure.subplots(grid_rows, grid_columns, squeeze=False).ravel()
    for axis in axes:
        axis.set_axis_off()
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=11, style="italic")
    for axis, word, weights in zip(axes[1:], words, attention, strict=False):
        heat = _upsample(weights.reshape(rows, columns), height, width)
        peak = float(heat.max())
        axis.imshow(image)
        axis.imshow(
            heat,
            cmap="jet",
            alpha=0.5,
            vmin=0.0,
            vmax=peak if peak > 0 else 1.0,
            extent=(-0.5, width - 0.5, height - 0.5, -0.5),
        )
        axis.set_title(word, fontsize=12)
    return _write_figure(figure, out_path)


# ----------------------------------------------------------------------------- curves


def _float_or_nan(value: object) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan  # CSVLogger writes "NA" for keys missing in an epoch; "" likewise
    return number


def read_history_csv(path: str | os.PathLike) -> dict[str, list[float]]:
    """Reads a Keras `CSVLogger` file into `{column: [value per epoch]}`.

    Values that are not numbers ("NA", "", "nan") become NaN.

    Example:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     text = "epoch,loss,val_cider\\n0,2.5,NA\\n1,1.5,0.7\\n"
    ...     _ = pathlib.Path(tmp, "log.csv").write_text(text)
    ...     read_history_csv(f"{tmp}/log.csv")
    {'epoch': [0.0, 1.0], 'loss': [2.5, 1.5], 'val_cider': [nan, 0.7]}
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"No training-log CSV file there. Received: path={str(path)!r}")
    with open(path, encoding="utf-8", newline="") as file:
        sample = file.read(4096)
        file.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(file, dialect=dialect)
        if not reader.fieldnames:
            raise ValueError(
                f"The training-log CSV file has no header row. Received: path={str(path)!r}"
            )
        history: dict[str, list[float]] = {name: [] for name in reader.fieldnames}
        for row in reader:
            for name in reader.fieldnames:
                history[name].append(_float_or_nan(row.get(name)))
    return history


def _history_dict(history) -> dict[str, list[float]]:
    if isinstance(history, str | os.PathLike):
        return read_history_csv(history)
    if hasattr(history, "history") and isinstance(history.history, Mapping):
        history = history.history  # a keras.callbacks.History
    if not isinstance(history, Mapping):
        raise ValueError(
            "`history` must be a dict name -> list of per-epoch values, a Keras History or "
            f"the path of a CSVLogger file. Received: history of type {type(history).__name__}"
        )
    out = {}
    for key, values in history.items():
        if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
            raise ValueError(
                f"history[{key!r}] must be a list of per-epoch values. Received: {values!r}"
            )
        out[str(key)] = [_float_or_nan(value) for value in values]
    return out


def plot_training_curves(
    history: Mapping[str, Sequence[float]] | str | os.PathLike,
    out_path: str | os.PathLike,
) -> pathlib.Path:
    """Draws training curves: loss, masked token accuracy and validation caption metrics.

    Panels (each drawn only when it has data): loss / val_loss; masked_token_accuracy /
    val_masked_token_accuracy; val_cider; val_bleu_4 (+ val_meteor, val_rouge_l,
    val_scene_faithfulness when present). Metrics computed only on some epochs (NaN or
    "NA" elsewhere, as `CaptionMetricsCallback` logs them) are drawn at the epochs they
    were computed. Epochs count from 1 (the CSV's 0-based "epoch" column + 1).

    Args:
        history: `{name: [value per epoch]}` (`model.fit(...).history`), a Keras
            `History`, or the path of a `keras.callbacks.CSVLogger` file.
        out_path: the `.png` file to write (parent directories are created).

    Returns:
        The path written.

    Example:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = plot_training_curves({"loss": [3.0, 2.0, 1.5]}, f"{tmp}/curves.png")
    ...     path.read_bytes()[1:4]
    b'PNG'
    """
    values = _history_dict(history)
    epochs = values.pop("epoch", None)
    panels = []
    for title, label, keys in CURVE_PANELS:
        series = []
        for key in keys:
            points = values.get(key)
            if not points:
                continue
            if epochs is not None and len(epochs) == len(points):
                x = [e + 1 for e in epochs]
            else:
                x = list(range(1, len(points) + 1))
            kept = [(e, v) for e, v in zip(x, points, strict=True) if math.isfinite(v)]
            if kept:
                series.append((key, kept))
        if series:
            names = " / ".join(_DISPLAY_NAMES.get(key, key) for key, _ in series)
            panels.append((title.format(names=names), label, series))
    if not panels:
        known = sorted({key for _, _, keys in CURVE_PANELS for key in keys})
        raise ValueError(
            f"`history` has no finite values for any of {known}. Received: keys={sorted(values)}"
        )
    figure = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False).ravel()
    for axis, (title, label, series) in zip(axes, panels, strict=True):
        for key, kept in series:
            x, y = zip(*kept, strict=True)
            style = "--" if key.startswith("val_") and len(series) > 1 else "-"
            axis.plot(x, y, style, marker="o", markersize=4, label=key)
        axis.set_title(title, fontsize=11)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend(fontsize=8)
    return _write_figure(figure, out_path)
