"""Tiny retrieval and fusion settings, and a tiny trained retrieval run shared by the test
files that need one (tests/tasks/retrieval, the fusion `init_from` tests): trained once per
test session, as `captioner_runs.shared_tiny_run` is for captioners."""

import pathlib

from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.fusion.settings import FusionTrainConfig
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig

TOWERS = {
    "image_size": 32,
    "encoder_hidden_dim": 8,
    "encoder_num_layers": 2,
    "embedding_dim": 8,
    "hidden_dim": 8,
    "projection_dim": 8,
    "epochs": 1,
    "batch_size": 16,
    "strategy": "default",
    "precision": "float32",  # "auto" (bfloat16 on AMX CPUs): tests/training/test_precision.py
}
# The shared run's text tower is wider than the fusion default (8), so that a fusion run
# started from it (`init_from`) shows that it takes the run's settings.
SHARED_RETRIEVAL_SETTINGS = {"hidden_dim": 12}

_RUNS: dict[str, RunDirectory] = {}


def retrieval_config(data, **overrides) -> RetrievalTrainConfig:
    return RetrievalTrainConfig(data=str(data), **{**TOWERS, **overrides})


def fusion_config(data, **overrides) -> FusionTrainConfig:
    return FusionTrainConfig(data=str(data), **{**TOWERS, "baselines": True, **overrides})


def shared_retrieval_config(data) -> RetrievalTrainConfig:
    return retrieval_config(data, **SHARED_RETRIEVAL_SETTINGS)


def shared_retrieval_run(data: pathlib.Path, tmp_path_factory) -> RunDirectory:
    """A finished tiny retrieval run on `data` (`shared_retrieval_config`), trained once.
    Tests may add evaluations to it, not train it further."""
    from xmodal_keras.tasks.retrieval.train import train_retrieval

    key = str(data)
    if key not in _RUNS:
        out = tmp_path_factory.mktemp("shared_retrieval") / "run"
        _RUNS[key] = train_retrieval(shared_retrieval_config(data), out, verbose=0)
    return _RUNS[key]
