"""Classification metrics: accuracy, macro F1, AUROC, confusion matrix (+ PNG).

Exact NumPy implementations (no scikit-learn): AUROC is the Mann-Whitney rank statistic,
the probability that a random positive scores above a random negative, ties counting
one half; multi-class AUROC is the unweighted mean of the one-vs-rest AUROCs of the
classes that have both positives and negatives.

Example:

>>> metrics = classification_metrics([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.6])
>>> metrics["accuracy"], metrics["auroc"], metrics["confusion_matrix"]
(0.5, 0.75, [[1, 1], [1, 1]])
"""

import os
import pathlib
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from xmodal_keras.evaluation.plots import _write_figure


def _labels_array(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    integer = np.issubdtype(labels.dtype, np.integer) or labels.size == 0
    if labels.ndim != 1 or not integer:
        raise ValueError(
            "`labels` must be a 1-D array of integer class ids. "
            f"Received: shape={labels.shape}, dtype={labels.dtype}"
        )
    return labels.astype(np.int64)


def binary_auroc(labels, scores) -> float:
    """AUROC of `scores` for 0/1 `labels` (ties count 1/2); NaN without both classes.

    Example:

    >>> binary_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    labels = _labels_array(labels)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(
            "`labels` and `scores` must have the same length. "
            f"Received: {labels.shape[0]} labels, {scores.shape[0]} scores"
        )
    positives = int(np.sum(labels == 1))
    negatives = int(np.sum(labels == 0))
    if positives + negatives != labels.size:
        raise ValueError(f"`labels` must be 0 or 1. Received: {sorted(set(labels.tolist()))}")
    if positives == 0 or negatives == 0:
        return float("nan")
    # Average ranks (1-based) with ties sharing the mean of their ranks.
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def _probabilities_matrix(probabilities, num_classes: int | None) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1 or (probabilities.ndim == 2 and probabilities.shape[1] == 1):
        positive = probabilities.reshape(-1)
        probabilities = np.stack([1.0 - positive, positive], axis=1)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(
            "`probabilities` must be [N] or [N, 1] (binary, P(class 1)) or [N, C] (C >= 2). "
            f"Received: shape={probabilities.shape}"
        )
    if num_classes is not None and probabilities.shape[1] != num_classes:
        raise ValueError(
            f"`probabilities` has {probabilities.shape[1]} classes. "
            f"Received: num_classes={num_classes}"
        )
    return probabilities


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """`[num_classes, num_classes]` counts: row = true class, column = predicted class.

    Example:

    >>> confusion_matrix([0, 1, 1], [0, 0, 1], num_classes=2).tolist()
    [[1, 0], [1, 1]]
    """
    labels = _labels_array(labels)
    predictions = _labels_array(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"`labels` and `predictions` differ in length. Received: {labels.size} and "
            f"{predictions.size}"
        )
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"`{name}` must be in [0, {num_classes}). "
                f"Received: min={values.min()}, max={values.max()}"
            )
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def macro_f1(matrix: np.ndarray) -> float:
    """Unweighted mean over classes of F1 from a confusion matrix (0 for a class with
    no true and no predicted examples' overlap, i.e. precision + recall = 0)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positives = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    denominator = predicted + actual
    f1 = np.divide(
        2 * true_positives, denominator, out=np.zeros_like(true_positives), where=denominator > 0
    )
    return float(f1.mean())


def classification_metrics(
    labels: Sequence[int] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray,
    *,
    num_classes: int | None = None,
    threshold: float = 0.5,
) -> dict:
    """Accuracy, macro F1, AUROC and the confusion matrix of one split.

    Args:
        labels: `[N]` int class ids.
        probabilities: `[N]` or `[N, 1]` P(class 1) for a binary head, or `[N, C]`
            class probabilities (softmax).
        num_classes: C; checked against `probabilities`. Defaults to `None` (inferred).
        threshold: binary decision threshold on P(class 1). Defaults to 0.5.

    Returns:
        `{"accuracy", "macro_f1", "auroc", "auroc_per_class" (multi-class only),
        "confusion_matrix" (nested lists), "num_examples", "num_classes"}`; AUROC is
        NaN (written as `null` by `json.dumps(..., allow_nan=False)` callers) when a
        class is missing.
    """
    labels = _labels_array(labels)
    matrix_probabilities = _probabilities_matrix(probabilities, num_classes)
    if matrix_probabilities.shape[0] != labels.size:
        raise ValueError(
            "`labels` and `probabilities` must have the same length. "
            f"Received: {labels.size} labels, {matrix_probabilities.shape[0]} rows"
        )
    classes = matrix_probabilities.shape[1]
    if classes == 2:
        predictions = (matrix_probabilities[:, 1] >= threshold).astype(np.int64)
    else:
        predictions = np.argmax(matrix_probabilities, axis=1)
    matrix = confusion_matrix(labels, predictions, classes)
    metrics: dict = {
        "accuracy": float(np.mean(predictions == labels)) if labels.size else float("nan"),
        "macro_f1": macro_f1(matrix),
        "num_examples": int(labels.size),
        "num_classes": int(classes),
    }
    if classes == 2:
        metrics["auroc"] = binary_auroc(labels, matrix_probabilities[:, 1])
    else:
        per_class = [
            binary_auroc((labels == c).astype(np.int64), matrix_probabilities[:, c])
            for c in range(classes)
        ]
        finite = [a for a in per_class if np.isfinite(a)]
        metrics["auroc"] = float(np.mean(finite)) if finite else float("nan")
        metrics["auroc_per_class"] = per_class
    metrics["confusion_matrix"] = matrix.tolist()
    return metrics


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    out_path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    title: str = "Confusion matrix",
) -> pathlib.Path:
    """Draw a confusion matrix (rows true, columns predicted; counts written in the
    cells, colour = row share) and write it as a PNG, atomically.

    Example:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = plot_confusion_matrix([[5, 1], [2, 4]], f"{tmp}/cm.png")
    ...     path.read_bytes()[1:4]
    b'PNG'
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"`matrix` must be square, at least 2x2. Received: shape={matrix.shape}")
    classes = matrix.shape[0]
    names = [str(c) for c in range(classes)] if class_names is None else list(class_names)
    if len(names) != classes:
        raise ValueError(
            f"`class_names` must have {classes} names. Received: class_names={class_names!r}"
        )
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = 1.2 + 0.6 * classes
    figure = Figure(figsize=(size + 1.0, size), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, label="share of the true class")
    for row in range(classes):
        for column in range(classes):
            axis.text(
                column,
                row,
                str(matrix[row, column]),
                ha="center",
                va="center",
                color="white" if shares[row, column] > 0.5 else "black",
                fontsize=10,
            )
    axis.set_xticks(range(classes), names)
    axis.set_yticks(range(classes), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=11)
    return _write_figure(figure, out_path)
