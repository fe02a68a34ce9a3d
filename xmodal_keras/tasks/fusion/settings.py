"""`FusionTrainConfig`: the settings of a fusion-classifier run (its `config.json`), and
the settings a fusion run takes from the run it starts from (`init_from`)."""

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.encoders.keras_hub_presets import absolute_preset, is_keras_hub_preset
from xmodal_keras.encoders.text_encoder import TEXT_ENCODER_HELP, check_text_encoder_settings
from xmodal_keras.models.fusion_classifier import CLASSIFIER_FUSIONS, MODALITIES
from xmodal_keras.runs.run_directory import MODEL_FILE, RunDirectory, run_kind
from xmodal_keras.runs.settings_flags import setting
from xmodal_keras.tasks.captioning.settings import CaptionerTrainConfig
from xmodal_keras.tasks.retrieval.settings import RetrievalTrainConfig
from xmodal_keras.training import training_settings as common
from xmodal_keras.training.precision import resolve_precision
from xmodal_keras.training.tower_fine_tuning import (
    pretrained_towers,
    tower_frozen_epochs_setting,
    tower_learning_rate_scale_setting,
)

SHAPES_VERIFY = "shapes-verify"
SPLITS = ("train", "val", "test")
EVALUATION_SPLITS = ("val", "test")
TRAINER_MODALITIES = MODALITIES
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


