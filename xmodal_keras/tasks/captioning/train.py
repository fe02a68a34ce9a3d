"""`train_captioner`: data -> tokenizer -> tf.data -> model -> `model.fit` -> run directory.

The run settings are one dataclass, `CaptionerTrainConfig` (`settings.py`), written to the
run directory as `config.json`; the architecture travels inside `model.keras`.

Running `train_captioner` again on the same run directory resumes it: the
`BackupAndRestore` state in `backup/` restores the weights, optimizer and epoch count, and
`history.csv` is appended to. With a larger `epochs` a finished run trains further.

Scaling out: `strategy` picks a `tf.distribute` strategy (`get_strategy`); `batch_size` is
per replica and the global batch is `batch_size x replicas`. Under a multi-worker strategy
every worker runs the same command with its own `TF_CONFIG`; only the chief writes the run
directory, the other workers write to temporary folders (deleted at the end) and keep their
`BackupAndRestore` state in `backup/worker_<id>/` so a restarted cluster resumes together.
"""

import math
import os
import pathlib
import time
from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.data.tfrecords import (
    read_tfrecord_images,
)
from xmodal_keras.encoders.cnn_image_encoder import FROM_SCRATCH_ENCODERS
from xmodal_keras.models import (
    build_gru_captioner,
    build_lstm_captioner,
    build_transformer_captioner,
)
from xmodal_keras.runs.run_directory import RunDirectory
from xmodal_keras.tasks.captioning.data import (
    data_name,
    make_train_datasets,
    read_caption_data,
    tfrecord_dir,
    tokenizer_from_captions,
)
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.training.callbacks import CaptionMetricsCallback
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.distribute import get_strategy, strategy_name, worker_info
from xmodal_keras.training.fit_driver import fit_run
from xmodal_keras.training.precision import dtype_policy
from xmodal_keras.training.tower_fine_tuning import TowerFineTuning


def build_captioner_from_config(config: CaptionerTrainConfig, vocabulary_size: int) -> keras.Model:
    """The (untrained) captioner the settings describe.

    With a mixed `precision` the layers compute in float16/bfloat16 (variables stay
    float32) and a float32 `linear` activation named `"logits_float32"` ends the model, so
    the logits, the loss and the saved model's output are float32.
    """
    config = config.resolved()
    if config.precision == "float32":
        return _build_captioner(config, vocabulary_size)
    with dtype_policy(config.precision):
        model = _build_captioner(config, vocabulary_size)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(model.output)
    return keras.Model(model.input, logits, name=model.name)


def _build_captioner(config: CaptionerTrainConfig, vocabulary_size: int) -> keras.Model:
    encoder_kwargs = None
    if config.encoder in FROM_SCRATCH_ENCODERS:
        encoder_kwargs = {
            "hidden_dim": config.encoder_hidden_dim,
            "num_layers": config.encoder_num_layers,
        }
    common = {
        "vocabulary_size": vocabulary_size,
        "sequence_length": config.sequence_length,
        "image_shape": (config.image_size, config.image_size, 3),
        "encoder": config.encoder,
        "encoder_weights": config.weights,
        "trainable_blocks": config.trainable_blocks,
        "encoder_kwargs": encoder_kwargs,
        "hidden_dim": config.hidden_dim,
        "dropout": config.dropout,
    }
    if config.decoder == "gru":
        return build_gru_captioner(
            **common,
            embedding_dim=config.embedding_dim,
            attention_dim=config.attention_dim,
            attention_regularization=config.attention_regularization,
        )
    if config.decoder == "lstm":
        return build_lstm_captioner(**common, embedding_dim=config.embedding_dim)
    return build_transformer_captioner(
        **common,
        intermediate_dim=config.intermediate_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
    )


def _metrics_callbacks(
    config: CaptionerTrainConfig, tokenizer: CaptionTokenizer, val: pd.DataFrame
) -> list[keras.callbacks.Callback]:
    """Val BLEU-4 / CIDEr on the first `val_metrics_images` val images (sorted by id)."""
    if not config.val_metrics_every or val.empty:
        return []
    references = val.groupby("image_id", sort=True)["caption"].apply(list).to_dict()
    image_paths = val.groupby("image_id", sort=True)["image_path"].first().to_dict()
    image_ids = sorted(references)[: config.val_metrics_images]
    shape = (config.image_size, config.image_size)
    if tfrecord_dir(config) is not None:
        images = read_tfrecord_images(config.data, "val", image_ids, shape)
    else:
        images = np.stack([load_image(image_paths[i], shape).numpy() for i in image_ids])
    return [
        CaptionMetricsCallback(
            tokenizer,
            images=images,
            references=references,
            image_ids=image_ids,
            every_n_epochs=config.val_metrics_every,
        )
    ]


def _last_row(history_path: pathlib.Path) -> dict[str, float]:
    if not history_path.is_file() or history_path.stat().st_size == 0:
        return {}
    history = pd.read_csv(history_path)
    return {} if history.empty else history.iloc[-1].to_dict()


