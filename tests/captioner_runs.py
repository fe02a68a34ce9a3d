"""A tiny trained captioner run, trained once per test session and shared by the captioner
test files (a fit costs ~15-30 s of tracing on 2 CPU cores, whatever the size)."""

import contextlib
import io
import os
import pathlib
import subprocess
import sys

from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.captioning.train import train_captioner

# 40 images (tiny_shapes_dir): ~32 in train -> 160 captions -> 2 steps of 80.
# small_cnn: its three conv layers trace fastest (residual_cnn, the default, has its own
# tests in tests/encoders and a tiny export in tests/export/test_saved_model_export.py).
# The optimisation settings the tiny runs were written for (the defaults are 2e-3 and 0.1).
TINY_SETTINGS = {
    "decoder": "gru",
    "encoder": "small_cnn",
    "learning_rate": 1e-3,
    "label_smoothing": 0.0,
    "image_size": 32,
    "encoder_hidden_dim": 8,
    "embedding_dim": 8,
    "hidden_dim": 8,
    "num_layers": 1,
    "num_heads": 1,
    "epochs": 1,
    "batch_size": 80,
    # What the tiny runs were written for; "auto" (mixed_bfloat16 on AMX CPUs) has its
    # own tests in tests/training/test_precision.py and tests/export/test_float32_model.py.
    "precision": "float32",
    "val_metrics_every": 0,
}
# The shared run also logs val BLEU-4 / CIDEr.
SHARED_RUN_SETTINGS = {**TINY_SETTINGS, "val_metrics_every": 1, "val_metrics_images": 4}

_RUNS: dict[str, tuple[RunDirectory, str]] = {}
_SAVED_MODELS: dict[str, pathlib.Path] = {}


def tiny_config(data, **overrides) -> CaptionerTrainConfig:
    return CaptionerTrainConfig(data=str(data), **{**TINY_SETTINGS, **overrides})


def shared_tiny_run(data: pathlib.Path, tmp_path_factory) -> tuple[RunDirectory, str]:
    """(run directory, what training printed) of a GRU run on `data`, trained once."""
    key = str(data)
    if key not in _RUNS:
        out = tmp_path_factory.mktemp("shared_run") / "run"
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            run = train_captioner(tiny_config(data, **SHARED_RUN_SETTINGS), out, verbose=0)
        _RUNS[key] = (run, printed.getvalue())
    return _RUNS[key]


def shared_saved_model(data: pathlib.Path, tmp_path_factory) -> pathlib.Path:
    """The shared run exported for TF Serving by the `xmodal export` command in a fresh
    process, as users export: `BASE/gru/1`, exported once. Read it or copy it; do not
    write into its base folder."""
    key = str(data)
    if key not in _SAVED_MODELS:
        run, _ = shared_tiny_run(data, tmp_path_factory)
        base = tmp_path_factory.mktemp("shared_saved_models")
        command = [sys.executable, "-m", "xmodal_keras", "export", os.fspath(run.path)]
        done = subprocess.run(
            [*command, "--out", str(base), "--name", "gru"],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"exported {base / 'gru' / '1'}" in done.stdout
        _SAVED_MODELS[key] = base / "gru" / "1"
    return _SAVED_MODELS[key]


def untrained_run(data: pathlib.Path, out: pathlib.Path, **overrides) -> RunDirectory:
    """A run directory holding an untrained tiny captioner (no fit: for export tests,
    where only the graph matters, not what the weights learned)."""
    from xmodal_keras.data.text_tokenizer import CaptionTokenizer
    from xmodal_keras.tasks.captioning.data import read_caption_data
    from xmodal_keras.tasks.captioning.train import build_captioner_from_config

    config = tiny_config(data, sequence_length=12, **overrides)
    tokenizer = CaptionTokenizer.from_captions(
        read_caption_data(config)["caption"], sequence_length=config.sequence_length
    )
    model = build_captioner_from_config(config, tokenizer.vocabulary_size)
    run = RunDirectory(out).create()
    run.write_config(config)
    run.save_vocabulary(tokenizer)
    run.save_model(model)
    return run
