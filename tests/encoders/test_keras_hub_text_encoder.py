"""`keras_hub:PRESET_OR_DIR` text encoders: a tiny BERT preset saved to a folder and loaded
through `from_preset(dir)`, wrapped into the text-encoder contract."""

import keras
import numpy as np
import pytest
from keras_hub_presets import BERT_SPECIAL_TOKENS, SHAPES_PIECES, TINY_BERT, tiny_bert_preset

from xmodal_keras.encoders.text_encoder import build_text_encoder
from xmodal_keras.training.precision import dtype_policy

VOCABULARY_SIZE = len(BERT_SPECIAL_TOKENS) + len(SHAPES_PIECES)
IDS = np.array([[2, 7, 9, 3, 0, 0], [2, 8, 3, 0, 0, 0]], "int32")


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> str:
    return "keras_hub:" + str(tiny_bert_preset(tmp_path_factory.mktemp("bert") / "tiny_bert"))


def test_outputs_follow_the_text_encoder_contract(preset, tmp_path):
    encoder = build_text_encoder(
        kind=preset, vocabulary_size=VOCABULARY_SIZE, sequence_length=IDS.shape[1]
    )
    out = encoder(IDS)
    assert tuple(out["sequence"].shape) == (2, 6, TINY_BERT["hidden_dim"])
    mask = (IDS != 0)[..., None]
    expected_pooled = (np.asarray(out["sequence"]) * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(out["pooled"], expected_pooled, rtol=1e-5, atol=1e-6)
    encoder.save(tmp_path / "encoder.keras")
    again = keras.saving.load_model(tmp_path / "encoder.keras", safe_mode=True)
    np.testing.assert_allclose(again(IDS)["pooled"], out["pooled"], rtol=1e-6)


def test_padding_does_not_change_the_pooled_vector(preset):
    short = build_text_encoder(kind=preset, vocabulary_size=VOCABULARY_SIZE, sequence_length=6)
    long = build_text_encoder(kind=preset, vocabulary_size=VOCABULARY_SIZE, sequence_length=10)
    padded = np.pad(IDS, [(0, 0), (0, 4)])
    np.testing.assert_allclose(long(padded)["pooled"], short(IDS)["pooled"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trainable_layers, trainable_count", [(0, 0), (1, 1), (None, 2)])
def test_trainable_layers_freeze_all_but_the_last(preset, trainable_layers, trainable_count):
    encoder = build_text_encoder(
        kind=preset,
        vocabulary_size=VOCABULARY_SIZE,
        sequence_length=6,
        trainable_layers=trainable_layers,
    )
    backbone = encoder.get_layer("preset_backbone").backbone
    trainable = [layer for layer in backbone.transformer_layers if layer.trainable_weights]
    assert len(trainable) == trainable_count
    embeddings_train = bool(backbone.get_layer("token_embedding").trainable_weights)
    assert embeddings_train == (trainable_layers is None)
    assert not backbone.get_layer("pooled_dense").trainable  # off the sequence's path


def test_a_reloaded_encoder_trains_the_same_layers(preset, tmp_path):
    encoder = build_text_encoder(
        kind=preset, vocabulary_size=VOCABULARY_SIZE, sequence_length=6, trainable_layers=1
    )
    encoder.save(tmp_path / "encoder.keras")
    again = keras.saving.load_model(tmp_path / "encoder.keras", safe_mode=True)
    names = [w.path for w in encoder.trainable_weights]
    assert [w.path for w in again.trainable_weights] == names and names


def test_follows_the_global_precision(preset):
    with dtype_policy("mixed_bfloat16"):
        encoder = build_text_encoder(
            kind=preset, vocabulary_size=VOCABULARY_SIZE, sequence_length=6
        )
    assert encoder(IDS)["sequence"].dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in encoder.trainable_weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_size": 7}, "tokenizer has 7 tokens but the backbone embeds"),
        ({"sequence_length": 33}, "reads at most 32 tokens"),
        ({"trainable_layers": 3}, "has 2 Transformer layers"),
    ],
)
def test_bad_arguments_say_what_was_expected(preset, kwargs, message):
    settings = {"vocabulary_size": VOCABULARY_SIZE, "sequence_length": 6, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_text_encoder(kind=preset, **settings)


def test_unknown_preset_and_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="Cannot load the KerasHub preset"):
        build_text_encoder(kind=f"keras_hub:{tmp_path}/none", vocabulary_size=5, sequence_length=4)
    with pytest.raises(ValueError, match="keras_hub:PRESET_OR_DIR"):
        build_text_encoder(kind="keras_hub:", vocabulary_size=5, sequence_length=4)
    with pytest.raises(ValueError, match="trainable_layers.*keras_hub"):
        build_text_encoder(kind="bigru", vocabulary_size=5, sequence_length=4, trainable_layers=1)


@pytest.mark.parametrize("settings_class", ["retrieval", "fusion"])
def test_task_settings_check_the_text_tower(settings_class):
    from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
    from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

    cls = {"retrieval": RetrievalTrainConfig, "fusion": FusionTrainConfig}[settings_class]
    assert cls(text_encoder="keras_hub:bert_tiny_en_uncased", text_trainable_layers=0)
    with pytest.raises(ValueError, match="text_trainable_layers.*keras_hub.*Received"):
        cls(text_trainable_layers=1)  # bigru
    with pytest.raises(ValueError, match="text_trainable_layers=-1"):
        cls(text_encoder="keras_hub:x", text_trainable_layers=-1)
    with pytest.raises(ValueError, match="keras_hub:PRESET_OR_DIR"):
        cls(text_encoder="lstm")
