"""Retrieval: train, evaluate, search with and export a dual-encoder (CLIP-style) run."""

from xmodal_keras.tasks.retrieval.export import export_saved_model
from xmodal_keras.tasks.retrieval.retrieve import (
    evaluate_retrieval,
    load_dual_encoder_run,
    retrieve,
)
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig
from xmodal_keras.tasks.retrieval.train import train_retrieval

__all__ = [
    "RetrievalTrainConfig",
    "evaluate_retrieval",
    "export_saved_model",
    "load_dual_encoder_run",
    "retrieve",
    "train_retrieval",
]
