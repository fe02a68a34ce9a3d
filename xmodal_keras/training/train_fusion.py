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

import dataclasses
import functools
import json
import math
import os
import pathlib
import re
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.data.datasets import make_pair_dataset
from xmodal_keras.data.image_files import preflight_images
from xmodal_keras.data.pair_side_inputs import check_side_inputs, load_wav, pair_frame_lines
from xmodal_keras.data.readers import read_pairs
from xmodal_keras.data.shapes import load_shapes
from xmodal_keras.data.sharding import shard_by
from xmodal_keras.data.text_tokenizer import CaptionTokenizer, normalize_caption
from xmodal_keras.encoders.cnn_image_encoder import FROM_SCRATCH_ENCODERS
from xmodal_keras.encoders.tabular_encoder import tabular_features
from xmodal_keras.encoders.text_encoder import TEXT_ENCODER_KINDS
from xmodal_keras.evaluation.classification import (
    classification_metrics,
    plot_confusion_matrix,
)
from xmodal_keras.models.captioner_transfer import build_fusion_classifier_from_captioner
from xmodal_keras.models.dual_encoder_transfer import build_fusion_classifier_from_dual_encoder
from xmodal_keras.models.fusion_classifier import (
    CLASSIFIER_FUSIONS,
    MODALITIES,
    MODALITY_INPUTS,
    build_fusion_classifier,
    classifier_loss,
)
from xmodal_keras.training.distribute import (
    STRATEGY_NAMES,
    get_strategy,
    strategy_name,
)
from xmodal_keras.training.fit_driver import fit_run, is_chief
from xmodal_keras.training.precision import check_precision, dtype_policy, resolve_precision
from xmodal_keras.training.run_directory import MODEL_FILE, RunDirectory, load_captioner, run_kind
from xmodal_keras.training.run_settings import RunSettings
from xmodal_keras.training.schedules import make_adamw_optimizer
from xmodal_keras.training.train_captioner import CaptionerTrainConfig
from xmodal_keras.training.train_retrieval import RetrievalTrainConfig, load_dual_encoder_run

SHAPES_VERIFY = "shapes-verify"
SPLITS = ("train", "val", "test")
EVALUATION_SPLITS = ("val", "test")
TRAINER_MODALITIES = MODALITIES
"""Modalities the trainer feeds: image, text, and the side inputs audio and tabular."""
DEFAULT_MODALITIES = ("image", "text")
# Names a tabular or audio column may not have: the pair frame's own columns (a label or
# split column as a feature would leak) and the model's / classify signature's inputs.
RESERVED_COLUMNS = frozenset(
    {"id", "image_path", "text", "label", "split"}
    | {"images", "token_ids", "audio", "tabular", "image_bytes"}
)
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CLASS_WEIGHTS = (None, "balanced")
BASELINES = {"image_only": ("image",), "text_only": ("text",)}
"""Unimodal baselines trained beside the fusion model: name -> modalities (side inputs off)."""
BASELINES_DIR = "baselines"
COMPARISON_FILE = "comparison.json"
FIT_FILE = "fit.json"
# Settings that may change when a run is resumed or extended; every other one must match.
RESUMABLE_FIELDS = frozenset(
    {"epochs", "strategy", "jit_compile", "baselines", "allow_outside_root"}
)
# With `init_from` a Transformer captioner run: its image encoder, vocabulary and text length
# (and `fusion` reads "cross_attention": the captioner's decoder is the fusion).
CAPTIONER_INIT_FROM_FIELDS = (
    "encoder",
    "weights",
    "trainable_blocks",
    "encoder_hidden_dim",
    "encoder_num_layers",
    "image_size",
    "sequence_length",
    "min_count",
    "max_vocabulary_size",
)
# With `init_from` a retrieval run: those and its text tower's settings.
INIT_FROM_FIELDS = (
    *CAPTIONER_INIT_FROM_FIELDS,
    "text_encoder",
    "embedding_dim",
    "hidden_dim",
    "num_layers",
    "num_heads",
    "projection_dim",
)
INIT_FROM_KINDS = ("retrieval", "captioner")
"""Run kinds `init_from` accepts."""


