"""Training helpers: distribution strategy, learning-rate schedules and callbacks."""

from xmodal_keras.training.callbacks import CaptionMetricsCallback
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.distribute import STRATEGY_NAMES, get_strategy
from xmodal_keras.training.run_directory import RunDirectory, load_captioner
from xmodal_keras.training.schedules import make_learning_rate_schedule
from xmodal_keras.training.train_captioner import CaptionerTrainConfig, train_captioner

__all__ = [
    "STRATEGY_NAMES",
    "CaptionMetricsCallback",
    "CaptionerTrainConfig",
    "RunDirectory",
    "compile_captioner",
    "load_captioner",
    "train_captioner",
    "get_strategy",
    "make_learning_rate_schedule",
]