def format_summary(
    run: RunDirectory, epochs_run: Sequence[int], epochs_total: int, seconds: float
) -> str:
    """One line: epochs, final loss/accuracy/val metrics, time, where things are.

    `epochs_run` is `fit`'s `History.epoch` (the epochs this call ran: it starts after the
    ones restored from a backup, and ends early when a callback stopped training).
    """
    last = _last_row(run.history_path)
    shown = []
    for key in (
        "loss",
        "masked_token_accuracy",
        "val_loss",
        "val_masked_token_accuracy",
        "val_bleu_4",
        "val_cider",
    ):
        if key in last and not pd.isna(last[key]):
            name = key.replace("masked_token_accuracy", "accuracy")
            shown.append(f"{name} {float(last[key]):.3f}")
    restored = epochs_run[0] if epochs_run else epochs_total
    reached = epochs_run[-1] + 1 if epochs_run else epochs_total
    epochs = f"{reached} epoch{'s' if reached != 1 else ''}"
    if reached < epochs_total:
        epochs += f" of {epochs_total} (stopped early)"
    if restored:
        epochs += f" ({restored} restored from backup)"
    return (
        f"trained {epochs} in {seconds:.0f} s: {', '.join(shown) or 'no epochs logged'} | "
        f"run: {run.path} (model.keras, history.csv, pictures/)"
    )


def train_captioner(
    config: CaptionerTrainConfig,
    out_dir: str | os.PathLike,
    *,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> RunDirectory:
    """Train a captioner with `model.fit` and write everything into a run directory.

    Creates the `tf.distribute` strategy first (multi-worker needs it before other TF ops),
    reads the data (shapes -> `load_shapes`, a TFRecord folder -> `read_caption_tfrecords`,
    else `read_captions`), builds the vocabulary on the train split, makes repeated, cached
    `tf.data` pipelines (`steps_per_epoch` from the number of captions and the global
    batch), builds and compiles the model inside the strategy's scope (in the `precision`
    dtype policy) and fits it with `BackupAndRestore`, `HistoryLogger`, `ModelCheckpoint`
    (and val BLEU-4/CIDEr every `val_metrics_every` epochs). Then writes `model.keras`,
    `vocab.txt`, `config.json` and `pictures/training_curves.png`, and prints a one-line
    summary. Calling it again on the same `out_dir` resumes the run.

    Under a multi-worker strategy every worker calls this with the same arguments; only
    the chief writes `out_dir` (see the module docstring).

    Args:
        config: the run settings.
        out_dir: the run directory (created; an existing run is resumed).
        callbacks: extra Keras callbacks, run after the run directory's own.
        verbose: `model.fit` verbosity (`"auto"`: a progress bar). Defaults to `"auto"`.

    Returns:
        The `RunDirectory` (`out_dir`, also on the other workers).

    Raises:
        ValueError: bad settings, no train captions, or `out_dir` holds a run with other
            settings.
    """
    strategy = get_strategy(config.strategy)
    worker = worker_info(strategy)
    run = RunDirectory(out_dir).check_writable()
    config = config.for_run(run)  # a resumed run: its sequence_length and precision
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)

    frame = read_caption_data(config)
    if tfrecord_dir(config) is None:  # a TFRecord folder holds its images in its shards
        preflight_images(frame, source=data_name(config.data))
    train = frame[frame.split == "train"]
    val = frame[frame.split == "val"]
    if train.empty:
        raise ValueError(
            f"The data has no 'train' captions. Received: data={config.data!r} with splits "
            f"{sorted(frame.split.unique())}"
        )
    config = config.resolved(train.caption)
    if run.vocabulary_path.is_file() and run.has_config():
        tokenizer = CaptionTokenizer.from_vocabulary_file(
            run.vocabulary_path, config.sequence_length
        )
    else:
        tokenizer = tokenizer_from_captions(config, train.caption)
    if worker.is_chief:
        run.create()
        run.save_vocabulary(tokenizer)
        run.write_config(config.to_config())

    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    learning_rate = config.learning_rate * (replicas if config.scale_learning_rate else 1)
    print(
        f"data: {len(train)} train / {len(val)} val captions, vocabulary "
        f"{tokenizer.vocabulary_size} | strategy {strategy_name(strategy)}, "
        f"{replicas} replica(s), global batch {global_batch} = {config.batch_size} per "
        f"replica x {replicas} | precision {config.precision}"
        + (", XLA" if config.jit_compile else "")
        + (f" | learning rate {learning_rate:g}" if config.scale_learning_rate else "")
        + (f" | worker {worker.task_type}:{worker.task_id}" if worker.task_type else ""),
        flush=True,
    )
    train_data, fit_val = make_train_datasets(config, tokenizer, train, val, global_batch)
    steps_per_epoch = math.ceil(len(train) / global_batch)

    with strategy.scope():
        model = build_captioner_from_config(config, tokenizer.vocabulary_size)
        compile_captioner(
            model,
            total_steps=config.epochs * steps_per_epoch,
            learning_rate=learning_rate,
            warmup_steps=config.warmup_steps,
            label_smoothing=config.label_smoothing,
            weight_decay=config.weight_decay,
            jit_compile=config.jit_compile,
            towers=TowerFineTuning.from_settings(config, steps_per_epoch),
        )
    history = fit_run(
        model,
        run,
        train_data,
        strategy=strategy,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        monitor="val_loss" if not val.empty else "loss",
        fit_kwargs=fit_val,
        metrics_callbacks=_metrics_callbacks(config, tokenizer, val) if worker.is_chief else (),
        callbacks=callbacks,
        verbose=verbose,
    )
    if worker.is_chief:
        seconds = time.perf_counter() - start
        print(format_summary(run, history.epoch, config.epochs, seconds), flush=True)
    return run
