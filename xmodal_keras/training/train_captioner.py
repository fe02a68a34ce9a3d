"""`train_captioner`: data -> tokenizer -> tf.data -> model -> `model.fit` -> run directory.

The run settings are one dataclass, `CaptionerTrainConfig`, written to the run directory as
`config.json`; the architecture travels inside `model.keras`. `DEMO_CONFIG` is the setting
`xmodal demo` trains with (the one place to tune the demo).

Running `train_captioner` again on the same run directory resumes it: the
`BackupAndRestore` state in `backup/` restores the weights, optimizer and epoch count, and
`history.csv` is appended to. With a larger `epochs` a finished run trains further.
"""

import dataclasses
import math
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd

from xmodal_keras.data.datasets import make_caption_dataset
from xmodal_keras.data.image_preprocessing import load_image
from xmodal_keras.data.shapes import load_shapes
from xmodal_keras.data.sources import read_captions
from xmodal_keras.data.text_tokenizer import CaptionTokenizer
from xmodal_keras.evaluation.plots import plot_training_curves
from xmodal_keras.training.callbacks import CaptionMetricsCallback
from xmodal_keras.training.compile_captioner import compile_captioner
from xmodal_keras.training.distribute import STRATEGY_NAMES, get_strategy
from xmodal_keras.training.run_directory import RunDirectory

DECODERS = ("gru", "transformer")
SHAPES = "shapes"
SHAPES_SEQUENCE_LENGTH = 22
DEFAULT_SEQUENCE_LENGTH = 20
# Settings that may change when a run is resumed or extended; every other one must match.
RESUMABLE_FIELDS = frozenset({"epochs", "val_metrics_every", "val_metrics_images", "strategy"})