@dataclasses.dataclass(frozen=True)
class FusionTrainConfig(common.TrainingSettings):
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
        sequence_length: length of the text encoder's `token_ids` (`<start>`, the words,
            `<end>`, padding); None: 17 for shapes, 41 otherwise.
        min_count, max_vocabulary_size: vocabulary of the train split.
        text_encoder (`"bigru"` / `"transformer"` / `"keras_hub:PRESET_OR_DIR"`: a
            BERT-family preset with its own WordPiece tokenizer), embedding_dim, hidden_dim,
            num_layers, num_heads: the text encoder (`build_text_encoder`).
            text_trainable_layers: a preset's last Transformer layers that train (None:
            all; 0: frozen).
        projection_dim: shared space size. head_hidden_dim: the head's hidden layer (None:
            `projection_dim`). dropout: projection heads and head.
        tower_learning_rate_scale, tower_frozen_epochs: the pretrained towers' share of
            the learning rate and their frozen first epochs (`tower_fine_tuning`).
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
    sequence_length_was_tokenizer_length = True

    data: str = setting(
        SHAPES_VERIFY, "shapes-verify, or pair data: a Hateful-Memes JSONL folder or file, a CSV"
    )
    format: str = setting("auto", "reader for --data: auto (detect), hateful_memes or csv")
    fusion: str = setting(
        "concat",
        "concat, weighted_sum, product, gated, cross_attention, bilinear, late or mmbt (image "
        "regions read with the text by a keras_hub: BERT's own layers)",
        choices=CLASSIFIER_FUSIONS,
    )
    modalities: tuple[str, ...] = setting(
        DEFAULT_MODALITIES,
        "comma-separated from image, text, tabular, audio (without the flag: image,text, "
        "plus tabular with --numeric-columns/--categorical-columns, plus audio with "
        "--audio-column)",
    )
    encoder: str = setting(
        "small_cnn",
        "image encoder: small_cnn, residual_cnn, a keras.applications name or "
        "keras_hub:PRESET_OR_DIR (a KerasHub image backbone preset)",
        aliases=("--image-encoder",),
    )
    weights: str | None = setting(
        None, "encoder weights: imagenet or a weights file (default: random init)"
    )
    trainable_blocks: int | None = common.trainable_blocks_setting()
    encoder_hidden_dim: int | None = setting(64, "last-stage channels of a from-scratch encoder")
    encoder_num_layers: int | None = common.encoder_num_layers_setting()
    image_size: int = setting(64, "square image side the image encoder reads")
    sequence_length: int | None = setting(
        None,
        "token ids the text encoder reads: <start>, words, <end> (default: 17 for "
        "shapes-verify, else 41)",
    )
    min_count: int = common.min_count_setting("texts")
    max_vocabulary_size: int | None = common.max_vocabulary_size_setting()
    text_encoder: str = setting("bigru", "text encoder: " + TEXT_ENCODER_HELP)
    text_trainable_layers: int | None = common.text_trainable_layers_setting()
    embedding_dim: int = setting(64, "token embedding size")
    hidden_dim: int = setting(64, "text encoder width")
    num_layers: int = setting(1, "text encoder layers")
    num_heads: int = setting(2, "transformer text encoder: attention heads")
    projection_dim: int = setting(64, "shared space size")
    head_hidden_dim: int | None = setting(
        None, "the classification head's hidden layer (default: --projection-dim)"
    )
    dropout: float = setting(0.0, "dropout of the projection heads and the head")
    epochs: int = setting(10, "epochs; rerun with more to extend a finished run")
    batch_size: int = setting(32, "pairs per step")
    learning_rate: float = setting(1e-3, "peak learning rate of warm-up + cosine decay")
    tower_learning_rate_scale: float = tower_learning_rate_scale_setting()
    tower_frozen_epochs: int = tower_frozen_epochs_setting()
    class_weight: str | None = setting(
        None,
        "balanced: weight classes by inverse frequency (default: none)",
        choices=("balanced",),
    )
    seed: int = common.seed_setting()
    strategy: str = common.strategy_setting()
    precision: str = common.precision_setting()
    jit_compile: bool = common.jit_compile_setting()
    baselines: bool = setting(False, "also train image-only and text-only models")
    shapes_num_images: int = common.shapes_num_images_setting(SHAPES_VERIFY, 2000)
    shapes_image_size: int = common.shapes_image_size_setting(SHAPES_VERIFY)
    shapes_seed: int = common.shapes_seed_setting(SHAPES_VERIFY)
    init_from: str | None = setting(
        None,
        "a finished run to start from, its vocabulary and encoder settings used: an `xmodal "
        "train retrieval` run (the dual encoder's towers start the encoders) or a Transformer "
        "captioner run, e.g. runs/demo (its encoder and decoder read the text against the "
        "image: cross_attention fusion)",
    )
    numeric_columns: tuple[str, ...] = setting(
        (),
        "comma-separated pair-data columns of numbers, standardised with the train split's "
        "mean and variance; adds the tabular modality",
    )
    categorical_columns: tuple[str, ...] = setting(
        (),
        "comma-separated pair-data columns of categories, embedded (values the train split "
        "lacks share one index); adds the tabular modality",
    )
    tabular_embedding_dim: int = setting(8, "tabular encoder: size of each category's embedding")
    tabular_hidden_dim: int = setting(32, "tabular encoder width")
    audio_column: str | None = setting(
        None,
        "pair-data column of WAV file paths (16-bit PCM; relative ones from the data file's "
        "folder); adds the audio modality",
    )
    audio_samples: int = setting(
        16000, "samples per clip: longer ones cropped, shorter zero-padded"
    )
    audio_sample_rate: int = setting(16000, "sample rate every WAV file must have, in Hz")
    audio_num_mel_bins: int = setting(40, "audio encoder: mel bands of the log-mel spectrogram")
    audio_hidden_dim: int = setting(32, "audio encoder width")
    allow_outside_root: bool = common.allow_outside_root_setting()

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
        check_text_encoder_settings(self.text_encoder, self.text_trainable_layers)
        if self.fusion == "mmbt" and (
            not is_keras_hub_preset(self.text_encoder)
            or not {"image", "text"} <= set(self.modalities)
            or self.init_from is not None
        ):
            raise ValueError(
                "fusion='mmbt' reads images with a pretrained BERT text encoder: it needs "
                "the image and text modalities, text_encoder='keras_hub:PRESET_OR_DIR' and no "
                f"init_from. Received: modalities={self.modalities!r}, "
                f"text_encoder={self.text_encoder!r}, init_from={self.init_from!r}"
            )
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(
                f"`class_weight` must be one of {CLASS_WEIGHTS}. "
                f"Received: class_weight={self.class_weight!r}"
            )
        self.check_training(
            positive_ints=("epochs", "batch_size", "image_size", "hidden_dim", "projection_dim"),
            min_sequence_length=3,
            sequence_length_meaning=common.SEQUENCE_LENGTH_MEANING,
        )
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
            **self._tower_fine_tuning_for(modalities),
        )

    def _tower_fine_tuning_for(self, modalities: Sequence[str]) -> dict[str, Any]:
        """The tower settings of a baseline on `modalities`: off when none of its towers
        is pretrained (a text baseline beside a pretrained image tower)."""
        if self._pretrained_towers_of(modalities):
            return {}
        return {"tower_learning_rate_scale": 1.0, "tower_frozen_epochs": 0}

    @property
    def pretrained_towers(self) -> tuple[str, ...]:
        """The model's tower layers whose weights are loaded (`tower_fine_tuning`). With
        `init_from`: the image encoder, and the text tower it starts (`text_encoder` from a
        retrieval run, `captioner_text_reader` from a captioner run; the trainer keeps the
        one its model has)."""
        return self._pretrained_towers_of(self.modalities)

    def _pretrained_towers_of(self, modalities: Sequence[str]) -> tuple[str, ...]:
        if self.init_from is not None:
            texts = ("text_encoder", "captioner_text_reader") if "text" in modalities else ()
            return ("image_encoder",) * ("image" in modalities) + texts
        return pretrained_towers(
            encoder=self.encoder if "image" in modalities else None,
            weights=self.weights,
            text_encoder=self.text_encoder if "text" in modalities else None,
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
        data = self.absolute_data(SHAPES_VERIFY)
        precision = resolve_precision(self.precision)
        text_encoder = absolute_preset(self.text_encoder)
        if self.init_from is not None:
            init_from = os.path.abspath(self.init_from)
            kind, source = read_init_from_settings(init_from)
            if kind == "captioner":
                taken = {name: source[name] for name in CAPTIONER_INIT_FROM_FIELDS}
                # The captioner reads the tokenizer's ids without the last; the classifier
                # built from it reads all of them.
                taken["sequence_length"] += 1
                taken["fusion"] = "cross_attention"
            else:
                taken = {name: source[name] for name in INIT_FROM_FIELDS}
            return dataclasses.replace(
                self,
                data=data,
                init_from=init_from,
                precision=precision,
                **{"text_encoder": text_encoder, "encoder": absolute_preset(self.encoder), **taken},
            )
        sequence_length = self.sequence_length or (17 if self.is_shapes else 41)
        return dataclasses.replace(
            self,
            sequence_length=sequence_length,
            data=data,
            precision=precision,
            text_encoder=text_encoder,
            encoder=absolute_preset(self.encoder),
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
        if settings.from_preset is not None:
            raise ValueError(
                f"{expected} {received} is a CLIP preset run (`--from`), whose towers a fusion "
                "classifier cannot read yet (its image tower gives tokens, not a grid)"
            )
    if not run.model_path.is_file():
        raise ValueError(f"{expected} {received} has no {MODEL_FILE} (training did not finish)")
    return kind, settings.to_dict()
