"""MMBT (`MMBTEncoder`, `fusion="mmbt"`) on a tiny random BERT preset: without image regions
it is the BERT itself; with them, the regions change what it reads; it trains, reloads in
safe mode with its frozen layers, and refuses what it cannot read."""

import keras
import numpy as np
import pytest
from keras_hub_presets import BERT_SPECIAL_TOKENS, SHAPES_PIECES, tiny_bert_preset

from xmodal_keras.encoders.keras_hub_text_encoder import load_keras_hub_text_backbone
from xmodal_keras.encoders.mmbt_encoder import MMBTEncoder
from xmodal_keras.models.fusion_classifier import build_fusion_classifier
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig

IDS = np.array([[2, 7, 9, 3, 0, 0], [2, 8, 3, 0, 0, 0]], "int32")


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> str:
    return "keras_hub:" + str(tiny_bert_preset(tmp_path_factory.mktemp("bert") / "tiny_bert"))


def mmbt_classifier(preset, *, image_size=32, sequence_length=6, trainable_layers=None):
    return build_fusion_classifier(
        modalities={
            "image": {"image_shape": (image_size, image_size, 3), "hidden_dim": 8, "num_layers": 3},
            "text": {
                "kind": preset,
                "vocabulary_size": len(BERT_SPECIAL_TOKENS) + len(SHAPES_PIECES),
                "sequence_length": sequence_length,
                "trainable_layers": trainable_layers,
            },
        },
        fusion="mmbt",
        projection_dim=8,
        num_classes=2,
    )


def test_without_regions_it_is_the_bert(preset):
    backbone = load_keras_hub_text_backbone(preset)
    expected = backbone(
        {"token_ids": IDS, "segment_ids": np.zeros_like(IDS), "padding_mask": IDS != 0}
    )
    out = MMBTEncoder(backbone)(IDS, np.zeros((2, 0, 16), "float32"))
    mask = (IDS != 0)[..., None]
    np.testing.assert_allclose(
        np.asarray(out["sequence"]) * mask,
        np.asarray(expected["sequence_output"]) * mask,
        atol=1e-5,
    )
    np.testing.assert_allclose(out["pooled"], expected["pooled_output"], atol=1e-5)


def test_the_regions_are_read_with_the_text(preset):
    encoder = MMBTEncoder(load_keras_hub_text_backbone(preset))
    regions = np.random.default_rng(0).normal(size=(2, 4, 16)).astype("float32")
    first = encoder(IDS, regions)
    assert tuple(first["sequence"].shape) == (2, 10, 16)
    second = encoder(IDS, regions * 2)
    assert not np.allclose(first["pooled"], second["pooled"])
    padded = encoder(np.pad(IDS, [(0, 0), (0, 3)]), regions)  # more padding: same read
    np.testing.assert_allclose(padded["pooled"], first["pooled"], atol=1e-5)


def test_the_classifier_trains_and_reloads_with_its_frozen_layers(preset, tmp_path):
    model = mmbt_classifier(preset, trainable_layers=1)
    backbone = model.get_layer("text_encoder").backbone
    assert [bool(layer.trainable_weights) for layer in backbone.transformer_layers] == [False, True]
    inputs = {
        "images": np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3)).astype("uint8"),
        "token_ids": np.concatenate([IDS, IDS]),
    }
    model.compile(optimizer="adam", loss="binary_crossentropy")
    frozen = np.array(backbone.transformer_layers[0].weights[0])
    model.fit(inputs, np.array([[0], [1], [0], [1]], "float32"), epochs=1, verbose=0)
    np.testing.assert_array_equal(backbone.transformer_layers[0].weights[0], frozen)
    model.save(tmp_path / "mmbt.keras")
    again = keras.saving.load_model(tmp_path / "mmbt.keras", safe_mode=True)
    np.testing.assert_allclose(again(inputs), model(inputs), atol=1e-5)
    paths = [w.path for w in model.trainable_weights]
    assert [w.path for w in again.trainable_weights] == paths


def test_what_it_cannot_read_is_refused(preset):
    with pytest.raises(ValueError, match="16 image regions \\+ 20 token ids, more than the 32"):
        mmbt_classifier(preset, sequence_length=20)
    with pytest.raises(ValueError, match="kind='keras_hub:PRESET_OR_DIR'"):
        build_fusion_classifier(
            modalities={
                "image": {"image_shape": (32, 32, 3)},
                "text": {"vocabulary_size": 9, "sequence_length": 4},
            },
            fusion="mmbt",
            num_classes=2,
        )
    with pytest.raises(ValueError, match="fusion='mmbt' reads images with a pretrained BERT"):
        FusionTrainConfig(fusion="mmbt")
    assert FusionTrainConfig(fusion="mmbt", text_encoder=preset).fusion == "mmbt"