@dataclasses.dataclass(frozen=True)
class CaptionerTrainConfig:
    """Run settings of a captioner training (written to the run directory as `config.json`).

    Attributes:
        data: `"shapes"` (the built-in dataset, see `shapes_*`) or a caption dataset path
            (Flickr8k folder, Karpathy/COCO JSON, CSV), or a list of paths whose rows are
            concatenated (e.g. COCO `captions_train2017.json` + `captions_val2017.json`).
        format: reader for `data` paths (`"auto"`, `"flickr8k"`, `"karpathy"`, `"coco"`,
            `"csv"`).
        decoder: `"gru"` (Show, Attend and Tell) or `"transformer"`.
        encoder: image encoder name (`"small_cnn"` or a `keras.applications` backbone).
        weights: encoder weights: `None`, `"imagenet"` or a weights file.
        trainable_blocks: encoder blocks fine-tuned (None: all without weights, none with).
        encoder_hidden_dim: channels of `"small_cnn"`'s last stage (ignored otherwise).
        encoder_num_layers: conv + pool stages of `"small_cnn"` (the grid is the image
            side / 2**stages); None keeps its default of 3 (ignored otherwise).
        image_size: side of the square images the model reads.
        sequence_length: decoder length T (caption words + 1); None picks 22 for shapes,
            20 otherwise (a Flickr8k/COCO caption has ~11 words; 95% have <= 19).
        min_count, max_vocabulary_size: vocabulary of the train split (`build_vocabulary`).
        embedding_dim, attention_dim, attention_regularization: GRU decoder only.
        hidden_dim, dropout: both decoders. intermediate_dim, num_layers, num_heads:
            Transformer decoder only.
        epochs, batch_size (global, over all replicas), learning_rate (peak of warm-up +
            cosine), warmup_steps (None: 5% of the steps), label_smoothing, weight_decay.
        seed: weights, shuffling and dropout.
        strategy: `get_strategy` name (`"auto"`: MirroredStrategy on several GPUs).
        val_metrics_every: BLEU-4/CIDEr on `val_metrics_images` val images every N epochs
            (0: off).
        shapes_num_images, shapes_image_size, shapes_seed: the built-in dataset's size.
    """

    data: str | tuple[str, ...] = SHAPES
    format: str = "auto"
    decoder: str = "transformer"
    encoder: str = "small_cnn"
    weights: str | None = None
    trainable_blocks: int | None = None
    encoder_hidden_dim: int | None = 64
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
    learning_rate: float = 1e-3
    warmup_steps: int | None = None
    label_smoothing: float = 0.0
    weight_decay: float = 1e-4
    seed: int = 0
    strategy: str = "auto"
    val_metrics_every: int = 1
    val_metrics_images: int = 100
    shapes_num_images: int = 5000
    shapes_image_size: int = 64
    shapes_seed: int = 0

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
        for name in ("epochs", "batch_size", "image_size", "hidden_dim", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
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

    def resolved(self) -> "CaptionerTrainConfig":
        """A copy with `sequence_length` filled in and data paths made absolute."""
        sequence_length = self.sequence_length
        if sequence_length is None:
            sequence_length = SHAPES_SEQUENCE_LENGTH if self.is_shapes else DEFAULT_SEQUENCE_LENGTH
        data = self.data
        if isinstance(data, str) and not self.is_shapes:
            data = os.path.abspath(data)
        elif not isinstance(data, str):
            data = tuple(os.path.abspath(p) for p in data)
        return dataclasses.replace(self, sequence_length=sequence_length, data=data)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if isinstance(self.data, tuple):
            data["data"] = list(self.data)
        return data

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CaptionerTrainConfig":
        """Inverse of `to_dict` (e.g. a `config.json`); unknown keys are an error."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown captioner settings {unknown}; expected some of {sorted(known)}."
            )
        values = dict(values)
        if isinstance(values.get("data"), list):
            values["data"] = tuple(values["data"])
        return cls(**values)


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
    epochs=5,
    batch_size=64,
    learning_rate=2e-3,
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


def read_caption_data(config: CaptionerTrainConfig) -> pd.DataFrame:
    """The caption DataFrame of a run's `data` (all splits)."""
    if config.is_shapes:
        return read_captions(shapes_root(config), "flickr8k")
    paths = [config.data] if isinstance(config.data, str) else list(config.data)
    frames = [read_captions(path, config.format) for path in paths]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def build_captioner_from_config(config: CaptionerTrainConfig, vocabulary_size: int) -> keras.Model:
    """The (untrained) captioner the settings describe."""
    from xmodal_keras.models import build_gru_captioner, build_transformer_captioner

    config = config.resolved()
    encoder_kwargs = None
    if config.encoder == "small_cnn":
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
    return build_transformer_captioner(
        **common,
        intermediate_dim=config.intermediate_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
    )


def _check_resumable(run: RunDirectory, config: CaptionerTrainConfig) -> None:
    previous = run.read_config()
    current = config.to_dict()
    changed = sorted(
        key
        for key in set(previous) | set(current)
        if key not in RESUMABLE_FIELDS and previous.get(key) != current.get(key)
    )
    if changed:
        details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(
            f"{run.path} holds a run with other settings; resume it with the same settings "
            f"(only {sorted(RESUMABLE_FIELDS)} may change) or pick another --out. "
            f"Received: {details}"
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


def format_summary(run: RunDirectory, epochs_run: int, epochs_total: int, seconds: float) -> str:
    """One line: epochs, final loss/accuracy/val metrics, time, where things are."""
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
    resumed = epochs_total - epochs_run
    epochs = f"{epochs_total} epoch{'s' if epochs_total != 1 else ''}"
    if resumed:
        epochs += f" ({resumed} restored from backup)"
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

    Reads the data (shapes -> `load_shapes`, else `read_captions`), builds the vocabulary
    on the train split, makes repeated, cached `tf.data` pipelines (`steps_per_epoch` from
    the number of captions), builds and compiles the model inside the `tf.distribute`
    strategy's scope and fits it with `BackupAndRestore`, `CSVLogger`, `ModelCheckpoint`
    (and val BLEU-4/CIDEr every `val_metrics_every` epochs). Then writes `model.keras`,
    `vocab.txt`, `config.json` and `pictures/training_curves.png`, and prints a one-line
    summary. Calling it again on the same `out_dir` resumes the run.

    Args:
        config: the run settings.
        out_dir: the run directory (created; an existing run is resumed).
        callbacks: extra Keras callbacks, run after the run directory's own.
        verbose: `model.fit` verbosity (`"auto"`: a progress bar). Defaults to `"auto"`.

    Returns:
        The `RunDirectory`.

    Raises:
        ValueError: bad settings, no train captions, or `out_dir` holds a run with other
            settings.
    """
    config = config.resolved()
    run = RunDirectory(out_dir)
    if run.has_config():
        _check_resumable(run, config)
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)

    frame = read_caption_data(config)
    train = frame[frame.split == "train"]
    val = frame[frame.split == "val"]
    if train.empty:
        raise ValueError(
            f"The data has no 'train' captions. Received: data={config.data!r} with splits "
            f"{sorted(frame.split.unique())}"
        )
    run.create()
    if run.vocabulary_path.is_file() and run.has_config():
        tokenizer = CaptionTokenizer.from_vocabulary_file(
            run.vocabulary_path, config.sequence_length
        )
    else:
        tokenizer = CaptionTokenizer.from_captions(
            train.caption,
            sequence_length=config.sequence_length,
            min_count=config.min_count,
            max_size=config.max_vocabulary_size,
        )
    run.save_vocabulary(tokenizer)
    run.write_config(config.to_dict())

    strategy = get_strategy(config.strategy)
    image_shape = (config.image_size, config.image_size)
    print(
        f"data: {len(train)} train / {len(val)} val captions, vocabulary "
        f"{tokenizer.vocabulary_size} | strategy {type(strategy).__name__}, "
        f"{strategy.num_replicas_in_sync} replica(s), global batch {config.batch_size}",
        flush=True,
    )
    train_data = make_caption_dataset(
        train,
        tokenizer,
        image_shape=image_shape,
        batch_size=config.batch_size,
        shuffle=True,
        seed=config.seed,
        cache=True,
        repeat=True,
    )
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    fit_val = {}
    if not val.empty:
        fit_val["validation_data"] = make_caption_dataset(
            val,
            tokenizer,
            image_shape=image_shape,
            batch_size=config.batch_size,
            shuffle=False,
            cache=True,
            repeat=True,
        )
        fit_val["validation_steps"] = math.ceil(len(val) / config.batch_size)

    with strategy.scope():
        model = build_captioner_from_config(config, tokenizer.vocabulary_size)
        compile_captioner(
            model,
            total_steps=config.epochs * steps_per_epoch,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_steps,
            label_smoothing=config.label_smoothing,
            weight_decay=config.weight_decay,
        )
    all_callbacks = [
        *run.training_callbacks(
            monitor="val_loss" if not val.empty else "loss",
            metrics_callbacks=_metrics_callbacks(config, tokenizer, val),
        ),
        *callbacks,
    ]
    try:
        history = model.fit(
            train_data,
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=all_callbacks,
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself
            **fit_val,
        )
    finally:
        _close_loggers(all_callbacks)
    epochs_run = len(history.epoch)
    run.save_model(model)
    _plot_curves(run)
    print(format_summary(run, epochs_run, config.epochs, time.perf_counter() - start), flush=True)
    return run


def _close_loggers(callbacks: Sequence[keras.callbacks.Callback]) -> None:
    """Close `CSVLogger` files: `on_train_end` does it, but not when `fit` raised."""
    for callback in callbacks:
        file = getattr(callback, "csv_file", None)
        if isinstance(callback, keras.callbacks.CSVLogger) and file is not None:
            file.close()


def _plot_curves(run: RunDirectory) -> None:
    if run.history_path.is_file() and run.history_path.stat().st_size:
        plot_training_curves(run.history_path, run.pictures_dir / "training_curves.png")
