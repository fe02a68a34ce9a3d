"""Trainable task models, one builder per file."""

from xmodal_keras.models.gru_captioner import build_gru_captioner
from xmodal_keras.models.transformer_captioner import build_transformer_captioner

__all__ = ["build_gru_captioner", "build_transformer_captioner"]
