"""The captioner builders: shapes, `.keras` round trip, padding, overfitting one batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from xmodal_keras.models import (
    build_gru_captioner,
    build_lstm_captioner,
    build_transformer_captioner,
)
from xmodal_keras.training.compile_captioner import compile_captioner

VOCAB, LENGTH, IMAGE = 12, 6, (32, 32, 3)
TINY = {
    "gru": lambda **kw: build_gru_captioner(
        vocabulary_size=VOCAB,
        sequence_length=LENGTH,
        image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8},
        embedding_dim=8,
        hidden_dim=16,
        **kw,
    ),
    "lstm": lambda **kw: build_lstm_captioner(
        vocabulary_size=VOCAB,
        sequence_length=LENGTH,
        image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8},
        embedding_dim=8,
        hidden_dim=16,
        **kw,
    ),
    "transformer": lambda **kw: build_transformer_captioner(
        vocabulary_size=VOCAB,
        sequence_length=LENGTH,
        image_shape=IMAGE,
        encoder_kwargs={"hidden_dim": 8},
        hidden_dim=16,
        num_heads=2,
        num_layers=1,
        **kw,
    ),
}
rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (2, *IMAGE)).astype("uint8")
# Two noise images look alike after global average pooling, the only view of the image the
# LSTM (Show and Tell) has; a darker second image tells them apart.
IMAGES[1] //= 4
CAPTION_IN = np.array([[2, 4, 5, 6, 0, 0], [2, 7, 8, 9, 10, 11]], "int32")
CAPTION_OUT = np.array([[4, 5, 6, 3, 0, 0], [7, 8, 9, 10, 11, 3]], "int32")


@pytest.fixture(params=sorted(TINY))
def kind(request):
    return request.param


def test_inputs_and_output_shapes(kind):
    model = TINY[kind]()
    assert model.input["images"].dtype == "uint8"
    assert model.input["token_ids"].shape == (None, LENGTH)
    logits = model({"images": IMAGES, "token_ids": CAPTION_IN})
    assert logits.shape == (2, LENGTH, VOCAB)
    # Float images in [0, 255] are accepted too.
    float_logits = model({"images": IMAGES.astype("float32"), "token_ids": CAPTION_IN})
    np.testing.assert_allclose(float_logits, logits, atol=1e-5)


def test_keras_file_round_trip_gives_identical_logits(kind, tmp_path):
    model = TINY[kind]()
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    inputs = {"images": IMAGES, "token_ids": CAPTION_IN}
    np.testing.assert_array_equal(restored(inputs).numpy(), model(inputs).numpy())


def test_padding_does_not_change_real_positions(kind):
    """Causal decoding: what follows a caption's end cannot change its logits."""
    model = TINY[kind]()
    other = CAPTION_IN.copy()
    other[0, 4:] = [9, 9]
    first = model({"images": IMAGES, "token_ids": CAPTION_IN}).numpy()
    second = model({"images": IMAGES, "token_ids": other}).numpy()
    np.testing.assert_allclose(first[0, :4], second[0, :4], atol=1e-5)


def test_tiny_model_overfits_one_batch(kind):
    keras.utils.set_random_seed(0)
    model = compile_captioner(TINY[kind](), total_steps=150, learning_rate=1e-2, weight_decay=0.0)
    dataset = tf.data.Dataset.from_tensors(
        ({"images": IMAGES, "token_ids": CAPTION_IN}, CAPTION_OUT)
    ).repeat()
    start = model.evaluate(dataset, steps=1, verbose=0, return_dict=True)
    model.fit(dataset, steps_per_epoch=150, epochs=1, verbose=0)
    end = model.evaluate(dataset, steps=1, verbose=0, return_dict=True)
    assert start["loss"] > 2.0
    assert end["loss"] < 0.1
    assert end["masked_token_accuracy"] == 1.0


@pytest.mark.parametrize(
    "builder", [build_gru_captioner, build_lstm_captioner, build_transformer_captioner]
)
def test_builders_reject_bad_sequence_length(builder):
    with pytest.raises(ValueError, match="Received: sequence_length=1"):
        builder(vocabulary_size=VOCAB, sequence_length=1, image_shape=IMAGE)
