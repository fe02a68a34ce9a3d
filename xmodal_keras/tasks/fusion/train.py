"""`train_fusion`: image-text pairs -> fusion classifier -> `model.fit` -> run directory.

The data is the built-in shapes statement-verification task (`"shapes-verify"`: each
image with one true and one false statement, so image-only and text-only models are at
chance) or any pair dataset `read_pairs` reads (Hateful-Memes JSONL folder, pair CSV).
A pair CSV's extra columns can be side inputs: `numeric_columns` / `categorical_columns`
(the `"tabular"` modality) and `audio_column`, WAV file paths (the `"audio"` modality).
The run directory is the captioner's layout (`RunDirectory`) plus:

```
RUN/
  metrics/<split>_classification/metrics.json   accuracy, macro F1, AUROC, confusion matrix
  metrics/<split>_classification/confusion_matrix.png
  metrics/fit.json                              train time, pairs/s, parameters
  metrics/comparison.json                       with baselines: fusion vs image-only / text-only
  baselines/image_only/, baselines/text_only/   the unimodal runs (same layout)
```

Running `train_fusion` again on the same run directory resumes it (BackupAndRestore);
finished baselines are reused.

Transfer: with `init_from=RUN` the classifier starts from a trained run and uses its
vocabulary as it is; the encoder settings are that run's and the baselines start from the
same layers. A retrieval run (`train_retrieval`): the encoders and projection heads start
from the dual encoder's towers (`build_fusion_classifier_from_dual_encoder`). A Transformer
captioner run (`train_captioner`): the captioner's image encoder and decoder read the
text against the image, as cross-attention fusion (`build_fusion_classifier_from_captioner`).

Example (seconds; 32x32 shapes, tiny model):

>>> import tempfile
>>> config = FusionTrainConfig(shapes_num_images=40, shapes_image_size=32, image_size=32,
...     encoder_hidden_dim=8, embedding_dim=8, hidden_dim=8, projection_dim=8, epochs=1,
...     batch_size=8, baselines=True)
>>> run = train_fusion(config, tempfile.mkdtemp(), verbose=0)  # doctest: +SKIP
>>> sorted(json.loads((run.metrics_dir / "comparison.json").read_text())["test"])  # doctest: +SKIP
['fusion', 'image_only', 'text_only']
"""

import functools
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.atomic_files import atomic_write_text
from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.sharding import shard_by
from xmodal_keras.encoders.cnn_image_encoder import FROM_SCRATCH_ENCODERS
from xmodal_keras.models.captioner_transfer import build_fusion_classifier_from_captioner
from xmodal_keras.models.dual_encoder_transfer import build_fusion_classifier_from_dual_encoder
from xmodal_keras.models.fusion_classifier import (
    build_fusion_classifier,
    classifier_loss,
)
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.predict import load_captioner
from xmodal_keras.tasks.fusion.data import (
    balanced_class_weight,
    labelled,
    make_fusion_dataset,
    read_pair_data,
    vocabulary_coverage,
)
from xmodal_keras.tasks.fusion.evaluate import (
    COMPARISON_FILE,
    FIT_FILE,
    classification_metrics_dir,
    compare_runs,
    evaluate_fusion,
    format_comparison,
)
from xmodal_keras.tasks.fusion.settings import (
    BASELINES,
    EVALUATION_SPLITS,
    FusionTrainConfig,
    read_init_from_settings,
)
from xmodal_keras.tasks.retrieval.retrieve import load_dual_encoder_run
from xmodal_keras.tasks.retrieval.run_tokenizer import (
    TextTokenizer,
    run_tokenizer,
    save_run_tokenizer,
)
from xmodal_keras.training.distribute import get_strategy, strategy_name
from xmodal_keras.training.fit_driver import fit_run, is_chief
from xmodal_keras.training.precision import dtype_policy
from xmodal_keras.training.schedules import make_adamw_optimizer
from xmodal_keras.training.tower_fine_tuning import TowerFineTuning

"""Modalities the trainer feeds: image, text, and the side inputs audio and tabular."""


"""Unimodal baselines trained beside the fusion model: name -> modalities (side inputs off)."""


BASELINES_DIR = "baselines"


"""Run kinds `init_from` accepts."""


