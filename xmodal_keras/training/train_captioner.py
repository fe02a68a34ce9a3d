"""`train_captioner`: data -> tokenizer -> tf.data -> model -> `model.fit` -> run directory.

The run settings are one dataclass, `CaptionerTrainConfig`, written to the run directory as
`config.json`; the architecture travels inside `model.keras`. `DEMO_CONFIG` is the setting
`xmodal demo` trains with (the one place to tune the demo).

Running `train_captioner` again on the same run directory resumes it: the
`BackupAndRestore` state in `backup/` restores the weights, optimizer and epoch count, and
`history.csv` is appended to. With a larger `epochs` a finished run trains further.

Scaling out: `strategy` picks a `tf.distribute` strategy (`get_strategy`); `batch_size` is
per replica and the global batch is `batch_size x replicas`. Under a multi-worker strategy
every worker runs the same command with its own `TF_CONFIG`; only the chief writes the run
directory, the other workers write to temporary folders (deleted at the end) and keep their
`BackupAndRestore` state in `backup/worker_<id>/` so a restarted cluster resumes together.
"""

import dataclasses
import math
import os
import pathlib
import time
from collections.abc import Iterable, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.readers import read_captions
from xmodal_keras.data.shapes import load_shapes
from xmodal_keras.data.sharding import shard_by
from xmodal_keras.data.text_tokenizer import CaptionTokenizer, caption_sequence_length
from xmodal_keras.data.tfrecords import (
    is_caption_tfrecord_dir,
    make_caption_tfrecord_dataset,
    read_caption_tfrecords,
    read_tfrecord_images,
)
from xmodal_keras.encoders.cnn_image_encoder import FROM_SCRATCH_ENCODERS
from xmodal_keras.training.callbacks import CaptionMetricsCallback
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.distribute import (
    STRATEGY_NAMES,
    get_strategy,
    strategy_name,
    worker_info,
)
from xmodal_keras.training.fit_driver import fit_run
from xmodal_keras.training.precision import check_precision, dtype_policy, resolve_precision
from xmodal_keras.training.run_directory import RunDirectory
from xmodal_keras.training.run_settings import RunSettings

DECODERS = ("gru", "lstm", "transformer")
SHAPES = "shapes"
SHAPES_SEQUENCE_LENGTH = 22
DEFAULT_SEQUENCE_LENGTH = 20
# Settings that may change when a run is resumed or extended; every other one must match.
RESUMABLE_FIELDS = frozenset(
    {
        "epochs",
        "val_metrics_every",
        "val_metrics_images",
        "strategy",
        "jit_compile",
        "allow_outside_root",
    }
)


