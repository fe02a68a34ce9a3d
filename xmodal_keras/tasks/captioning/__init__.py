"""Captioning: train, evaluate, tune, caption with and export a captioner run."""

from xmodal_keras.tasks.captioning.evaluate import evaluate_captioner, format_metrics_table
from xmodal_keras.tasks.captioning.export import export_saved_model, export_tflite
from xmodal_keras.tasks.captioning.predict import caption_image_files, load_captioner
from xmodal_keras.tasks.captioning.settings import DEMO_CONFIG, CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import train_captioner
from xmodal_keras.tasks.captioning.tune import tune_captioner

__all__ = [
    "DEMO_CONFIG",
    "CaptionerTrainConfig",
    "caption_image_files",
    "evaluate_captioner",
    "export_saved_model",
    "export_tflite",
    "format_metrics_table",
    "load_captioner",
    "train_captioner",
    "tune_captioner",
]
