"""Evaluation: COCO caption metrics, shapes scene faithfulness, retrieval recall@K,
classification metrics, plots."""

from xmodal_keras.evaluation.caption_metrics import METRIC_KEYS, compute_caption_metrics
from xmodal_keras.evaluation.caption_results import write_caption_results
from xmodal_keras.evaluation.caption_tokenization import (
    java_available,
    simple_tokenize,
    tokenize_captions,
)
from xmodal_keras.evaluation.classification import (
    binary_auroc,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    plot_confusion_matrix,
)
from xmodal_keras.evaluation.meteor_server import close_meteor
from xmodal_keras.evaluation.plots import (
    plot_attention_map,
    plot_training_curves,
    read_history_csv,
)
from xmodal_keras.evaluation.retrieval import retrieval_recall
from xmodal_keras.evaluation.retrieval_index import RetrievalIndex, build_retrieval_index
from xmodal_keras.evaluation.scene_faithfulness import (
    CaptionClaims,
    FaithfulnessCheck,
    caption_claims,
    caption_faithfulness,
    caption_is_faithful,
    scene_faithfulness,
    scene_faithfulness_details,
)

__all__ = [
    "METRIC_KEYS",
    "CaptionClaims",
    "RetrievalIndex",
    "binary_auroc",
    "build_retrieval_index",
    "classification_metrics",
    "confusion_matrix",
    "macro_f1",
    "plot_confusion_matrix",
    "retrieval_recall",
    "FaithfulnessCheck",
    "caption_claims",
    "caption_faithfulness",
    "caption_is_faithful",
    "close_meteor",
    "compute_caption_metrics",
    "java_available",
    "plot_attention_map",
    "plot_training_curves",
    "read_history_csv",
    "scene_faithfulness",
    "scene_faithfulness_details",
    "simple_tokenize",
    "tokenize_captions",
    "write_caption_results",
]