@dataclasses.dataclass(frozen=True)
class FusionTrainConfig(RunSettings):
    """Run settings of a fusion-classifier training (written to the run as `config.json`).

    Attributes:
        data: `"shapes-verify"` (built-in statement verification, see `shapes_*`) or a
            pair dataset path (`read_pairs`: Hateful-Memes JSONL folder or file, pair CSV).
        format: reader for a `data` path (`"auto"`, `"hateful_memes"`, `"csv"`).
        fusion: one of `CLASSIFIER_FUSIONS` (`"late"` averages per-modality logits).
        modalities: distinct names from `("image", "text", "audio", "tabular")`; one
            modality = a unimodal model. `"tabular"` needs `numeric_columns` and/or
            `categorical_columns`, `"audio"` needs `audio_column` (and those settings are
            refused without their modality).
        encoder, weights, trainable_blocks, encoder_hidden_dim, encoder_num_layers,
            image_size: the image encoder (`build_image_encoder`).
        sequence_length: words + 1 kept per text (the text encoder reads
            `sequence_length + 1` ids); None: 16 for shapes, 40 otherwise.
        min_count, max_vocabulary_size: vocabulary of the train split.
        text_encoder (`"bigru"` / `"transformer"`), embedding_dim, hidden_dim, num_layers,
            num_heads: the text encoder (`build_text_encoder`).
        projection_dim: shared space size. head_hidden_dim: the head's hidden layer (None:
            `projection_dim`). dropout: projection heads and head.
        epochs, batch_size (global), learning_rate: AdamW (`make_adamw_optimizer`: weight
            decay 1e-4, gradients clipped to norm 1), warm-up over the first 5 % of the
            steps, then cosine decay to 0.
        class_weight: None or `"balanced"` (`n / (classes * count_c)`, for imbalanced labels).
        seed, strategy, precision (`"auto"`: mixed_bfloat16 on CPUs with AMX bfloat16
            units, else float32; the probabilities stay float32), jit_compile: as for the
            captioner.
        baselines: also train image-only and text-only models on the same split and report
            them beside the fusion model.
        shapes_num_images, shapes_image_size, shapes_seed: the built-in dataset's size.
        numeric_columns: pair-frame columns of numbers (every value a finite number; a
            stray word or an empty cell is an error naming file, line and column),
            standardised with the train split's mean and variance.
        categorical_columns: pair-frame columns of categories (any value, compared as
            text; the train split's values form the vocabulary, others map to one
            out-of-vocabulary index), each embedded with `tabular_embedding_dim`.
            Columns are listed explicitly (not guessed from dtypes: `read_pairs` makes a
            numeric column with one typo a text column). Names must be identifiers
            (they become classify signature inputs) and not a pair or model input name
            (`RESERVED_COLUMNS`). tabular_embedding_dim, tabular_hidden_dim: the
            `build_tabular_encoder` sizes.
        audio_column: a pair-frame column of WAV file paths (relative ones from the data
            file's folder; a CSV's `audio_path` column is already absolute): 16-bit PCM at
            `audio_sample_rate` Hz, channels averaged to mono, cropped or zero-padded to
            `audio_samples`. Every file is decoded once before training (an unreadable one
            is an error naming file, line and column), then again per epoch in `tf.data`.
            audio_num_mel_bins, audio_hidden_dim: the `build_audio_encoder` (25 ms
            windows, 10 ms hops).
        init_from: None, or a finished run to start from (everything fine-tuned, the head
            fresh); its vocabulary is used as it is (words it lacks become `<unk>`: the
            coverage is printed and written to `metrics/fit.json`). A retrieval run
            (`train_retrieval`): the dual encoder's towers start the encoders and
            projection heads (the fusion layer starts fresh) and `resolved()` takes the
            `INIT_FROM_FIELDS` from its `config.json`. A Transformer captioner run
            (`train_captioner`, `decoder="transformer"`): its image encoder and decoder
            read the text against the image (`build_fusion_classifier_from_captioner`),
            `resolved()` takes the `CAPTIONER_INIT_FROM_FIELDS` and sets `fusion` to
            `"cross_attention"`; text encoder and projection settings are unused.
        allow_outside_root: accept image and audio paths that leave the data folder (the
            JSONL's or CSV's folder; see `read_pairs`).
    """

    settings_kind = "fusion"
    resumable_fields = RESUMABLE_FIELDS
    picked_fields = frozenset({"precision"})
    legacy_values = {"precision": "float32"}  # before the setting, every run was float32

    data: str = SHAPES_VERIFY
    format: str = "auto"
    fusion: str = "concat"
    modalities: tuple[str, ...] = DEFAULT_MODALITIES
    encoder: str = "small_cnn"
    weights: str | None = None
    trainable_blocks: int | None = None
    encoder_hidden_dim: int | None = 64
    encoder_num_layers: int | None = None
    image_size: int = 64
    sequence_length: int | None = None
    min_count: int = 1
    max_vocabulary_size: int | None = None
    text_encoder: str = "bigru"
    embedding_dim: int = 64
    hidden_dim: int = 64
    num_layers: int = 1
    num_heads: int = 2
    projection_dim: int = 64
    head_hidden_dim: int | None = None
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    class_weight: str | None = None
    seed: int = 0
    strategy: str = "auto"
    precision: str = "auto"
    jit_compile: bool = False
    baselines: bool = False
    shapes_num_images: int = 2000
    shapes_image_size: int = 64
    shapes_seed: int = 0
    init_from: str | None = None
    numeric_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    tabular_embedding_dim: int = 8
    tabular_hidden_dim: int = 32
    audio_column: str | None = None
    audio_samples: int = 16000
    audio_sample_rate: int = 16000
    audio_num_mel_bins: int = 40
    audio_hidden_dim: int = 32
    allow_outside_root: bool = False

    def __post_init__(self):
        object.__setattr__(self, "data", os.fspath(self.data))
        if self.init_from is not None:
            object.__setattr__(self, "init_from", os.fspath(self.init_from))
        for name in ("modalities", "numeric_columns", "categorical_columns"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        modalities = self.modalities
        if (
            not modalities
            or len(set(modalities)) != len(modalities)
            or any(m not in TRAINER_MODALITIES for m in modalities)
        ):
            raise ValueError(
                f"`modalities` must be distinct names from {TRAINER_MODALITIES}. "
                f"Received: modalities={modalities!r}"
            )
        if self.fusion not in CLASSIFIER_FUSIONS:
            raise ValueError(
                f"`fusion` must be one of {CLASSIFIER_FUSIONS}. Received: fusion={self.fusion!r}"
            )
        if self.text_encoder not in TEXT_ENCODER_KINDS:
            raise ValueError(
                f"`text_encoder` must be one of {TEXT_ENCODER_KINDS}. "
                f"Received: text_encoder={self.text_encoder!r}"
            )
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"`strategy` must be one of {STRATEGY_NAMES}. Received: {self.strategy=!r}"
            )
        check_precision(self.precision)
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(
                f"`class_weight` must be one of {CLASS_WEIGHTS}. "
                f"Received: class_weight={self.class_weight!r}"
            )
        for name in ("epochs", "batch_size", "image_size", "hidden_dim", "projection_dim"):
            check_positive_int(name, getattr(self, name))
        if self.sequence_length is not None and (
            not isinstance(self.sequence_length, int) or self.sequence_length < 2
        ):
            raise ValueError(
                "`sequence_length` must be an int >= 2 or None. "
                f"Received: sequence_length={self.sequence_length!r}"
            )
        if not 0 < self.learning_rate:
            raise ValueError(f"`learning_rate` must be > 0. Received: {self.learning_rate=!r}")
        self._check_side_inputs()

    def _check_side_inputs(self) -> None:
        columns = [*self.numeric_columns, *self.categorical_columns]
        if self.audio_column is not None:
            columns.append(self.audio_column)
        bad = [
            c
            for c in columns
            if not isinstance(c, str) or not _COLUMN_NAME.fullmatch(c) or c in RESERVED_COLUMNS
        ]
        if bad or len(set(columns)) != len(columns):
            raise ValueError(
                "Side-input columns must be distinct identifiers (letters, digits, '_') other "
                f"than {sorted(RESERVED_COLUMNS)}. Received: numeric_columns="
                f"{self.numeric_columns!r}, categorical_columns={self.categorical_columns!r}, "
                f"audio_column={self.audio_column!r}"
            )
        has_tabular = bool(self.numeric_columns or self.categorical_columns)
        if has_tabular != ("tabular" in self.modalities):
            raise ValueError(
                "The 'tabular' modality and `numeric_columns` / `categorical_columns` go "
                f"together. Received: modalities={self.modalities!r}, numeric_columns="
                f"{self.numeric_columns!r}, categorical_columns={self.categorical_columns!r}"
            )
        if (self.audio_column is not None) != ("audio" in self.modalities):
            raise ValueError(
                "The 'audio' modality and `audio_column` go together. Received: "
                f"modalities={self.modalities!r}, audio_column={self.audio_column!r}"
            )
        for name in (
            "tabular_embedding_dim",
            "tabular_hidden_dim",
            "audio_samples",
            "audio_sample_rate",
            "audio_num_mel_bins",
            "audio_hidden_dim",
        ):
            check_positive_int(name, getattr(self, name))
        if self.init_from is not None and {"audio", "tabular"} & set(self.modalities):
            raise ValueError(
                "`init_from` starts the image and text encoders only; train audio or tabular "
                f"inputs without it. Received: modalities={self.modalities!r}"
            )

    @property
    def side_inputs(self) -> dict[str, Any]:
        """The `make_fusion_dataset` side-input arguments of these settings."""
        return {
            "numeric_columns": self.numeric_columns,
            "categorical_columns": self.categorical_columns,
            "audio_column": self.audio_column,
            "audio_samples": self.audio_samples,
        }

    def unimodal(self, modalities: Sequence[str]) -> "FusionTrainConfig":
        """These settings for a baseline on `modalities`, side inputs not used dropped."""
        return dataclasses.replace(
            self,
            modalities=tuple(modalities),
            baselines=False,
            numeric_columns=self.numeric_columns if "tabular" in modalities else (),
            categorical_columns=self.categorical_columns if "tabular" in modalities else (),
            audio_column=self.audio_column if "audio" in modalities else None,
        )

    @property
    def is_shapes(self) -> bool:
        return self.data == SHAPES_VERIFY

    def resolved(self) -> "FusionTrainConfig":
        """A copy with `sequence_length` and `precision` (`resolve_precision`) filled in
        and a data path made absolute; with
        `init_from`, its path made absolute and the `INIT_FROM_FIELDS` (retrieval run) or
        `CAPTIONER_INIT_FROM_FIELDS` (captioner run) read from that run.
        """
        data = self.data if self.is_shapes else os.path.abspath(self.data)
        precision = resolve_precision(self.precision)
        if self.init_from is not None:
            init_from = os.path.abspath(self.init_from)
            kind, source = read_init_from_settings(init_from)
            if kind == "captioner":
                taken = {name: source[name] for name in CAPTIONER_INIT_FROM_FIELDS}
                taken["fusion"] = "cross_attention"
            else:
                taken = {name: source[name] for name in INIT_FROM_FIELDS}
            return dataclasses.replace(
                self, data=data, init_from=init_from, precision=precision, **taken
            )
        sequence_length = self.sequence_length or (16 if self.is_shapes else 40)
        return dataclasses.replace(
            self, sequence_length=sequence_length, data=data, precision=precision
        )


