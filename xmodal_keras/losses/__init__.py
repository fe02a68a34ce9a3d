"""Losses shared by the models."""

from xmodal_keras.losses.info_nce_loss import InfoNCELoss
from xmodal_keras.losses.masked_caption_loss import MaskedCaptionLoss

__all__ = ["InfoNCELoss", "MaskedCaptionLoss"]
