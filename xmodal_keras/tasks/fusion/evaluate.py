"""A trained fusion run: `load_fusion_run`, classification metrics on a split
(`evaluate_fusion`), and the fusion-vs-baselines comparison (`compare_runs`)."""

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from xmodal_keras.atomic_files import atomic_write_text
from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.evaluation.classification import (
    classification_metrics,
    plot_confusion_matrix,
)
from xmodal_keras.runs.run_directory import MODEL_FILE, RunDirectory
from xmodal_keras.tasks.fusion.data import labelled, make_fusion_dataset, read_pair_data
from xmodal_keras.tasks.fusion.settings import EVALUATION_SPLITS, SPLITS, FusionTrainConfig
from xmodal_keras.tasks.retrieval.run_tokenizer import TextTokenizer, load_run_tokenizer

COMPARISON_FILE = "comparison.json"


FIT_FILE = "fit.json"


def is_fusion_run(run_dir: str | os.PathLike | RunDirectory) -> bool:
    """True when the run directory's `config.json` is a `FusionTrainConfig` (for `evaluate`)."""
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    if not run.has_config():
        return False
    config = run.read_config()
    return "fusion" in config and "modalities" in config


def classification_metrics_dir(run: RunDirectory, split: str, *, data=None) -> pathlib.Path:
    """`metrics/<split>_classification/` of a run (under `metrics/data_<name>/` for other
    `data` than the run's)."""
    return run.evaluation_dir(data) / f"{split}_classification"


def load_fusion_run(run_dir: str | os.PathLike | RunDirectory):
    """Load a trained fusion run: `(model, tokenizer, config)`."""
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    config = FusionTrainConfig.from_dict(run.read_config())
    if not run.model_path.is_file():
        raise FileNotFoundError(
            f"No trained model in {run.path}: {MODEL_FILE} is missing (training did not finish; "
            "run the same `xmodal train fusion` command again to resume)"
        )
    # No optimizer: loading is for inference, export and transfer. (A KerasHub image backbone
    # rebuilds its layers trainable, so a partly frozen run's optimizer state would not fit.)
    model = keras.saving.load_model(run.model_path, safe_mode=True, compile=False)
    return model, load_run_tokenizer(run, config), config


def evaluate_fusion(
    run_dir: str | os.PathLike | RunDirectory,
    *,
    splits: Sequence[str] = EVALUATION_SPLITS,
    model: keras.Model | None = None,
    tokenizer: TextTokenizer | None = None,
    config: FusionTrainConfig | None = None,
    frame: pd.DataFrame | None = None,
    data: str | None = None,
    data_format: str = "auto",
) -> dict[str, dict]:
    """Evaluate a fusion run on its labelled `splits`; writes
    `metrics/<split>_classification/{metrics.json, confusion_matrix.png}`.

    `xmodal evaluate RUN` calls it for fusion runs (`is_fusion_run`); `train_fusion`
    passes its model, tokenizer, config and frame to skip reloading. With `data` (pair
    data, as `--data` of training, read with `data_format`) that data is scored instead
    of the run's, after its images are checked, into `metrics/data_<name>/`.

    Returns:
        `{split: classification_metrics(...)}` for the splits that have labels.
    """
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    if model is None or tokenizer is None or config is None:
        model, tokenizer, config = load_fusion_run(run)
    if data is not None:
        config = dataclasses.replace(config, data=data, format=data_format)
        frame = read_pair_data(config)
        preflight_images(frame, source=data)
    frame = read_pair_data(config) if frame is None else frame
    num_classes = max(2, int(frame.label.max()) + 1)
    results = {}
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"`splits` must be from {SPLITS}. Received: split={split!r}")
        rows = labelled(frame, split)
        if rows.empty:
            continue
        batches = make_fusion_dataset(
            rows,
            tokenizer,
            modalities=config.modalities,
            image_size=(config.image_size, config.image_size),
            batch_size=config.batch_size,
            **config.side_inputs,
        )
        probabilities, labels = [], []
        for inputs, batch_labels in batches:
            probabilities.append(np.asarray(model(inputs, training=False)))
            labels.append(batch_labels.numpy())
        metrics = classification_metrics(
            np.concatenate(labels), np.concatenate(probabilities), num_classes=num_classes
        )
        folder = classification_metrics_dir(run, split, data=data)
        folder.mkdir(parents=True, exist_ok=True)
        serializable = {k: _finite_or_none(v) for k, v in metrics.items()}
        atomic_write_text(
            folder / "metrics.json", json.dumps(serializable, indent=2, sort_keys=True) + "\n"
        )
        plot_confusion_matrix(
            metrics["confusion_matrix"],
            folder / "confusion_matrix.png",
            title=f"{'+'.join(config.modalities)} · {split}",
        )
        results[split] = metrics
    return results


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def compare_runs(runs: dict[str, RunDirectory]) -> dict[str, dict[str, dict]]:
    """`{split: {run name: {accuracy, macro_f1, auroc, params}}}` from finished runs."""
    comparison: dict[str, dict[str, dict]] = {}
    for name, run in runs.items():
        fit_path = run.metrics_dir / FIT_FILE
        params = json.loads(fit_path.read_text())["params"] if fit_path.is_file() else None
        for split in EVALUATION_SPLITS:
            path = classification_metrics_dir(run, split) / "metrics.json"
            if path.is_file():
                metrics = json.loads(path.read_text())
                comparison.setdefault(split, {})[name] = {
                    "accuracy": metrics["accuracy"],
                    "macro_f1": metrics["macro_f1"],
                    "auroc": metrics["auroc"],
                    "params": params,
                }
    return comparison


def format_comparison(comparison: dict[str, dict[str, dict]]) -> str:
    """A plain-text table: one row per split and model (fusion first, then baselines)."""
    lines = [f"{'split':<6} {'model':<12} {'accuracy':>9} {'macro F1':>9} {'AUROC':>7}"]
    for split, models in comparison.items():
        for name, m in models.items():
            auroc = "n/a" if m["auroc"] is None else f"{m['auroc']:.3f}"
            lines.append(
                f"{split:<6} {name:<12} {m['accuracy']:>9.3f} {m['macro_f1']:>9.3f} {auroc:>7}"
            )
    return "\n".join(lines)