@dataclasses.dataclass(frozen=True)
class CaptionerTrainConfig(RunSettings):
    """Run settings of a captioner training (written to the run directory as `config.json`).

    Attributes:
        data: `"shapes"` (the built-in dataset, see `shapes_*`) or a caption dataset path
            (Flickr8k folder, Karpathy/COCO JSON, CSV, a TFRecord folder from
            `xmodal data to-tfrecord`), or a list of paths whose rows are concatenated
            (e.g. COCO `captions_train2017.json` + `captions_val2017.json`).
        format: reader for `data` paths (`"auto"`, `"flickr8k"`, `"karpathy"`, `"coco"`,
            `"csv"`).
        decoder: `"gru"` (Show, Attend and Tell), `"lstm"` (Show and Tell) or
            `"transformer"`.
        encoder: image encoder name: `"residual_cnn"` (the from-scratch default, chosen on
            the val splits of shapes and digits: `benchmarks/caption_quality.py`),
            `"small_cnn"` or a `keras.applications` backbone.
        weights: encoder weights: `None`, `"imagenet"` or a weights file.
        trainable_blocks: encoder blocks fine-tuned (None: all without weights, none with).
        encoder_hidden_dim: last-stage channels of a from-scratch encoder (None: 128 for
            `"residual_cnn"`, 64 for `"small_cnn"`; ignored otherwise).
        encoder_num_layers: stride-2 stages of a from-scratch encoder (the grid is the image
            side / 2**stages); None keeps its default of 3 (ignored otherwise).
        image_size: side of the square images the model reads.
        sequence_length: decoder length T (caption tokens + 1); None picks 22 for the
            built-in shapes, else the length that holds 99 % of the train captions whole
            (`caption_sequence_length`: 16 for digits, 21 for a shapes folder, about 25
            for Flickr8k), written to the run's `config.json`.
        min_count, max_vocabulary_size: vocabulary of the train split (`build_vocabulary`).
        embedding_dim: GRU and LSTM decoders. attention_dim, attention_regularization:
            GRU decoder only. hidden_dim, dropout: every decoder. intermediate_dim,
            num_layers, num_heads: Transformer decoder only.
        epochs, batch_size (per replica: the global batch is batch_size x replicas; the
            same on one device), learning_rate (peak of warm-up + cosine), warmup_steps
            (None: 5% of the steps), label_smoothing, weight_decay. The encoder, learning
            rate 2e-3 and label smoothing 0.1 were chosen on the val splits of shapes and
            digits (`benchmarks/caption_quality.py --select`); `xmodal tune captioner`
            measures the learning rate on your data.
        scale_learning_rate: multiply `learning_rate` by the number of replicas (the
            linear scaling rule for a global batch that grows with them).
        seed: weights, shuffling and dropout.
        strategy: `get_strategy` name: `"auto"` (a TF_CONFIG cluster: multi-worker;
            several GPUs: mirrored; a TPU: tpu; else default), `"default"`, `"mirrored"`,
            `"multi_worker"` or `"tpu"`.
        precision: `"auto"`, `"float32"`, `"mixed_float16"` (GPU; loss scaling is
            automatic) or `"mixed_bfloat16"` (TPU, recent GPUs, CPUs): the Keras dtype
            policy of the model's layers; logits and the loss stay float32, so does the
            saved model's output, and exports compute in float32. `"auto"`
            (`resolve_precision`): mixed_bfloat16 on a CPU with AMX bfloat16 units and no
            GPU (~1.3x the train steps/s of float32 on 2 such cores), else float32; the
            run's `config.json` holds what it picked, and a resumed run keeps it.
        jit_compile: XLA-compile the train step (helps on GPU/TPU; slower on CPU here).
        val_metrics_every: BLEU-4/CIDEr on `val_metrics_images` val images every N epochs
            (0: off).
        shapes_num_images, shapes_image_size, shapes_seed: the built-in dataset's size.
        allow_outside_root: accept image paths that leave the data folder (see
            `read_captions`).
    """

    settings_kind = "captioner"
    resumable_fields = RESUMABLE_FIELDS
    picked_fields = frozenset({"sequence_length", "precision"})
    legacy_values = {"precision": "float32"}  # before the setting, every run was float32

    data: str | tuple[str, ...] = SHAPES
    format: str = "auto"
    decoder: str = "transformer"
    encoder: str = "residual_cnn"
    weights: str | None = None
    trainable_blocks: int | None = None
    encoder_hidden_dim: int | None = None
    encoder_num_layers: int | None = None
    image_size: int = 64
    sequence_length: int | None = None
    min_count: int = 1
    max_vocabulary_size: int | None = None
    embedding_dim: int = 256
    hidden_dim: int = 256
    intermediate_dim: int | None = None
    num_layers: int = 2
    num_heads: int = 4
    attention_dim: int | None = None
    attention_regularization: float = 0.0
    dropout: float = 0.1
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    warmup_steps: int | None = None
    label_smoothing: float = 0.1
    weight_decay: float = 1e-4
    scale_learning_rate: bool = False
    seed: int = 0
    strategy: str = "auto"
    precision: str = "auto"
    jit_compile: bool = False
    val_metrics_every: int = 1
    val_metrics_images: int = 100
    shapes_num_images: int = 5000
    shapes_image_size: int = 64
    shapes_seed: int = 0
    allow_outside_root: bool = False

    def __post_init__(self):
        if not isinstance(self.data, str):
            object.__setattr__(self, "data", tuple(os.fspath(p) for p in self.data))
            if not self.data:
                raise ValueError("`data` must name at least one dataset. Received: data=()")
        if self.decoder not in DECODERS:
            raise ValueError(f"`decoder` must be one of {DECODERS}. Received: {self.decoder=!r}")
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"`strategy` must be one of {STRATEGY_NAMES}. Received: {self.strategy=!r}"
            )
        check_precision(self.precision)
        for name in ("epochs", "batch_size", "image_size", "hidden_dim", "num_layers"):
            check_positive_int(name, getattr(self, name))
        if self.sequence_length is not None and (
            not isinstance(self.sequence_length, int) or self.sequence_length < 2
        ):
            raise ValueError(
                "`sequence_length` must be an int >= 2 or None. "
                f"Received: sequence_length={self.sequence_length!r}"
            )
        if not isinstance(self.val_metrics_every, int) or self.val_metrics_every < 0:
            raise ValueError(
                f"`val_metrics_every` must be an int >= 0. Received: {self.val_metrics_every=!r}"
            )
        if not 0 < self.learning_rate:
            raise ValueError(f"`learning_rate` must be > 0. Received: {self.learning_rate=!r}")

    @property
    def is_shapes(self) -> bool:
        return self.data == SHAPES

    def resolved(self, train_captions: Iterable[str] | None = None) -> "CaptionerTrainConfig":
        """A copy with `sequence_length` and `precision` filled in and data paths made
        absolute.

        A None `sequence_length` becomes 22 for the built-in shapes, else the length that
        holds 99 % of `train_captions` whole (`caption_sequence_length`), else 20.
        `"auto"` precision becomes this machine's (`resolve_precision`).
        """
        sequence_length = self.sequence_length
        if sequence_length is None and self.is_shapes:
            sequence_length = SHAPES_SEQUENCE_LENGTH
        elif sequence_length is None and train_captions is not None:
            sequence_length = caption_sequence_length(train_captions)
        elif sequence_length is None:
            sequence_length = DEFAULT_SEQUENCE_LENGTH
        data = self.data
        precision = resolve_precision(self.precision)
        if isinstance(data, str) and not self.is_shapes:
            data = os.path.abspath(data)
        elif not isinstance(data, str):
            data = tuple(os.path.abspath(p) for p in data)
        return dataclasses.replace(
            self, sequence_length=sequence_length, data=data, precision=precision
        )


