"""Training, for every task: distribution strategy, the fit driver, precision,
learning-rate schedules and range test, compile helpers and callbacks."""

from xmodal_keras.training.callbacks import CaptionMetricsCallback
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.compile_dual_encoder import compile_dual_encoder
from xmodal_keras.training.compile_multitask_captioner import compile_multitask_captioner
from xmodal_keras.training.distribute import STRATEGY_NAMES, fit_under, get_strategy, worker_info
from xmodal_keras.training.schedules import make_learning_rate_schedule

__all__ = [
    "STRATEGY_NAMES",
    "CaptionMetricsCallback",
    "compile_captioner",
    "compile_dual_encoder",
    "compile_multitask_captioner",
    "fit_under",
    "get_strategy",
    "make_learning_rate_schedule",
    "worker_info",
]