def read_init_from_settings(run_dir: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """`(kind, settings)` of a finished run `init_from` can start from.

    `kind` is `"retrieval"` or `"captioner"` (`INIT_FROM_KINDS`), `settings` the run's
    resolved `config.json`.

    Raises:
        ValueError: `run_dir` is not a directory with a retrieval or Transformer captioner
            run's `config.json` and `model.keras` (e.g. a fusion run, a GRU captioner or an
            unfinished run).
    """
    run = RunDirectory(run_dir)
    expected = (
        "`init_from` must be a finished retrieval run or Transformer captioner run (a "
        "directory from `xmodal train retrieval` or `xmodal train captioner --decoder "
        "transformer` with config.json and model.keras)."
    )
    received = f"Received: init_from={os.fspath(run_dir)!r}"
    if not run.has_config():
        raise ValueError(f"{expected} {received} has no config.json")
    try:
        kind = run_kind(run)
    except ValueError:
        kind = "unknown"
    if kind not in INIT_FROM_KINDS:
        raise ValueError(f"{expected} {received} is a {kind} run")
    if kind == "captioner":
        settings = CaptionerTrainConfig.from_dict(run.read_config()).resolved()
        if settings.decoder != "transformer":
            raise ValueError(f"{expected} {received} is a {settings.decoder} captioner run")
    else:
        settings = RetrievalTrainConfig.from_dict(run.read_config()).resolved()
    if not run.model_path.is_file():
        raise ValueError(f"{expected} {received} has no {MODEL_FILE} (training did not finish)")
    return kind, settings.to_dict()


def vocabulary_coverage(tokenizer: CaptionTokenizer, texts: Sequence[str]) -> float:
    """The share of the words of `texts` (after `normalize_caption`) in the vocabulary.

    Example:

    >>> tokenizer = CaptionTokenizer.from_captions(["a red circle"], sequence_length=4)
    >>> vocabulary_coverage(tokenizer, ["a blue circle", "a red circle"])
    0.8333333333333334
    """
    known = set(tokenizer.get_vocabulary())
    words = [word for text in texts for word in normalize_caption(str(text)).split()]
    return sum(word in known for word in words) / len(words) if words else 1.0


def is_fusion_run(run_dir: str | os.PathLike | RunDirectory) -> bool:
    """True when the run directory's `config.json` is a `FusionTrainConfig` (for `evaluate`)."""
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    if not run.has_config():
        return False
    config = run.read_config()
    return "fusion" in config and "modalities" in config


def read_pair_data(config: FusionTrainConfig) -> pd.DataFrame:
    """The pair DataFrame of a run's `data` (all splits), its side inputs checked.

    Raises:
        DataValidationError: a problem in the data; for the side inputs (`numeric_columns`,
            `categorical_columns`, `audio_column`) each names the data file, the line (a
            CSV's physical line, header = 1; 1-based rows for other formats) and the column.
    """
    if config.is_shapes:
        root = load_shapes(
            num_images=config.shapes_num_images,
            image_size=config.shapes_image_size,
            seed=config.shapes_seed,
        )
        frame = read_pairs(root, "hateful_memes")
    else:
        frame = read_pairs(config.data, config.format, allow_outside_root=config.allow_outside_root)
    if not (config.numeric_columns or config.categorical_columns or config.audio_column):
        return frame
    lines = None if config.is_shapes else pair_frame_lines(config.data, frame)
    source = config.data if lines is not None else f"{config.data} (rows counted from 1)"
    base_dir = config.data if os.path.isdir(config.data) else os.path.dirname(config.data)
    return check_side_inputs(
        frame,
        numeric_columns=config.numeric_columns,
        categorical_columns=config.categorical_columns,
        audio_column=config.audio_column,
        audio_sample_rate=config.audio_sample_rate,
        source=source,
        lines=lines,
        base_dir=base_dir,
        allow_outside_root=config.allow_outside_root,
    )


def labelled(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of `split` that have a label (Hateful-Memes test files have -1)."""
    return frame[(frame.split == split) & (frame.label >= 0)]


def balanced_class_weight(labels: Sequence[int] | np.ndarray, num_classes: int) -> dict[int, float]:
    """`n / (num_classes * count_c)` per class (scikit-learn's "balanced"); absent classes 1.

    Example:

    >>> balanced_class_weight([0, 0, 0, 1], 2)
    {0: 0.6666666666666666, 1: 2.0}
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    total = counts.sum()
    return {
        c: float(total / (num_classes * counts[c])) if counts[c] else 1.0
        for c in range(num_classes)
    }


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
    if config.precision == "float32":
        return build()
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
            "sequence_length": config.sequence_length + 1,
            "embedding_dim": config.embedding_dim,
            "hidden_dim": config.hidden_dim,
            "kind": config.text_encoder,
            "num_layers": config.num_layers,
            "num_heads": config.num_heads,
            "dropout": config.dropout,
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


def make_fusion_dataset(
    frame: pd.DataFrame,
    tokenizer: CaptionTokenizer,
    *,
    modalities: Sequence[str] = DEFAULT_MODALITIES,
    image_shape: tuple[int, int] = (64, 64),
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = 0,
    cache: bool = False,
    repeat: bool = False,
    numeric_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    audio_column: str | None = None,
    audio_samples: int = 16000,
) -> tf.data.Dataset:
    """Pair frame -> `({"images": uint8 [B,H,W,3], "token_ids": int32 [B,T+1]}, label [B])`.

    `make_pair_dataset` (images decoded once per image, raw text) with the text tokenised
    in the pipeline; only the inputs of `modalities` are kept. Side inputs: `"tabular"`
    is `{column: [B, 1]}` (float32 for `numeric_columns`, string for
    `categorical_columns`, from `tabular_features`); `"audio"` is float32
    `[B, audio_samples]`, the WAV files of `audio_column` read with `load_wav` (check
    them first with `check_side_inputs`, as `read_pair_data` does).
    """
    keys = [MODALITY_INPUTS[m] for m in modalities]
    if "tabular" in modalities and not (numeric_columns or categorical_columns):
        raise ValueError(
            "The 'tabular' modality needs `numeric_columns` and/or `categorical_columns`. "
            f"Received: numeric_columns={numeric_columns!r}, "
            f"categorical_columns={categorical_columns!r}"
        )
    if "audio" in modalities and audio_column is None:
        raise ValueError("The 'audio' modality needs `audio_column`. Received: audio_column=None")
    check_positive_int("audio_samples", audio_samples)
    side = {"tabular", "audio"} & set(modalities)
    if side:
        # Rows travel through `make_pair_dataset` (regrouped by image) as their position
        # in `frame`, carried in the label slot; the labels and side inputs are gathered
        # by position afterwards.
        label_table = tf.constant(frame["label"].to_numpy(np.int64).astype(np.int32))
        tabular = {}
        if "tabular" in side:
            features = tabular_features(
                frame, numeric_columns=numeric_columns, categorical_columns=categorical_columns
            )
            tabular = {column: tf.constant(values) for column, values in features.items()}
        if "audio" in side:
            if audio_column not in frame.columns:
                raise ValueError(
                    f"The frame has no audio column. Received: audio_column={audio_column!r}, "
                    f"columns={list(frame.columns)}"
                )
            audio_paths = tf.constant(frame[audio_column].astype(str).tolist())
        frame = frame.assign(label=np.arange(len(frame), dtype=np.int64))
    dataset = make_pair_dataset(
        frame,
        image_shape=image_shape,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
        repeat=repeat,
        check_images="none",
    )

    def to_model_inputs(inputs, labels):
        model_inputs = {}
        if "images" in keys:
            model_inputs["images"] = inputs["image"]
        if "token_ids" in keys:
            model_inputs["token_ids"] = tokenizer(inputs["text"])
        if side:
            positions, labels = labels, tf.gather(label_table, labels)
        if "tabular" in side:
            model_inputs["tabular"] = {c: tf.gather(v, positions) for c, v in tabular.items()}
        if "audio" in side:
            model_inputs["audio"] = tf.map_fn(
                lambda path: load_wav(path, audio_samples),
                tf.gather(audio_paths, positions),
                fn_output_signature=tf.TensorSpec([audio_samples], tf.float32),
            )
        return {key: model_inputs[key] for key in keys}, labels

    return dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


def classification_metrics_dir(run: RunDirectory, split: str, *, data=None) -> pathlib.Path:
    """`metrics/<split>_classification/` of a run (under `metrics/data_<name>/` for other
    `data` than the run's)."""
    return run.evaluation_dir(data) / f"{split}_classification"


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _compile(model: keras.Model, config: FusionTrainConfig, total_steps: int, num_classes: int):
    binary = num_classes == 2
    metrics = (
        [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auroc")]
        if binary
        else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    )
    model.compile(
        optimizer=make_adamw_optimizer(
            learning_rate=config.learning_rate,
            total_steps=total_steps,
            warmup_steps=None,
            weight_decay=1e-4,
            clipnorm=1.0,
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
    if run.has_config():
        config = config.resumed_from(run)  # the precision it started with
    config = config.resolved()
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
        path.write_text(json.dumps(comparison, indent=2, sort_keys=True) + "\n", "utf-8")
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
    elif run.vocabulary_path.is_file() and run.has_config():
        tokenizer = CaptionTokenizer.from_vocabulary_file(
            run.vocabulary_path, config.sequence_length
        )
    else:
        tokenizer = CaptionTokenizer.from_captions(
            train.text,
            sequence_length=config.sequence_length,
            min_count=config.min_count,
            max_size=config.max_vocabulary_size,
        )
    coverage = vocabulary_coverage(tokenizer, train.text)
    if chief:
        run.create()
        run.save_vocabulary(tokenizer)
        run.write_config(config.to_dict())

    image_shape = (config.image_size, config.image_size)
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
            image_shape=image_shape,
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
        _compile(model, config, config.epochs * steps_per_epoch, num_classes)
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
    (run.metrics_dir / FIT_FILE).write_text(json.dumps(fit, indent=2) + "\n", "utf-8")

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


def load_init_from_run(run_dir: str | os.PathLike) -> tuple[keras.Model, CaptionTokenizer]:
    """`(model, tokenizer)` of a run `init_from` accepts (`read_init_from_settings`)."""
    kind, _ = read_init_from_settings(run_dir)
    loaded = load_captioner(run_dir) if kind == "captioner" else load_dual_encoder_run(run_dir)
    return loaded[0], loaded[1]


def load_fusion_run(run_dir: str | os.PathLike | RunDirectory):
    """Load a trained fusion run: `(model, tokenizer, config)`."""
    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    config = FusionTrainConfig.from_dict(run.read_config())
    if not run.model_path.is_file():
        raise FileNotFoundError(
            f"No trained model in {run.path}: {MODEL_FILE} is missing (training did not finish; "
            "run the same `xmodal train fusion` command again to resume)"
        )
    model = keras.saving.load_model(run.model_path, safe_mode=True)
    tokenizer = CaptionTokenizer.from_vocabulary_file(run.vocabulary_path, config.sequence_length)
    return model, tokenizer, config


def evaluate_fusion(
    run_dir: str | os.PathLike | RunDirectory,
    *,
    splits: Sequence[str] = EVALUATION_SPLITS,
    model: keras.Model | None = None,
    tokenizer: CaptionTokenizer | None = None,
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
            image_shape=(config.image_size, config.image_size),
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
        (folder / "metrics.json").write_text(
            json.dumps(serializable, indent=2, sort_keys=True) + "\n", "utf-8"
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
