"""Networks that turn one modality into features (not trained alone)."""

from xmodal_keras.encoders.cnn_image_encoder import (
    IMAGE_BACKBONES,
    IMAGE_ENCODER_NAMES,
    build_image_encoder,
)

__all__ = ["IMAGE_BACKBONES", "IMAGE_ENCODER_NAMES", "build_image_encoder"]
