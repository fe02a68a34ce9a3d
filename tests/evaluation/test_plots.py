"""Tests for the PNG pictures: attention heat-maps and training curves."""

import math
import os

import keras
import numpy as np
import pytest
from PIL import Image

from xmodal_keras.evaluation.plots import (
    plot_attention_map,
    plot_training_curves,
    read_history_csv,
)

NAN = float("nan")


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def _image(height=32, width=32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _attention(rows: int, regions: int) -> np.ndarray:
    weights = np.random.default_rng(1).random((rows, regions)).astype("float32")
    return weights / weights.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- attention


def test_attention_map_writes_a_png_with_one_panel_per_word(tmp_path):
    words = ["a", "small", "red", "circle", "<end>"]
    path = plot_attention_map(_image(), words, _attention(5, 16), tmp_path / "sub" / "att.png")
    assert path == tmp_path / "sub" / "att.png"
    width, height = _png_size(path)
    assert width > 0 and height > 0
    # More words -> more panels -> a bigger picture (rows of 5 panels).
    more = plot_attention_map(_image(), words * 3, _attention(15, 16), tmp_path / "more.png")
    assert _png_size(more)[1] > height
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp


def test_attention_map_with_an_explicit_grid_shape(tmp_path):
    path = plot_attention_map(
        _image(32, 64), ["a", "star"], _attention(2, 8), tmp_path / "a.png", grid_shape=(2, 4)
    )
    assert _png_size(path)[0] > 0


def test_attention_map_replaces_an_existing_file(tmp_path):
    target = tmp_path / "att.png"
    target.write_bytes(b"old")
    plot_attention_map(_image(), ["a"], _attention(1, 4), target)
    assert target.read_bytes()[1:4] == b"PNG"
    assert sorted(os.listdir(tmp_path)) == ["att.png"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"attention": _attention(2, 15)}, r"not a square.*Received: num_regions=15"),
        ({"attention": _attention(3, 16)}, r"Received: attention.shape=\(3, 16\), len\(words\)=2"),
        ({"attention": np.ones(16)}, r"Received: attention.shape=\(16,\)"),
        ({"image": np.zeros((32, 32), "uint8")}, r"Received: image.shape=\(32, 32\)"),
        ({"image": np.zeros((32, 32, 3), "float32")}, r"Received: .*image.dtype=float32"),
        ({"words": []}, r"Received: words=\[\]"),
        ({"words": "ab", "attention": _attention(2, 16)}, r"Received: words='ab'"),
        ({"grid_shape": (3, 5)}, r"Received: grid_shape=\(3, 5\), num_regions=16"),
        ({"attention": np.full((2, 16), NAN)}, r"finite\. Received:"),
        ({"out_path": "x.jpg"}, r"\.png\. Received: out_path='x\.jpg'"),
    ],
)
def test_attention_map_bad_arguments(tmp_path, kwargs, message):
    arguments = {
        "image": _image(),
        "words": ["a", "circle"],
        "attention": _attention(2, 16),
        "out_path": tmp_path / "att.png",
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        plot_attention_map(**arguments)
    assert not (tmp_path / "att.png").exists()


# ----------------------------------------------------------------------------- curves

HISTORY = {
    "loss": [3.0, 2.0, 1.5, 1.2],
    "val_loss": [2.5, 1.9, 1.6, 1.5],
    "masked_token_accuracy": [0.3, 0.5, 0.6, 0.7],
    "val_masked_token_accuracy": [0.35, 0.5, 0.58, 0.66],
    "val_cider": [NAN, 0.8, NAN, 1.4],
    "val_bleu_4": [NAN, 0.2, NAN, 0.33],
    "learning_rate": [1e-3, 1e-3, 5e-4, 1e-4],
}


def test_training_curves_from_a_dict(tmp_path):
    path = plot_training_curves(HISTORY, tmp_path / "curves.png")
    full_width = _png_size(path)[0]
    # Fewer panels (no caption metrics) -> a narrower figure: the metric panels were drawn.
    loss_only = {key: HISTORY[key] for key in ("loss", "val_loss")}
    narrow = plot_training_curves(loss_only, tmp_path / "loss.png")
    assert _png_size(narrow)[0] < full_width


def test_training_curves_from_a_keras_history_object(tmp_path):
    history = keras.callbacks.History()
    history.history = {"loss": [2.0, 1.0], "val_cider": [0.5, 0.9]}
    assert _png_size(plot_training_curves(history, tmp_path / "h.png"))[0] > 0


def test_training_curves_from_a_csv_logger_file(tmp_path):
    csv_path = tmp_path / "training_log.csv"
    csv_path.write_text(
        "epoch,loss,masked_token_accuracy,val_bleu_4,val_cider\n"
        "0,3.0,0.3,nan,nan\n"
        "1,2.0,0.5,0.21,0.75\n"
        "2,1.5,0.6,NA,NA\n",
        encoding="utf-8",
    )
    history = read_history_csv(csv_path)
    assert history["epoch"] == [0.0, 1.0, 2.0]
    assert history["val_cider"][1] == 0.75
    assert math.isnan(history["val_cider"][0]) and math.isnan(history["val_cider"][2])
    path = plot_training_curves(csv_path, tmp_path / "curves.png")
    assert _png_size(path)[0] > 0
    path = plot_training_curves(str(csv_path), tmp_path / "curves2.png")
    assert _png_size(path)[0] > 0


def test_training_curves_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"no finite values.*Received: keys=\['learning_rate'\]"):
        plot_training_curves({"learning_rate": [1e-3]}, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"no finite values.*Received: keys=\['val_cider'\]"):
        plot_training_curves({"val_cider": [NAN, NAN]}, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"Received: history of type int"):
        plot_training_curves(3, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"history\['loss'\] must be a list.*Received: 1\.0"):
        plot_training_curves({"loss": 1.0}, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"No training-log CSV file there\. Received: path="):
        plot_training_curves(tmp_path / "missing.csv", tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()
