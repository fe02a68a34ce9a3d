"""Tests for `CaptionMetricsCallback` (val BLEU-4 / CIDEr in the epoch logs)."""

import csv
import math

import keras
import numpy as np
import pytest

from xmodal_keras.data import (
    CaptionTokenizer,
    load_image,
    make_caption_dataset,
    read_captions,
)
from xmodal_keras.decoding.caption_generator import CaptionGenerator
from xmodal_keras.models import build_transformer_captioner
from xmodal_keras.training.callbacks import CaptionMetricsCallback
from xmodal_keras.training.compile_captioner import compile_captioner

SEQUENCE_LENGTH = 12
IMAGE_SHAPE = (32, 32, 3)


@pytest.fixture(scope="module")
def setup(tiny_shapes_dir):
    """A tiny Transformer captioner, its tokenizer, train data and val images/references."""
    frame = read_captions(tiny_shapes_dir, format="flickr8k")
    train = frame[frame["split"] == "train"]
    val = frame[frame["split"] == "val"]
    tokenizer = CaptionTokenizer.from_captions(
        list(train["caption"]), sequence_length=SEQUENCE_LENGTH
    )
    dataset = make_caption_dataset(
        train, tokenizer, image_size=IMAGE_SHAPE[:2], batch_size=8, repeat=True, seed=0
    )
    first = val.drop_duplicates("image_id")
    image_ids = list(first["image_id"])
    images = np.stack([load_image(p, IMAGE_SHAPE[:2]).numpy() for p in first["image_path"]])
    references = val.groupby("image_id")["caption"].apply(list).to_dict()
    return tokenizer, dataset, images, image_ids, references


def _model(tokenizer):
    keras.utils.set_random_seed(0)
    model = build_transformer_captioner(
        vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=tokenizer.sequence_length,
        image_shape=IMAGE_SHAPE,
        encoder_kwargs={"hidden_dim": 8},
        hidden_dim=8,
        num_heads=2,
        num_layers=1,
    )
    compile_captioner(model, total_steps=4, learning_rate=1e-2)
    # 4 eager steps take ~2 s each here; tracing the train step would take ~30 s.
    model.run_eagerly = True
    return model


def test_fit_logs_val_metrics_on_the_right_epochs(setup, tmp_path):
    tokenizer, dataset, images, image_ids, references = setup
    model = _model(tokenizer)
    # every 5 epochs, 2 epochs: epoch 0 is skipped (NaN), epoch 1 is the last -> computed.
    callback = CaptionMetricsCallback(
        tokenizer,
        images,
        references,
        image_ids,
        every_n_epochs=5,
        batch_size=3,  # several generation batches, the last one smaller
        tokenizer="simple",
    )
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = dict(logs)

    csv_path = tmp_path / "log.csv"
    history = model.fit(
        dataset,
        epochs=2,
        steps_per_epoch=2,
        verbose=0,
        callbacks=[callback, Spy(), keras.callbacks.CSVLogger(str(csv_path))],
    )
    assert callback.log_keys == ("val_bleu_4", "val_cider")
    assert callback.generator is not None and callback.generator.model is model
    for key in callback.log_keys:
        assert math.isnan(seen[0][key])
        assert isinstance(seen[1][key], float) and 0.0 <= seen[1][key] <= 10.0
        values = history.history[key]
        assert len(values) == 2 and math.isnan(values[0]) and 0.0 <= values[1] <= 10.0
    assert set(callback.last_captions) == set(image_ids)
    assert all(isinstance(text, str) for text in callback.last_captions.values())
    assert callback.last_metrics["bleu_4"] == seen[1]["val_bleu_4"]
    with open(csv_path, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["val_cider"] for row in rows][0] == "nan"
    assert 0.0 <= float(rows[1]["val_cider"]) <= 10.0


def test_the_generator_sees_the_current_weights(setup):
    tokenizer, _, images, image_ids, references = setup
    model = _model(tokenizer)
    made = []

    def factory(m):
        made.append(m)
        return CaptionGenerator(m, tokenizer, max_length=6)

    callback = CaptionMetricsCallback(
        factory, images[:2], references, image_ids[:2], metrics="cider", tokenizer="simple"
    )
    callback.set_model(model)
    callback.set_params({"epochs": 3})
    before = callback.caption_images()
    # Make the output layer always predict "<end>": every caption becomes empty.
    output_layer = model.get_layer("caption_decoder").logits_dense
    kernel, bias = output_layer.kernel, output_layer.bias
    kernel.assign(np.zeros(kernel.shape, "float32"))
    bias.assign(np.eye(tokenizer.vocabulary_size, dtype="float32")[tokenizer.end_id] * 10)
    after = callback.caption_images()
    assert made == [model]  # built once, lazily
    assert after == {image_id: "" for image_id in image_ids[:2]}
    assert before != after
    logs = {}
    callback.on_epoch_end(2, logs)  # the last epoch
    assert list(logs) == ["val_cider"] and logs["val_cider"] == 0.0


def test_should_evaluate_every_n_epochs_and_the_last(setup):
    tokenizer, _, images, image_ids, references = setup
    callback = CaptionMetricsCallback(tokenizer, images, references, image_ids, every_n_epochs=3)
    callback.set_params({"epochs": 7})
    assert [e for e in range(7) if callback.should_evaluate(e)] == [2, 5, 6]


def test_bad_arguments(setup):
    tokenizer, _, images, image_ids, references = setup
    good = {
        "generator": tokenizer,
        "images": images,
        "references": references,
        "image_ids": image_ids,
    }
    cases = [
        ({"generator": 3}, r"Received: generator of type int"),
        ({"images": images[0]}, r"Received: images.shape=\(32, 32, 3\)"),
        ({"image_ids": image_ids[:1]}, rf"Received: 1 image_ids for {len(images)} images"),
        ({"image_ids": [image_ids[0]] * len(images)}, r"unique\. Received: 1 distinct ids"),
        ({"references": {}}, r"Received: no references for \["),
        ({"every_n_epochs": 0}, r"Received: every_n_epochs=0"),
        ({"metrics": ("bleu", "spice")}, r"Received: metrics=\('bleu', 'spice'\)"),
        ({"batch_size": 0}, r"Received: batch_size=0"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            CaptionMetricsCallback(**{**good, **change})
