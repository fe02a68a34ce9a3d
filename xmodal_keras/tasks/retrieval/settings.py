"""`RetrievalTrainConfig`: the settings of a dual-encoder (retrieval) run, its `config.json`."""

import dataclasses

from xmodal_keras.encoders.keras_hub_presets import absolute_preset, is_keras_hub_preset
from xmodal_keras.encoders.text_encoder import TEXT_ENCODER_HELP, check_text_encoder_settings
from xmodal_keras.models.dual_encoder import IMAGE_TOWER_NAME, TEXT_TOWER_NAME
from xmodal_keras.runs.settings_flags import setting
from xmodal_keras.tasks.captioning.settings import SHAPES
from xmodal_keras.training import training_settings as common
from xmodal_keras.training.precision import resolve_precision
from xmodal_keras.training.tower_fine_tuning import (
    pretrained_towers,
    tower_frozen_epochs_setting,
    tower_learning_rate_scale_setting,
)

INDEX_FILE = "retrieval_index.npz"
# Settings of the towers `from_preset` replaces: they must stay at their defaults.
FROM_PRESET_TOWER_FIELDS = (
    "encoder",
    "weights",
    "trainable_blocks",
    "text_encoder",
    "text_trainable_layers",
)
SPLITS = ("train", "val", "test")


# Settings that may change when a run is resumed or extended; every other one must match.
RESUMABLE_FIELDS = frozenset(
    {"epochs", "strategy", "jit_compile", "index_split", "allow_outside_root"}
)


