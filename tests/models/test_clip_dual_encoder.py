"""A whole CLIP preset as our dual encoder (`build_dual_encoder_from_clip`) with its BPE
tokenizer (`ClipTextTokenizer`), on a tiny random CLIP saved by `save_to_preset`: the same
ids as KerasHub's `CLIPPreprocessor`, the same embeddings as `CLIPBackbone`, the preset's
temperature, and a safe-mode `.keras` reload."""

import math

import keras
import keras_hub
import numpy as np
import pytest
from keras_hub_presets import tiny_bert_preset, tiny_clip_preset

from xmodal_keras.data.clip_text_tokenizer import ClipTextTokenizer
from xmodal_keras.models.clip_dual_encoder import build_dual_encoder_from_clip, clip_image_size

TEXTS = ["a red circle", "A BLUE circle above a red square!", "", "zebra " * 20, "été 猫 🙂"]
LENGTH = 16


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> str:
    return "keras_hub:" + str(tiny_clip_preset(tmp_path_factory.mktemp("clip") / "tiny_clip"))


@pytest.fixture(scope="module")
def tokenizer(preset) -> ClipTextTokenizer:
    hub = keras_hub.tokenizers.Tokenizer.from_preset(preset.removeprefix("keras_hub:"))
    return ClipTextTokenizer.from_keras_hub(hub, LENGTH)


@pytest.fixture(scope="module")
def model(preset):
    return build_dual_encoder_from_clip(preset, sequence_length=LENGTH)


def test_ids_and_mask_equal_keras_hubs_clip_preprocessor(preset, tokenizer):
    preprocessor = keras_hub.models.CLIPPreprocessor.from_preset(
        preset.removeprefix("keras_hub:"), sequence_length=LENGTH
    )
    images = np.zeros((len(TEXTS), 32, 32, 3), "float32")
    expected = preprocessor({"images": images, "prompts": np.array(TEXTS)})
    ids, mask = tokenizer.tokenize_with_mask(TEXTS)
    np.testing.assert_array_equal(ids, expected["token_ids"])
    np.testing.assert_array_equal(mask, np.asarray(expected["padding_mask"]).astype("int32"))
    vocabulary = tokenizer.vocabulary
    red, circle = vocabulary.index("red</w>"), vocabulary.index("circle</w>")
    assert ids[0, :5].tolist() == [
        tokenizer.start_id,
        vocabulary.index("a</w>"),
        red,
        circle,
        tokenizer.end_id,
    ]
    np.testing.assert_array_equal(tokenizer(TEXTS).numpy(), ids)


def test_the_towers_equal_clip_backbones_normalised_embeddings(preset, tokenizer, model):
    backbone = keras_hub.models.Backbone.from_preset(preset.removeprefix("keras_hub:"))
    converter = keras_hub.layers.ImageConverter.from_preset(preset.removeprefix("keras_hub:"))
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype("uint8")
    scaled = images * np.asarray(converter.scale) + np.asarray(converter.offset)
    ids = tokenizer(TEXTS).numpy()

    def normalised(x):
        x = np.asarray(x)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    np.testing.assert_allclose(
        model.get_layer("image_tower")(images),
        normalised(backbone.get_vision_embeddings(scaled.astype("float32"))),
        atol=2e-5,
    )
    np.testing.assert_allclose(
        model.get_layer("text_tower")(ids),
        normalised(backbone.get_text_embeddings(ids)),
        atol=2e-5,
    )
    temperature = model.get_layer("logits").temperature
    assert math.isclose(
        temperature, math.exp(-float(backbone.clip_head.logit_scale.numpy())), rel_tol=1e-5
    )


def test_reloads_in_safe_mode_with_the_same_outputs(model, tokenizer, tmp_path):
    inputs = {
        "images": np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("uint8"),
        "token_ids": tokenizer(TEXTS[:2]).numpy(),
    }
    model.save(tmp_path / "clip.keras")
    again = keras.saving.load_model(tmp_path / "clip.keras", safe_mode=True)
    np.testing.assert_allclose(again(inputs), model(inputs), rtol=1e-5, atol=1e-5)


def test_tokenizer_files_round_trip(tokenizer, tmp_path):
    tokenizer.save_vocabulary(tmp_path / "vocab.txt")
    tokenizer.save_settings(tmp_path / "text_tokenizer.json")
    again = ClipTextTokenizer.from_files(tmp_path / "vocab.txt", tmp_path / "text_tokenizer.json")
    np.testing.assert_array_equal(again(TEXTS).numpy(), tokenizer(TEXTS).numpy())
    (tmp_path / "bad.json").write_text('{"kind": "wordpiece"}')
    with pytest.raises(ValueError, match="bad.json' must be a JSON object with kind 'clip_bpe'"):
        ClipTextTokenizer.from_files(tmp_path / "vocab.txt", tmp_path / "bad.json")


def test_image_size_is_read_from_the_preset(preset):
    assert clip_image_size(preset) == 32


def test_other_presets_and_lengths_are_refused(preset, tmp_path):
    with pytest.raises(ValueError, match="reads 3 to 16 token ids. Received: sequence_length=17"):
        build_dual_encoder_from_clip(preset, sequence_length=17)
    bert = "keras_hub:" + str(tiny_bert_preset(tmp_path / "bert"))
    with pytest.raises(ValueError, match="needs a CLIP preset .* holds a BertBackbone"):
        build_dual_encoder_from_clip(bert, sequence_length=8)
