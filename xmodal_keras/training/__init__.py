"""Training helpers: distribution strategy and learning-rate schedules."""

from xmodal_keras.training.distribute import STRATEGY_NAMES, get_strategy
from xmodal_keras.training.schedules import make_learning_rate_schedule

__all__ = ["STRATEGY_NAMES", "get_strategy", "make_learning_rate_schedule"]