def build_fusion_model_from_config(
    config: FusionTrainConfig,
    vocabulary_size: int,
    num_classes: int,
    init_model: keras.Model | None = None,
    *,
    frame: pd.DataFrame | None = None,
) -> keras.Model:
    """The (untrained) fusion classifier the settings describe.

    With `init_model` (the `init_from` run's model, `load_init_from_run`): a dual encoder's
    towers start the encoders and projection heads
    (`build_fusion_classifier_from_dual_encoder`); a captioner's image encoder and decoder
    read the text against the image (`build_fusion_classifier_from_captioner`). A
    `"tabular"` model needs the pair `frame`: its encoder is adapted on the frame's train
    split. The layers compute in the settings' `precision` (mixed: 16 bits, float32
    variables and probabilities).
    """
    config = config.resolved()
    build = functools.partial(
        _build_fusion_model, config, vocabulary_size, num_classes, init_model, frame=frame
    )
    with dtype_policy(config.precision):
        return build()


def _build_fusion_model(
    config: FusionTrainConfig,
    vocabulary_size: int,
    num_classes: int,
    init_model: keras.Model | None,
    *,
    frame: pd.DataFrame | None,
) -> keras.Model:
    if "tabular" in config.modalities and frame is None:
        raise ValueError(
            "A model with the 'tabular' modality needs the pair `frame` (its train split "
            "adapts the normalisation and vocabularies). Received: frame=None"
        )
    name = (
        "fusion_classifier" if len(config.modalities) > 1 else f"{config.modalities[0]}_classifier"
    )
    if init_model is not None and read_init_from_settings(config.init_from)[0] == "captioner":
        return build_fusion_classifier_from_captioner(
            init_model,
            num_classes=num_classes,
            modalities=config.modalities,
            hidden_dim=config.head_hidden_dim or config.projection_dim,
            dropout=config.dropout,
            name=name,
        )
    if init_model is not None:
        return build_fusion_classifier_from_dual_encoder(
            init_model,
            num_classes=num_classes,
            fusion=config.fusion,
            projection_dim=config.projection_dim,
            modalities=config.modalities,
            hidden_dim=config.head_hidden_dim,
            dropout=config.dropout,
            name=name,
        )
    modalities: dict[str, dict] = {}
    if "image" in config.modalities:
        image: dict[str, Any] = {
            "name": config.encoder,
            "image_shape": (config.image_size, config.image_size, 3),
        }
        if config.encoder in FROM_SCRATCH_ENCODERS:
            image.update(hidden_dim=config.encoder_hidden_dim, num_layers=config.encoder_num_layers)
        else:
            image.update(weights=config.weights, trainable_blocks=config.trainable_blocks)
        modalities["image"] = image
    if "text" in config.modalities:
        modalities["text"] = {
            "vocabulary_size": vocabulary_size,
            "sequence_length": config.sequence_length,
            "embedding_dim": config.embedding_dim,
            "hidden_dim": config.hidden_dim,
            "kind": config.text_encoder,
            "num_layers": config.num_layers,
            "num_heads": config.num_heads,
            "dropout": config.dropout,
            "trainable_layers": config.text_trainable_layers,
        }
    if "audio" in config.modalities:
        modalities["audio"] = {
            "num_samples": config.audio_samples,
            "sample_rate": config.audio_sample_rate,
            "frame_length": max(1, round(0.025 * config.audio_sample_rate)),
            "frame_step": max(1, round(0.010 * config.audio_sample_rate)),
            "num_mel_bins": config.audio_num_mel_bins,
            "hidden_dim": config.audio_hidden_dim,
        }
    if "tabular" in config.modalities:
        modalities["tabular"] = {
            "frame": frame,
            "numeric_columns": config.numeric_columns,
            "categorical_columns": config.categorical_columns,
            "embedding_dim": config.tabular_embedding_dim,
            "hidden_dim": config.tabular_hidden_dim,
        }
    return build_fusion_classifier(
        modalities=modalities,
        num_classes=num_classes,
        fusion=config.fusion,
        projection_dim=config.projection_dim,
        hidden_dim=config.head_hidden_dim,
        dropout=config.dropout,
        name=name,
    )


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _compile(model: keras.Model, config: FusionTrainConfig, steps_per_epoch: int, num_classes: int):
    binary = num_classes == 2
    towers = TowerFineTuning.from_settings(config, steps_per_epoch, model)
    metrics = (
        [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auroc")]
        if binary
        else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    )
    model.compile(
        optimizer=make_adamw_optimizer(
            learning_rate=config.learning_rate,
            total_steps=config.epochs * steps_per_epoch,
            warmup_steps=None,
            weight_decay=1e-4,
            clipnorm=1.0,
            towers=towers.optimizer_arguments(model),
        ),
        loss=classifier_loss(num_classes=num_classes),
        metrics=metrics,
        jit_compile=config.jit_compile,
    )


def train_fusion(
    config: FusionTrainConfig,
    out_dir: str | os.PathLike,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> RunDirectory:
    """Train a fusion classifier with `model.fit` and write a run directory.

    Checks that `out_dir` can be written, reads the pairs (side inputs checked), checks
    every image (`preflight_images`), builds the vocabulary on the train texts, makes
    repeated, cached `tf.data` pipelines of `({"images", "token_ids"}, label)` (plus
    `"audio"` and `"tabular"` with those modalities), builds and compiles the
    model in the strategy's scope and fits it (`steps_per_epoch`, the run directory's
    callbacks and TensorBoard logs: `fit_run`). Then saves `model.keras`,
    evaluates val and test (`metrics/<split>_classification/`) and prints a summary.
    With `config.baselines`, image-only and text-only runs (no side inputs) are trained in
    `RUN/baselines/` and compared in `metrics/comparison.json` and a printed table.

    Args:
        config: the run settings.
        out_dir: the run directory (created; an existing run there is resumed).
        callbacks: extra Keras callbacks.
        verbose: `model.fit` verbosity. Defaults to `"auto"`.

    Returns:
        The `RunDirectory`.
    """
    strategy = get_strategy(config.strategy)  # multi-worker: before any other TF op
    run = RunDirectory(out_dir).check_writable()
    config = config.for_run(run).resolved()
    _warn_about_other_shapes_data(config)
    frame = read_pair_data(config)
    preflight_images(frame, source=config.data)
    train_run = functools.partial(_train_one, frame=frame, strategy=strategy, verbose=verbose)
    run = train_run(config, out_dir, callbacks=callbacks)
    if config.baselines and len(config.modalities) > 1:
        runs = {"fusion": run}
        for name, modalities in BASELINES.items():
            baseline = config.unimodal(modalities)
            path = run.path / BASELINES_DIR / name
            done = RunDirectory(path).model_path.is_file() and all(
                (classification_metrics_dir(RunDirectory(path), s) / "metrics.json").is_file()
                for s in EVALUATION_SPLITS
                if not labelled(frame, s).empty
            )
            if done:
                baseline.check_resumable(RunDirectory(path))
                runs[name] = RunDirectory(path)
            else:
                runs[name] = train_run(baseline, path, callbacks=())
        if not is_chief(strategy):
            return run
        comparison = compare_runs(runs)
        path = run.metrics_dir / COMPARISON_FILE
        atomic_write_text(path, json.dumps(comparison, indent=2, sort_keys=True) + "\n")
        print(format_comparison(comparison), flush=True)
    return run


_SHAPES_FIELDS = ("shapes_num_images", "shapes_image_size", "shapes_seed")


def _warn_about_other_shapes_data(config: FusionTrainConfig) -> None:
    """Print a warning when `init_from` trained on other shapes data than this run's: its
    train images may then be in this run's val and test splits (an optimistic score)."""
    if config.init_from is None or not config.is_shapes:
        return
    _, source = read_init_from_settings(config.init_from)
    theirs = {name: source.get(name) for name in _SHAPES_FIELDS}
    ours = {name: getattr(config, name) for name in _SHAPES_FIELDS}
    if source.get("data") == "shapes" and theirs != ours:
        print(
            f"warning: {config.init_from} trained on other shapes data ({theirs}) than this "
            f"run ({ours}); its training images may be in this run's val and test splits. "
            "Use the same shapes settings for a fair test score.",
            flush=True,
        )


def _train_one(
    config: FusionTrainConfig,
    out_dir: str | os.PathLike,
    *,
    frame: pd.DataFrame,
    strategy: tf.distribute.Strategy,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: str | int,
) -> RunDirectory:
    run = RunDirectory(out_dir)
    if run.has_config():
        config.check_resumable(run)
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    train, val = labelled(frame, "train"), labelled(frame, "val")
    if train.empty:
        raise ValueError(
            f"The data has no labelled 'train' pairs. Received: data={config.data!r} with "
            f"splits {sorted(frame.split.unique())}"
        )
    num_classes = max(2, int(frame.label.max()) + 1)
    chief = is_chief(strategy)
    init_model = None
    if config.init_from is not None:
        init_model, tokenizer = load_init_from_run(config.init_from)
    else:
        tokenizer = run_tokenizer(run, train.text, config)
    coverage = vocabulary_coverage(tokenizer, train.text)
    if chief:
        run.create()
        save_run_tokenizer(run, tokenizer)
        run.write_config(config.to_config())

    image_size = (config.image_size, config.image_size)
    counts = np.bincount(train.label.to_numpy(np.int64), minlength=num_classes)
    print(
        f"data: {len(train)} train / {len(val)} val pairs, labels {counts.tolist()}, "
        f"vocabulary {tokenizer.vocabulary_size} (covers {coverage:.1%} of train words) | "
        f"modalities {'+'.join(config.modalities)}, "
        f"fusion {config.fusion if len(config.modalities) > 1 else '-'}"
        f"{f' from {config.init_from}' if config.init_from else ''} | "
        f"{strategy_name(strategy)}, global batch {config.batch_size} | precision "
        f"{config.precision}" + (", XLA" if config.jit_compile else ""),
        flush=True,
    )

    def dataset(rows, **kwargs):
        made = make_fusion_dataset(
            rows,
            tokenizer,
            modalities=config.modalities,
            image_size=image_size,
            batch_size=config.batch_size,
            seed=config.seed,
            cache=True,
            repeat=True,
            **config.side_inputs,
            **kwargs,
        )
        return shard_by(made, "data")

    steps_per_epoch = max(1, math.ceil(len(train) / config.batch_size))
    fit_kwargs: dict[str, Any] = {}
    if not val.empty:
        fit_kwargs["validation_data"] = dataset(val, shuffle=False)
        fit_kwargs["validation_steps"] = math.ceil(len(val) / config.batch_size)
    if config.class_weight == "balanced":
        fit_kwargs["class_weight"] = balanced_class_weight(train.label, num_classes)

    with strategy.scope():
        model = build_fusion_model_from_config(
            config, tokenizer.vocabulary_size, num_classes, init_model, frame=frame
        )
        _compile(model, config, steps_per_epoch, num_classes)
    timer = _EpochTimer()
    history = fit_run(
        model,
        run,
        dataset(train, shuffle=True),
        strategy=strategy,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        monitor="val_loss" if not val.empty else "loss",
        fit_kwargs=fit_kwargs,
        callbacks=[timer, *callbacks],
        verbose=verbose,
    )
    if not chief:
        return run
    # Epochs after the first: the first one also decodes and caches the images.
    timed = timer.seconds[1:] or timer.seconds
    fit = {
        "epochs_run": len(history.epoch),
        "fit_seconds": float(sum(timer.seconds)),
        "train_pairs_per_second": (
            float(steps_per_epoch * config.batch_size * len(timed) / sum(timed)) if timed else None
        ),
        "params": int(model.count_params()),
        "num_classes": num_classes,
        "vocabulary_coverage": coverage,
        "init_from": config.init_from,
    }
    atomic_write_text(run.metrics_dir / FIT_FILE, json.dumps(fit, indent=2) + "\n")

    results = evaluate_fusion(run, model=model, tokenizer=tokenizer, config=config, frame=frame)
    shown = [
        f"{split} acc {m['accuracy']:.3f} AUROC {m['auroc']:.3f} F1 {m['macro_f1']:.3f}"
        for split, m in results.items()
    ]
    seconds = time.perf_counter() - start
    print(
        f"trained {'+'.join(config.modalities)} ({config.fusion}) {config.epochs} epochs in "
        f"{seconds:.0f} s, {fit['params']:,} params | {'; '.join(shown) or 'no val/test labels'}"
        f" | run: {run.path}",
        flush=True,
    )
    return run


def load_init_from_run(run_dir: str | os.PathLike) -> tuple[keras.Model, TextTokenizer]:
    """`(model, tokenizer)` of a run `init_from` accepts (`read_init_from_settings`)."""
    kind, _ = read_init_from_settings(run_dir)
    loaded = load_captioner(run_dir) if kind == "captioner" else load_dual_encoder_run(run_dir)
    return loaded[0], loaded[1]
