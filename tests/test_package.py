"""Package-level contracts: the backend check and the registration of every public class."""

import importlib
import pkgutil
import subprocess
import sys

import keras
import keras_hub
import numpy as np

import xmodal_keras
from xmodal_keras.api_export import PACKAGE

# One small instance per registered class. A class registered without an entry here fails
# `test_every_registered_class_has_an_example`, so new classes cannot skip this check.
EXAMPLES = {
    "CaptionTokenizer": lambda: _cls("CaptionTokenizer")(
        vocabulary=["<pad>", "<unk>", "<start>", "<end>", "a", "dog"], sequence_length=5
    ),
    "CoreWordPieceTokenizer": lambda: _cls("CoreWordPieceTokenizer")(
        vocabulary=["[UNK]", "a", "##b"], lowercase=True, strip_accents=True, sequence_length=4
    ),
    "WordPieceTextTokenizer": lambda: _cls("WordPieceTextTokenizer")(
        vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"], sequence_length=4
    ),
    "PresetTextBackbone": lambda: _cls("PresetTextBackbone")(
        keras_hub.models.BertBackbone(
            vocabulary_size=6,
            num_layers=2,
            num_heads=1,
            hidden_dim=4,
            intermediate_dim=8,
            max_sequence_length=4,
        ),
        trainable_layers=1,
    ),
    "MMBTEncoder": lambda: _cls("MMBTEncoder")(
        keras_hub.models.BertBackbone(
            vocabulary_size=6,
            num_layers=2,
            num_heads=1,
            hidden_dim=4,
            intermediate_dim=8,
            max_sequence_length=8,
        ),
        trainable_layers=1,
    ),
    "PresetImageBackbone": lambda: _cls("PresetImageBackbone")(
        keras_hub.models.ViTBackbone(
            image_shape=(8, 8, 3),
            patch_size=4,
            num_layers=2,
            num_heads=1,
            hidden_dim=4,
            mlp_dim=8,
        ),
        trainable_blocks=1,
    ),
    "AdditiveVisualAttention": lambda: _cls("AdditiveVisualAttention")(hidden_dim=4),
    "BackbonePreprocessing": lambda: _cls("BackbonePreprocessing")(mode="caffe"),
    "ScaleOffset": lambda: _cls("ScaleOffset")(scale=[0.5, 0.25, 0.125], offset=-1.0),
    "MaskedCaptionLoss": lambda: _cls("MaskedCaptionLoss")(label_smoothing=0.1),
    "MaskedTokenAccuracy": lambda: _cls("MaskedTokenAccuracy")(),
    "GRUCaptionDecoder": lambda: _cls("GRUCaptionDecoder")(vocabulary_size=9, hidden_dim=4),
    "LSTMCaptionDecoder": lambda: _cls("LSTMCaptionDecoder")(vocabulary_size=9, hidden_dim=4),
    "TransformerCaptionDecoder": lambda: _cls("TransformerCaptionDecoder")(
        vocabulary_size=9, sequence_length=5, hidden_dim=4, num_heads=2
    ),
    "ConcatFusion": lambda: _cls("ConcatFusion")(),
    "WeightedSumFusion": lambda: _cls("WeightedSumFusion")(),
    "ProductFusion": lambda: _cls("ProductFusion")(),
    "GatedFusion": lambda: _cls("GatedFusion")(output_dim=4),
    "CrossAttentionFusion": lambda: _cls("CrossAttentionFusion")(num_heads=2, key_dim=4),
    "BilinearFusion": lambda: _cls("BilinearFusion")(rank=3, output_dim=4),
    "LogMelSpectrogram": lambda: _cls("LogMelSpectrogram")(num_mel_bins=8),
    "ProjectionHead": lambda: _cls("ProjectionHead")(projection_dim=4, dropout=0.1),
    "ContrastiveLogits": lambda: _cls("ContrastiveLogits")(initial_temperature=0.1),
    "PaddingMask": lambda: _cls("PaddingMask")(pad_id=0),
    "EndTokenPooling": lambda: _cls("EndTokenPooling")(end_token_id=7),
    "InfoNCELoss": lambda: _cls("InfoNCELoss")(),
    "DiscriminativeAdamW": lambda: _cls("DiscriminativeAdamW")(
        learning_rate=1e-3,
        tower_variable_paths=["image_encoder/conv/kernel"],
        tower_learning_rate_scale=0.1,
        tower_frozen_steps=5,
    ),
    "CaptionerTextReader": lambda: _cls("CaptionerTextReader")(
        _cls("TransformerCaptionDecoder")(
            vocabulary_size=9, sequence_length=5, hidden_dim=4, num_heads=2
        ).get_config(),
        grid_shape=(4, 6),
    ),
}


def _import_all_modules() -> None:
    for module in pkgutil.walk_packages(xmodal_keras.__path__, prefix="xmodal_keras."):
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)


def _registered() -> dict[str, type]:
    _import_all_modules()
    prefix = f"{PACKAGE}>"
    return {
        name[len(prefix) :]: obj
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith(prefix)
    }


def _cls(name: str) -> type:
    return _registered()[name]


def test_every_registered_class_has_an_example():
    assert set(_registered()) == set(EXAMPLES)


def test_every_registered_class_deserialises_by_name_in_safe_mode():
    for name, make in EXAMPLES.items():
        original = make()
        config = keras.saving.serialize_keras_object(original)
        assert config["registered_name"] == f"{PACKAGE}>{name}"
        restored = keras.saving.deserialize_keras_object(config, safe_mode=True)
        assert type(restored) is type(original), name
        assert restored.get_config() == original.get_config(), name


def test_tokenizer_works_after_deserialisation():
    tokenizer = EXAMPLES["CaptionTokenizer"]()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tokenizer))
    np.testing.assert_array_equal(
        restored(np.array(["a dog"])).numpy(), tokenizer(np.array(["a dog"])).numpy()
    )


def test_import_refuses_a_non_tensorflow_backend():
    result = subprocess.run(
        [sys.executable, "-c", "import xmodal_keras"],
        env={"KERAS_BACKEND": "numpy", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "xmodal_keras needs the Keras 'tensorflow' backend" in result.stderr
    assert "Received: KERAS_BACKEND='numpy'" in result.stderr
