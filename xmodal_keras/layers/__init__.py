"""Building blocks (layers). See README.md in this folder for the papers."""

from xmodal_keras.layers.additive_attention import AdditiveVisualAttention
from xmodal_keras.layers.backbone_preprocessing import BackbonePreprocessing
from xmodal_keras.layers.bilinear_fusion import BilinearFusion
from xmodal_keras.layers.concat_fusion import ConcatFusion
from xmodal_keras.layers.contrastive_logits import ContrastiveLogits
from xmodal_keras.layers.cross_attention_fusion import CrossAttentionFusion
from xmodal_keras.layers.fusion_registry import FUSION_NAMES, get_fusion_layer
from xmodal_keras.layers.gated_fusion import GatedFusion
from xmodal_keras.layers.log_mel_spectrogram import LogMelSpectrogram
from xmodal_keras.layers.padding_mask import PaddingMask
from xmodal_keras.layers.product_fusion import ProductFusion
from xmodal_keras.layers.projection_head import ProjectionHead
from xmodal_keras.layers.scale_offset import ScaleOffset
from xmodal_keras.layers.weighted_sum_fusion import WeightedSumFusion

__all__ = [
    "FUSION_NAMES",
    "AdditiveVisualAttention",
    "BackbonePreprocessing",
    "BilinearFusion",
    "ConcatFusion",
    "ContrastiveLogits",
    "CrossAttentionFusion",
    "GatedFusion",
    "LogMelSpectrogram",
    "PaddingMask",
    "ProductFusion",
    "ProjectionHead",
    "ScaleOffset",
    "WeightedSumFusion",
    "get_fusion_layer",
]