# The settings of `xmodal demo`: about 8 minutes on 2 CPU cores (README lists what they give).
DEMO_CONFIG = CaptionerTrainConfig(
    data=SHAPES,
    decoder="transformer",
    encoder="small_cnn",
    encoder_hidden_dim=64,
    # A 4x4 grid of 16-pixel regions: faster per step than the 8x8 grid of 3 stages on
    # 2 CPU cores, and in our runs no worse in scene faithfulness after the same minutes.
    encoder_num_layers=4,
    image_size=64,
    hidden_dim=128,
    num_layers=2,
    num_heads=4,
    dropout=0.0,
    # The demo's numbers (README) were measured in float32; "auto" would pick bfloat16.
    precision="float32",
    epochs=5,
    batch_size=64,
    learning_rate=5e-3,
    label_smoothing=0.0,
    val_metrics_every=0,
    shapes_num_images=5000,
    shapes_image_size=64,
)
# `xmodal demo --quick`: the same steps at toy size (tests, smoke checks); learns nothing.
DEMO_QUICK_CONFIG = dataclasses.replace(
    DEMO_CONFIG,
    encoder_hidden_dim=8,
    image_size=32,
    hidden_dim=16,
    num_layers=1,
    num_heads=2,
    epochs=1,
    batch_size=32,
    shapes_num_images=40,
    shapes_image_size=32,
)


def shapes_root(config: CaptionerTrainConfig) -> pathlib.Path | None:
    """The shapes dataset root of a run (built-in or a path to one), else None."""
    if config.is_shapes:
        return load_shapes(
            num_images=config.shapes_num_images,
            image_size=config.shapes_image_size,
            seed=config.shapes_seed,
        )
    if isinstance(config.data, str):
        path = pathlib.Path(config.data)
        if path.is_dir() and (path / "scenes.jsonl").is_file():
            return path
    return None


def tfrecord_dir(config: CaptionerTrainConfig) -> str | None:
    """The run's data when it is a TFRecord folder (`xmodal data to-tfrecord`), else None."""
    if isinstance(config.data, str) and not config.is_shapes:
        if config.format in ("auto", "tfrecord") and is_caption_tfrecord_dir(config.data):
            return config.data
    return None


def read_caption_data(config: CaptionerTrainConfig) -> pd.DataFrame:
    """The caption DataFrame of a run's `data` (all splits)."""
    if config.is_shapes:
        return read_captions(shapes_root(config), "flickr8k")
    if tfrecord_dir(config) is not None:
        return read_caption_tfrecords(config.data)
    paths = [config.data] if isinstance(config.data, str) else list(config.data)
    frames = [
        read_captions(path, config.format, allow_outside_root=config.allow_outside_root)
        for path in paths
    ]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def data_name(data: str | Sequence[str]) -> str:
    """A run's `data` setting as text for messages: a path, or the paths joined."""
    return data if isinstance(data, str) else ", ".join(data)


def tokenizer_from_captions(config: CaptionerTrainConfig, captions) -> CaptionTokenizer:
    """The vocabulary a run builds from its train captions (`min_count`, the size cap)."""
    return CaptionTokenizer.from_captions(
        captions,
        sequence_length=config.resolved().sequence_length,
        min_count=config.min_count,
        max_size=config.max_vocabulary_size,
    )


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
    from xmodal_keras.models import (
        build_gru_captioner,
        build_lstm_captioner,
        build_transformer_captioner,
    )

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
    if run.has_config():
        config = config.resumed_from(run)  # its sequence_length and precision
        config.resolved().check_resumable(run)
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
        run.write_config(config.to_dict())

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
    train_data, fit_val = _datasets(config, tokenizer, train, val, global_batch)
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


def _datasets(
    config: CaptionerTrainConfig,
    tokenizer: CaptionTokenizer,
    train: pd.DataFrame,
    val: pd.DataFrame,
    global_batch: int,
) -> tuple[tf.data.Dataset, dict]:
    """The repeated train dataset and `fit`'s validation arguments, sharded for workers:
    by data for in-memory file lists, by file for TFRecord shards."""
    image_shape = (config.image_size, config.image_size)
    records = tfrecord_dir(config)

    def make(frame: pd.DataFrame, split: str, shuffle: bool) -> tf.data.Dataset:
        common = {
            "image_shape": image_shape,
            "batch_size": global_batch,
            "shuffle": shuffle,
            "seed": config.seed,
            "cache": True,
            "repeat": True,
        }
        if records is not None:
            return make_caption_tfrecord_dataset(records, tokenizer, split=split, **common)
        return shard_by(
            make_caption_dataset(frame, tokenizer, check_images="none", **common), "data"
        )

    fit_val = {}
    if not val.empty:
        fit_val["validation_data"] = make(val, "val", shuffle=False)
        fit_val["validation_steps"] = math.ceil(len(val) / global_batch)
    return make(train, "train", shuffle=True), fit_val
