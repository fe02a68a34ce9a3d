"""Fusion: train, evaluate, compare with baselines and export an image+text classifier run."""

from xmodal_keras.tasks.fusion.evaluate import compare_runs, evaluate_fusion, load_fusion_run
from xmodal_keras.tasks.fusion.export import export_saved_model, export_tflite
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.fusion.train import train_fusion

__all__ = [
    "FusionTrainConfig",
    "compare_runs",
    "evaluate_fusion",
    "export_saved_model",
    "export_tflite",
    "load_fusion_run",
    "train_fusion",
]
