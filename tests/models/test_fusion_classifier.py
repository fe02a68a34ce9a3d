import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import run_model_saving_test

from xmodal_keras.encoders.tabular_encoder import tabular_features
from xmodal_keras.encoders.text_encoder import build_text_encoder
from xmodal_keras.layers.cross_attention_fusion import CrossAttentionFusion
from xmodal_keras.models.fusion_classifier import (
    CLASSIFIER_FUSIONS,
    build_fusion_classifier,
    classifier_loss,
)

IMAGE = {"image_shape": (8, 8, 3), "hidden_dim": 8, "num_layers": 1}
TEXT = {"vocabulary_size": 12, "sequence_length": 4, "embedding_dim": 8, "hidden_dim": 8}
TINY = {"image": IMAGE, "text": TEXT}
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(4, 8, 8, 3), dtype="uint8")
TOKENS = np.array([[2, 5, 3, 0], [2, 6, 7, 3], [2, 4, 3, 0], [2, 8, 3, 0]], "int32")
INPUTS = {"images": IMAGES, "token_ids": TOKENS}


# MMBT reads the text with a KerasHub BERT preset: tests/encoders/test_mmbt_encoder.py.
@pytest.mark.parametrize("fusion", [f for f in CLASSIFIER_FUSIONS if f != "mmbt"])
def test_every_fusion_builds_fits_and_reloads(fusion):
    model = build_fusion_classifier(modalities=TINY, fusion=fusion, projection_dim=8, num_classes=2)
    assert set(model.input) == {"images", "token_ids"}
    projection = "sequence_projection" if fusion == "cross_attention" else "projection"
    names = {layer.name for layer in model.layers}
    assert {"image_encoder", "text_encoder", f"image_{projection}", f"text_{projection}"} <= names
    assert model.input["images"].dtype == "uint8" and model.input["token_ids"].dtype == "int32"
    if fusion != "late":
        assert (
            model.get_layer("fusion").__class__.__name__.lower().startswith(fusion.replace("_", ""))
        )
    probabilities = np.asarray(model(INPUTS))
    assert probabilities.shape == (4, 1) and probabilities.dtype == np.float32
    assert np.all((probabilities > 0) & (probabilities < 1))
    if fusion in ("cross_attention", "late"):  # the other fusion layers fit in their own tests
        model.compile(optimizer="sgd", loss=classifier_loss(num_classes=2))
        history = model.fit(INPUTS, np.array([0, 1, 1, 0]), batch_size=4, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    run_model_saving_test(model, INPUTS, atol=1e-5)


def test_cross_attention_masks_text_padding():
    model = build_fusion_classifier(
        modalities=TINY, fusion="cross_attention", projection_dim=8, num_classes=2
    )
    assert isinstance(model.get_layer("fusion"), CrossAttentionFusion)
    # Text is `first` (tokens attend to regions); changing what follows the padding
    # start would change the output if padding were attended to. Here ids after the
    # first 0 are padding too, so a sequence and its zero-padded twin agree.
    padded = TOKENS.copy()
    padded[:, 3] = 0
    reference = np.asarray(model({"images": IMAGES, "token_ids": padded}))
    longer = np.asarray(model({"images": IMAGES, "token_ids": TOKENS}))
    assert not np.allclose(reference[1], longer[1])  # row 1 lost a real token
    np.testing.assert_allclose(reference[[0, 2, 3]], longer[[0, 2, 3]], rtol=1e-6)


@pytest.mark.parametrize(
    "num_classes, multi_label, shape, activation",
    [(2, False, (4, 1), "sigmoid"), (3, False, (4, 3), "softmax"), (3, True, (4, 3), "sigmoid")],
)
def test_heads(num_classes, multi_label, shape, activation):
    model = build_fusion_classifier(
        modalities=TINY, projection_dim=8, num_classes=num_classes, multi_label=multi_label
    )
    logits_model = keras.Model(model.input, model.get_layer("logits").output)
    probabilities, logits = np.asarray(model(INPUTS)), np.asarray(logits_model(INPUTS))
    assert probabilities.shape == shape
    assert model.get_layer("probabilities").get_config()["activation"] == activation
    if activation == "softmax":
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(probabilities, tf.nn.softmax(logits), rtol=1e-5)
    else:
        np.testing.assert_allclose(probabilities, tf.sigmoid(logits), rtol=1e-5)
    loss = classifier_loss(num_classes=num_classes, multi_label=multi_label)
    labels = np.eye(3)[[0, 1, 2, 0]] if multi_label else np.array([0, 1, 1, 0])
    assert np.isfinite(float(loss(labels, probabilities)))


def test_logits_output_and_late_fusion_averages_modality_logits():
    model = build_fusion_classifier(
        modalities=TINY, fusion="late", projection_dim=8, num_classes=3, output="logits"
    )
    assert model.layers[-1].name == "logits"
    heads = keras.Model(
        model.input,
        [model.get_layer("image_logits").output, model.get_layer("text_logits").output],
    )
    image_logits, text_logits = (np.asarray(x) for x in heads(INPUTS))
    np.testing.assert_allclose(model(INPUTS), (image_logits + text_logits) / 2, rtol=1e-5)


def test_unimodal_baselines_use_the_same_builder():
    image_only = build_fusion_classifier(
        modalities={"image": IMAGE}, projection_dim=8, num_classes=2
    )
    text_only = build_fusion_classifier(
        modalities={"text": TEXT}, fusion="gated", projection_dim=8, num_classes=2
    )
    assert list(image_only.input) == ["images"] and list(text_only.input) == ["token_ids"]
    for model in (image_only, text_only):
        assert "fusion" not in {layer.name for layer in model.layers}
    assert image_only({"images": IMAGES}).shape == (4, 1)
    assert text_only({"token_ids": TOKENS}).shape == (4, 1)


def test_four_modalities_with_tabular_and_audio_features():
    frame = pd.DataFrame(
        {
            "age": [1.0, 2.0, 3.0, 4.0],
            "color": ["red", "blue", "red", "green"],
            "split": ["train", "train", "train", "test"],
        }
    )
    columns = {"numeric_columns": ["age"], "categorical_columns": ["color"]}
    model = build_fusion_classifier(
        modalities={
            "tabular": {"frame": frame, **columns, "embedding_dim": 2, "hidden_dim": 4},
            "audio": {"input_kind": "features", "feature_shape": (4, 6), "hidden_dim": 8},
            **TINY,
        },
        fusion="gated",
        projection_dim=8,
        num_classes=3,
    )
    assert list(model.input) == ["images", "token_ids", "audio", "tabular"]
    inputs = {
        **INPUTS,
        "audio": RNG.normal(size=(4, 4, 6)).astype("float32"),
        "tabular": tabular_features(frame, **columns),
    }
    assert model(inputs).shape == (4, 3)
    model.compile(optimizer="sgd", loss=classifier_loss(num_classes=3))
    dataset = tf.data.Dataset.from_tensor_slices((inputs, np.array([0, 1, 2, 0]))).batch(4)
    model.fit(dataset, verbose=0)
    run_model_saving_test(model, inputs, atol=1e-5)


def test_pretrained_encoder_is_reused():
    tower = build_text_encoder(**TEXT, name="pretrained_text_tower")
    model = build_fusion_classifier(
        modalities={"image": IMAGE, "text": tower}, projection_dim=8, num_classes=2
    )
    assert model.get_layer("pretrained_text_tower") is tower


def _xor_data():
    """Label = (bright image) XOR (token 4 in the text): neither modality alone says anything."""
    bright = np.array([0, 0, 1, 1] * 4, bool)
    word = np.array([0, 1, 0, 1] * 4, bool)
    images = np.where(bright[:, None, None, None], 220, 30).astype("uint8") * np.ones(
        (1, 8, 8, 3), "uint8"
    )
    tokens = np.stack([[2, 4 if w else 5, 3, 0] for w in word]).astype("int32")
    labels = (bright ^ word).astype("int32")
    return {"images": images, "token_ids": tokens}, labels


@pytest.mark.parametrize("fusion", ["gated", pytest.param("concat", marks=pytest.mark.slow)])
def test_fusion_learns_a_rule_no_single_modality_can(fusion):
    inputs, labels = _xor_data()
    # Identical images carry both labels equally often: any image-only model is at chance.
    for value in (30, 220):
        assert labels[inputs["images"][:, 0, 0, 0] == value].mean() == 0.5
    keras.utils.set_random_seed(1)
    model = build_fusion_classifier(
        modalities=TINY, fusion=fusion, projection_dim=8, hidden_dim=16, num_classes=2
    )
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=classifier_loss(num_classes=2))
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(16).repeat()
    model.fit(dataset, steps_per_epoch=80, epochs=1, verbose=0)
    predictions = np.asarray(model(inputs))[:, 0] > 0.5
    assert np.mean(predictions == labels) == 1.0


