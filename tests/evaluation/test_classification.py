"""Classification metrics against brute-force / hand-computed references."""

import itertools

import numpy as np
import pytest

from xmodal_keras.evaluation.classification import (
    binary_auroc,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    plot_confusion_matrix,
)


def brute_force_auroc(labels, scores) -> float:
    """Share of (positive, negative) pairs ranked right, ties 1/2."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    negatives = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    total = 0.0
    for p, n in itertools.product(positives, negatives):
        total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(positives) * len(negatives))


@pytest.mark.parametrize("seed", range(5))
def test_binary_auroc_matches_pair_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=60)
    scores = rng.integers(0, 8, size=60) / 8.0  # many ties
    assert binary_auroc(labels, scores) == pytest.approx(brute_force_auroc(labels, scores))


def test_binary_auroc_edge_cases():
    assert binary_auroc([0, 1], [0.2, 0.9]) == 1.0
    assert binary_auroc([0, 1], [0.9, 0.2]) == 0.0
    assert binary_auroc([0, 1, 0, 1], [0.5] * 4) == 0.5
    assert np.isnan(binary_auroc([1, 1, 1], [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"`labels` must be 0 or 1. Received: \[0, 2\]"):
        binary_auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        binary_auroc([0, 1], [0.1])


def test_confusion_matrix_and_macro_f1():
    labels = [0, 0, 1, 1, 2, 2, 2]
    predictions = [0, 1, 1, 1, 2, 0, 1]
    matrix = confusion_matrix(labels, predictions, num_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 1, 1]]
    # per class F1 = 2 TP / (predicted + actual): 2/4, 4/6, 2/4
    assert macro_f1(matrix) == pytest.approx((0.5 + 4 / 6 + 0.5) / 3)
    with pytest.raises(ValueError, match=r"`predictions` must be in \[0, 3\)"):
        confusion_matrix([0], [3], num_classes=3)


def test_binary_metrics():
    labels = np.array([0, 1, 1, 0, 1])
    probabilities = np.array([[0.2], [0.7], [0.4], [0.6], [0.9]])
    metrics = classification_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["macro_f1"] == pytest.approx((2 / 4 + 4 / 6) / 2)
    assert metrics["auroc"] == pytest.approx(brute_force_auroc(labels, probabilities[:, 0]))
    assert metrics["num_examples"] == 5 and metrics["num_classes"] == 2
    assert "auroc_per_class" not in metrics


def test_multiclass_one_vs_rest_auroc():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=40)
    logits = rng.normal(size=(40, 3)) + 1.5 * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = classification_metrics(labels, probabilities, num_classes=3)
    expected = [brute_force_auroc((labels == c).astype(int), probabilities[:, c]) for c in range(3)]
    np.testing.assert_allclose(metrics["auroc_per_class"], expected)
    assert metrics["auroc"] == pytest.approx(np.mean(expected))
    assert metrics["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    with pytest.raises(ValueError, match="`probabilities` has 3 classes. Received: num_classes=4"):
        classification_metrics(labels, probabilities, num_classes=4)


def test_plot_confusion_matrix(tmp_path):
    path = plot_confusion_matrix([[3, 1], [0, 4]], tmp_path / "cm.png", class_names=["no", "yes"])
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="`matrix` must be square"):
        plot_confusion_matrix([[1, 2, 3]], tmp_path / "bad.png")
