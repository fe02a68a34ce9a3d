"""Evaluation: COCO caption metrics (later: retrieval, classification, plots)."""

from xmodal_keras.evaluation.caption_metrics import (
    METRIC_KEYS,
    close_meteor,
    compute_caption_metrics,
    java_available,
    simple_tokenize,
    tokenize_captions,
    write_caption_results,
)

__all__ = [
    "METRIC_KEYS",
    "close_meteor",
    "compute_caption_metrics",
    "java_available",
    "simple_tokenize",
    "tokenize_captions",
    "write_caption_results",
]