@pytest.mark.slow
def test_image_only_baseline_stays_at_chance_on_xor():
    inputs, labels = _xor_data()
    model = build_fusion_classifier(modalities={"image": IMAGE}, projection_dim=8, num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=classifier_loss(num_classes=2))
    model.fit({"images": inputs["images"]}, labels, batch_size=16, epochs=10, verbose=0)
    predictions = np.asarray(model({"images": inputs["images"]}))[:, 0] > 0.5
    assert np.mean(predictions == labels) == 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"modalities": ("image", "video")}, r"Received: modalities=\('image', 'video'\)"),
        ({"modalities": ()}, r"one or more of"),
        ({"modalities": ("image", "image")}, r"duplicates"),
        ({"modalities": {"image": 3}}, r"Received: image=3"),
        ({"modalities": ("text",)}, r"Text settings need \['vocabulary_size', 'sequence_length'\]"),
        ({"modalities": ("tabular",)}, r"Tabular settings need `frame`"),
        ({"fusion": "sum"}, r"Received: fusion='sum'"),
        ({"output": "scores"}, r"Received: output='scores'"),
        ({"num_classes": 1}, r"Received: num_classes=1"),
        ({"projection_dim": 0}, r"Received: projection_dim=0"),
        ({"dropout": 1.5}, r"Received: dropout=1.5"),
        (
            {"modalities": {**TINY, "audio": {}}, "fusion": "cross_attention"},
            r"exactly two sequence modalities.*Received: modalities=\('image', 'text', 'audio'\)",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"modalities": TINY, "num_classes": 2, "projection_dim": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_fusion_classifier(**arguments)
