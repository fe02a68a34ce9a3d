"""Metrics shared by the models."""

from xmodal_keras.metrics.masked_token_accuracy import MaskedTokenAccuracy

__all__ = ["MaskedTokenAccuracy"]
