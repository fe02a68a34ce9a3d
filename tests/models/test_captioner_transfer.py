"""build_fusion_classifier_from_captioner: the captioner's encoder and decoder, copied, read
(image, text) pairs; unimodal variants; reload; SavedModel and TFLite exports match Keras."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.models.captioner_transfer import build_fusion_classifier_from_captioner
from xmodal_keras.models.gru_captioner import build_gru_captioner
from xmodal_keras.models.transformer_captioner import build_transformer_captioner

SIZE = 32
CAPTIONS = ["a red circle", "a blue square left of a green triangle", "a small red square"]
TEXTS = ["a red circle", "a green triangle left of a blue square", "a large star"]
IMAGES = np.random.default_rng(1).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tokenizer():
    return CaptionTokenizer.from_captions(CAPTIONS, sequence_length=9)


@pytest.fixture(scope="module")
def captioner(tokenizer):
    model = build_transformer_captioner(
        vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=tokenizer.sequence_length,
        image_shape=(SIZE, SIZE, 3),
        encoder_kwargs={"hidden_dim": 8, "num_layers": 2},
        hidden_dim=8,
        num_heads=2,
        num_layers=1,
    )
    # Random, non-trivial weights so a missed copy shows.
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.3, size=w.shape) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def classifier(captioner):
    return build_fusion_classifier_from_captioner(captioner, num_classes=2, hidden_dim=8)


def test_features_are_the_captioners_likelihood_of_the_text(captioner, classifier, tokenizer):
    token_ids = tokenizer(TEXTS).numpy()
    assert classifier.input["token_ids"].shape[1] == token_ids.shape[1]
    encoder = classifier.get_layer("image_encoder")
    grid = encoder(IMAGES)["grid"]
    np.testing.assert_allclose(grid, captioner.get_layer("image_encoder")(IMAGES)["grid"])
    features = np.asarray(classifier.get_layer("captioner_text_reader")(token_ids, grid))
    logits = np.asarray(captioner({"images": IMAGES, "token_ids": token_ids[:, :-1]}), "float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = token_ids[:, 1:]
    expected = [
        sum(log_probs[i, t, targets[i, t]] for t in range(targets.shape[1]) if targets[i, t])
        for i in range(len(TEXTS))
    ]
    np.testing.assert_allclose(features[:, -2], expected, rtol=1e-4)


def test_the_captioner_is_copied_not_shared(captioner, tokenizer):
    before = [w.copy() for w in captioner.get_weights()]
    model = build_fusion_classifier_from_captioner(captioner, num_classes=3, hidden_dim=4)
    assert model.output.shape == (None, 3)
    for layer in (model.get_layer("image_encoder"), model.get_layer("captioner_text_reader")):
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    for old, new in zip(before, captioner.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize(
    ("modalities", "inputs"),
    [(("image",), ["images"]), (("text",), ["token_ids"]), (("image", "text"), None)],
)
def test_unimodal_variants_and_reload(captioner, tokenizer, modalities, inputs, tmp_path):
    model = build_fusion_classifier_from_captioner(
        captioner, num_classes=2, hidden_dim=8, modalities=modalities
    )
    assert sorted(model.input) == (inputs or ["images", "token_ids"])
    given = {"images": IMAGES, "token_ids": tokenizer(TEXTS).numpy()}
    given = {key: given[key] for key in model.input}
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded(given), model(given), atol=1e-6)


def test_only_transformer_captioners_are_accepted(tokenizer):
    gru = build_gru_captioner(
        vocabulary_size=tokenizer.vocabulary_size,
        sequence_length=tokenizer.sequence_length,
        image_shape=(SIZE, SIZE, 3),
        encoder_kwargs={"hidden_dim": 8, "num_layers": 1},
        embedding_dim=8,
        hidden_dim=8,
    )
    with pytest.raises(ValueError, match=r"must be a Transformer captioner .* GRUCaptionDecoder"):
        build_fusion_classifier_from_captioner(gru, num_classes=2)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="other")
    with pytest.raises(ValueError, match=r"with layers 'image_encoder' .* model 'other'"):
        build_fusion_classifier_from_captioner(other, num_classes=2)


def test_bad_modalities_are_refused(captioner):
    with pytest.raises(ValueError, match=r"`modalities` must be .* modalities=\('audio',\)"):
        build_fusion_classifier_from_captioner(captioner, num_classes=2, modalities=("audio",))


FRESH_PROCESS = """
import json, sys
import tensorflow as tf
request = json.loads(sys.stdin.read())
model = tf.saved_model.load(request["path"])
out = model.signatures["classify"](
    image_bytes=tf.constant([bytes.fromhex(h) for h in request["images"]]),
    text=tf.constant(request["texts"]))
print(json.dumps(out["probabilities"].numpy().tolist()))
"""


def test_saved_model_and_tflite_exports_match_keras(classifier, tokenizer, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from xmodal_keras.export.fusion_export import export_fusion_classifier
    from xmodal_keras.export.fusion_tflite_export import export_fusion_classifier_tflite
    from xmodal_keras.export.tflite_ops import non_builtin_ops

    token_ids = tokenizer(TEXTS).numpy()
    expected = classifier({"images": IMAGES, "token_ids": token_ids}).numpy()
    pngs = [tf.io.encode_png(image).numpy().hex() for image in IMAGES]
    path = export_fusion_classifier(
        classifier, tokenizer, base_dir=tmp_path / "saved_models", name="from_captioner"
    )
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS],
        input=json.dumps({"path": str(path), "images": pngs, "texts": TEXTS}),
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)

    folder = export_fusion_classifier_tflite(
        classifier, tmp_path / "tflite", name="from_captioner", tokenizer=tokenizer
    )
    assert non_builtin_ops(folder / "model.tflite") == []
    runner = Interpreter(model_path=str(folder / "model.tflite")).get_signature_runner("classify")
    for i in range(len(TEXTS)):
        got = runner(images=IMAGES[i : i + 1], token_ids=token_ids[i : i + 1])["probabilities"]
        np.testing.assert_allclose(got, expected[i : i + 1], atol=1e-5)
