"""Run directories: the layout of a run folder, its settings round trip and resume check,
and its history."""

from xmodal_keras.runs.history_logger import HistoryLogger
from xmodal_keras.runs.run_directory import RUN_KINDS, RunDirectory, run_kind
from xmodal_keras.runs.run_settings import RunSettings

__all__ = ["RUN_KINDS", "HistoryLogger", "RunDirectory", "RunSettings", "run_kind"]
