"""Trainable task models, one builder per file."""

from xmodal_keras.models.captioner_transfer import build_fusion_classifier_from_captioner
from xmodal_keras.models.clip_dual_encoder import build_dual_encoder_from_clip
from xmodal_keras.models.cross_modal_autoencoder import (
    build_cross_modal_autoencoder,
    cross_modal_autoencoder_targets,
    shared_code_model,
)
from xmodal_keras.models.dual_encoder import (
    build_dual_encoder,
    build_image_tower,
    build_text_tower,
)
from xmodal_keras.models.dual_encoder_transfer import (
    build_fusion_classifier_from_dual_encoder,
    transfer_weights_by_name,
)
from xmodal_keras.models.fusion_classifier import (
    CLASSIFIER_FUSIONS,
    MODALITIES,
    build_fusion_classifier,
    classifier_loss,
)
from xmodal_keras.models.gru_captioner import build_gru_captioner
from xmodal_keras.models.lstm_captioner import build_lstm_captioner
from xmodal_keras.models.multitask_captioner import (
    build_multitask_captioner,
    captioner_from_multitask,
    multitask_captioner_targets,
    multitask_retrieval_towers,
)
from xmodal_keras.models.transformer_captioner import build_transformer_captioner

__all__ = [
    "CLASSIFIER_FUSIONS",
    "MODALITIES",
    "build_cross_modal_autoencoder",
    "build_dual_encoder",
    "build_dual_encoder_from_clip",
    "build_fusion_classifier",
    "build_fusion_classifier_from_captioner",
    "build_fusion_classifier_from_dual_encoder",
    "build_gru_captioner",
    "build_image_tower",
    "build_lstm_captioner",
    "build_multitask_captioner",
    "build_text_tower",
    "build_transformer_captioner",
    "captioner_from_multitask",
    "classifier_loss",
    "cross_modal_autoencoder_targets",
    "multitask_captioner_targets",
    "multitask_retrieval_towers",
    "shared_code_model",
    "transfer_weights_by_name",
]