@dataclasses.dataclass(frozen=True)
class RetrievalTrainConfig(common.TrainingSettings):
    """Run settings of a dual-encoder training (written to the run as `config.json`).

    Attributes:
        data: `"shapes"` (built-in, see `shapes_*`), a caption dataset path (Flickr8k
            folder, Karpathy/COCO JSON, CSV) or a list of paths.
        format: reader for `data` paths (`"auto"`, `"flickr8k"`, `"karpathy"`, `"coco"`,
            `"csv"`).
        from_preset: `keras_hub:PRESET_OR_DIR` of a CLIP preset: the whole dual encoder
            (`build_dual_encoder_from_clip`) and its BPE tokenizer (`ClipTextTokenizer`);
            the tower settings below stay at their defaults, and `epochs` may be 0
            (zero-shot).
        encoder, weights, trainable_blocks, encoder_hidden_dim, encoder_num_layers,
            image_size: the image tower's encoder (see `build_image_encoder`); image_size
            None: 64, or the preset's.
        sequence_length: length of the text tower's `token_ids` (`<start>`, the words,
            `<end>`, padding); None: 23 for shapes, 21 otherwise, 77 with `from_preset`.
        min_count, max_vocabulary_size: vocabulary of the train split.
        text_encoder (`"bigru"` / `"transformer"` / `"keras_hub:PRESET_OR_DIR"`: a
            BERT-family preset with its own WordPiece tokenizer), embedding_dim, hidden_dim,
            num_layers, num_heads, intermediate_dim: the text tower's encoder
            (`build_text_encoder`). text_trainable_layers: a preset's last Transformer
            layers that train (None: all; 0: frozen).
        projection_dim: shared space size. dropout: text encoder + projection heads.
        initial_temperature: starting (learned) temperature of the logits.
        epochs, batch_size (global; the contrastive negatives are the batch),
            learning_rate (peak, warm-up + cosine), warmup_steps (None: 5%), weight_decay.
        tower_learning_rate_scale, tower_frozen_epochs: the pretrained towers' share of
            the learning rate and their frozen first epochs (`tower_fine_tuning`).
        seed, strategy, precision (`"auto"`: mixed_bfloat16 on CPUs with AMX bfloat16
            units, else float32; the logits stay float32), jit_compile: as for the
            captioner.
        index_split: the split embedded into `retrieval_index.npz` for `retrieve`
            (`"test"`, `"val"`, `"train"` or `"all"`).
        shapes_num_images, shapes_image_size, shapes_seed: the built-in dataset's size.
        allow_outside_root: accept image paths that leave the data folder (see
            `read_captions`).
    """

    settings_kind = "retrieval"
    resumable_fields = RESUMABLE_FIELDS
    picked_fields = frozenset({"precision", "image_size"})
    legacy_values = {"precision": "float32"}  # before the setting, every run was float32
    sequence_length_was_tokenizer_length = True

    data: str | tuple[str, ...] = setting(
        SHAPES, "shapes, or caption data: Flickr8k folder, Karpathy/COCO JSON, CSV"
    )
    format: str = setting(
        "auto", "reader for --data paths: auto (detect), flickr8k, karpathy, coco, csv"
    )
    from_preset: str | None = setting(
        None,
        "keras_hub:PRESET_OR_DIR: the whole dual encoder from a CLIP preset (its towers, "
        "projections, temperature and BPE tokenizer), ready for zero-shot retrieval with "
        "--epochs 0, or fine-tuned",
        aliases=("--from",),
    )
    encoder: str = setting(
        "small_cnn",
        "image backbone: small_cnn, residual_cnn, a keras.applications name or "
        "keras_hub:PRESET_OR_DIR (a KerasHub image backbone preset)",
        aliases=("--image-encoder",),
    )
    weights: str | None = setting(
        None, "backbone weights: imagenet or a weights file (default: random init)"
    )
    trainable_blocks: int | None = common.trainable_blocks_setting()
    encoder_hidden_dim: int | None = setting(64, "last-stage channels of a from-scratch encoder")
    encoder_num_layers: int | None = common.encoder_num_layers_setting()
    image_size: int | None = setting(
        None, "square image side the image tower reads (default: 64, or the --from preset's)"
    )
    sequence_length: int | None = setting(
        None,
        "token ids the text tower reads: <start>, words, <end> (default: 23 for shapes, else "
        "21; 77 with --from)",
    )
    min_count: int = common.min_count_setting("captions")
    max_vocabulary_size: int | None = common.max_vocabulary_size_setting()
    text_encoder: str = setting("bigru", "text tower: " + TEXT_ENCODER_HELP)
    text_trainable_layers: int | None = common.text_trainable_layers_setting()
    embedding_dim: int = setting(128, "text tower token embedding size")
    hidden_dim: int = setting(128, "text tower width")
    num_layers: int = setting(1, "text tower layers")
    num_heads: int = setting(2, "transformer text tower: attention heads")
    intermediate_dim: int | None = setting(
        None, "transformer text tower: feed-forward width (default: 2 x --hidden-dim)"
    )
    projection_dim: int = setting(64, "shared embedding size")
    dropout: float = setting(0.0, "dropout of the text tower and the projection heads")
    initial_temperature: float = setting(0.07, "starting (learned) temperature of the logits")
    epochs: int = setting(
        10, "epochs; rerun with more to extend a finished run (0 with --from: zero-shot)"
    )
    batch_size: int = setting(64, "image-caption pairs per step: the contrastive negatives")
    learning_rate: float = setting(1e-3, "peak learning rate of warm-up + cosine decay")
    tower_learning_rate_scale: float = tower_learning_rate_scale_setting()
    tower_frozen_epochs: int = tower_frozen_epochs_setting()
    warmup_steps: int | None = setting(
        None, "linear warm-up steps (default: 5%% of the train steps)"
    )
    weight_decay: float = setting(1e-4, "AdamW weight decay")
    seed: int = common.seed_setting()
    strategy: str = common.strategy_setting()
    precision: str = common.precision_setting()
    jit_compile: bool = common.jit_compile_setting()
    index_split: str = setting(
        "test",
        "split embedded into the run's index for `xmodal retrieve`",
        choices=(*SPLITS, "all"),
    )
    shapes_num_images: int = common.shapes_num_images_setting(SHAPES, 5000)
    shapes_image_size: int = common.shapes_image_size_setting(SHAPES)
    shapes_seed: int = common.shapes_seed_setting(SHAPES)
    allow_outside_root: bool = common.allow_outside_root_setting()

    def __post_init__(self):
        check_text_encoder_settings(self.text_encoder, self.text_trainable_layers)
        if self.index_split not in (*SPLITS, "all"):
            raise ValueError(
                f"`index_split` must be one of {(*SPLITS, 'all')}. "
                f"Received: index_split={self.index_split!r}"
            )
        self._check_from_preset()
        positive_ints = ["batch_size", "hidden_dim", "projection_dim"]
        if self.image_size is not None:  # None: the `from_preset` preset's
            positive_ints.append("image_size")
        if not (self.from_preset is not None and self.epochs == 0):  # 0: zero-shot
            positive_ints.append("epochs")
        self.check_training(
            positive_ints=positive_ints,
            min_sequence_length=3,
            sequence_length_meaning=common.SEQUENCE_LENGTH_MEANING,
        )
        if self.batch_size < 2:
            raise ValueError(
                "`batch_size` must be >= 2 (the other pairs of a batch are the negatives). "
                f"Received: batch_size={self.batch_size}"
            )

    def _check_from_preset(self) -> None:
        if self.from_preset is None:
            return
        if not is_keras_hub_preset(self.from_preset):
            raise ValueError(
                "`from_preset` must be `keras_hub:PRESET_OR_DIR` (a CLIP preset). "
                f"Received: from_preset={self.from_preset!r}"
            )
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        changed = [
            name for name in FROM_PRESET_TOWER_FIELDS if getattr(self, name) != defaults[name]
        ]
        if changed:
            raise ValueError(
                f"With `from_preset` the towers come from the preset: leave {changed} at "
                f"their defaults. Received: from_preset={self.from_preset!r}, "
                + ", ".join(f"{name}={getattr(self, name)!r}" for name in changed)
            )

    @property
    def pretrained_towers(self) -> tuple[str, ...]:
        """The model's tower layers whose weights are loaded (`tower_fine_tuning`)."""
        if self.from_preset is not None:
            return (IMAGE_TOWER_NAME, TEXT_TOWER_NAME)
        return pretrained_towers(
            encoder=self.encoder, weights=self.weights, text_encoder=self.text_encoder
        )

    @property
    def is_shapes(self) -> bool:
        return self.data == SHAPES

    def resolved(self) -> "RetrievalTrainConfig":
        """A copy with `sequence_length` and `precision` (`resolve_precision`) filled in
        and data paths made absolute."""
        sequence_length = self.sequence_length or (
            77 if self.from_preset else 23 if self.is_shapes else 21
        )
        return dataclasses.replace(
            self,
            sequence_length=sequence_length,
            data=self.absolute_data(SHAPES),
            precision=resolve_precision(self.precision),
            text_encoder=absolute_preset(self.text_encoder),
            encoder=absolute_preset(self.encoder),
            from_preset=absolute_preset(self.from_preset) if self.from_preset else None,
            # With `from_preset`, None until the trainer reads the preset's.
            image_size=self.image_size or (None if self.from_preset else 64),
        )
