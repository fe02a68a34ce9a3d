"""Training helpers: distribution strategy, learning-rate schedules and callbacks."""

from xmodal_keras.training.callbacks import CaptionMetricsCallback
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.compile_dual_encoder import compile_dual_encoder
from xmodal_keras.training.compile_multitask_captioner import compile_multitask_captioner
from xmodal_keras.training.distribute import (
    STRATEGY_NAMES,
    fit_under,
    get_strategy,
    worker_info,
)
from xmodal_keras.training.run_directory import RunDirectory, load_captioner
from xmodal_keras.training.schedules import make_learning_rate_schedule
from xmodal_keras.training.train_captioner import CaptionerTrainConfig, train_captioner
from xmodal_keras.training.train_fusion import (
    FusionTrainConfig,
    evaluate_fusion,
    load_fusion_run,
    train_fusion,
)
from xmodal_keras.training.train_retrieval import (
    RetrievalTrainConfig,
    load_dual_encoder_run,
    retrieve,
    train_retrieval,
)

__all__ = [
    "STRATEGY_NAMES",
    "CaptionMetricsCallback",
    "CaptionerTrainConfig",
    "FusionTrainConfig",
    "RetrievalTrainConfig",
    "RunDirectory",
    "compile_captioner",
    "compile_dual_encoder",
    "compile_multitask_captioner",
    "evaluate_fusion",
    "load_fusion_run",
    "train_fusion",
    "load_dual_encoder_run",
    "retrieve",
    "train_retrieval",
    "load_captioner",
    "train_captioner",
    "fit_under",
    "get_strategy",
    "worker_info",
    "make_learning_rate_schedule",
]
