"""Networks that turn one modality into features (not trained alone)."""

from xmodal_keras.encoders.audio_encoder import AUDIO_INPUT_KINDS, build_audio_encoder
from xmodal_keras.encoders.cnn_image_encoder import (
    IMAGE_BACKBONES,
    IMAGE_ENCODER_NAMES,
    build_image_encoder,
)
from xmodal_keras.encoders.keras_hub_image_encoder import build_keras_hub_image_encoder
from xmodal_keras.encoders.keras_hub_presets import KERAS_HUB_PREFIX, is_keras_hub_preset
from xmodal_keras.encoders.keras_hub_text_encoder import build_keras_hub_text_encoder
from xmodal_keras.encoders.tabular_encoder import build_tabular_encoder, tabular_features
from xmodal_keras.encoders.text_encoder import TEXT_ENCODER_KINDS, build_text_encoder

__all__ = [
    "AUDIO_INPUT_KINDS",
    "IMAGE_BACKBONES",
    "IMAGE_ENCODER_NAMES",
    "KERAS_HUB_PREFIX",
    "TEXT_ENCODER_KINDS",
    "build_audio_encoder",
    "build_image_encoder",
    "build_keras_hub_image_encoder",
    "build_keras_hub_text_encoder",
    "build_tabular_encoder",
    "build_text_encoder",
    "is_keras_hub_preset",
    "tabular_features",
]
