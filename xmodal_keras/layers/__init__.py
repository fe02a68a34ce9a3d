"""Building blocks (layers). See README.md in this folder for the papers."""

from xmodal_keras.layers.additive_attention import AdditiveVisualAttention
from xmodal_keras.layers.backbone_preprocessing import BackbonePreprocessing

__all__ = ["AdditiveVisualAttention", "BackbonePreprocessing"]
