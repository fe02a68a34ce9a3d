"""`CaptionerTrainConfig`: the settings of a captioner run (its `config.json`), and the demo's.

`DEMO_CONFIG` is the setting `xmodal demo` trains with (the one place to tune the demo).

Example:

>>> CaptionerTrainConfig(data="shapes", decoder="lstm").resolved().sequence_length
22
"""

import dataclasses
from collections.abc import Iterable

from xmodal_keras.data.text_tokenizer import caption_sequence_length
from xmodal_keras.encoders.keras_hub_presets import absolute_preset
from xmodal_keras.runs.settings_flags import setting
from xmodal_keras.training import training_settings as common
from xmodal_keras.training.precision import resolve_precision
from xmodal_keras.training.tower_fine_tuning import (
    pretrained_towers,
    tower_frozen_epochs_setting,
    tower_learning_rate_scale_setting,
)

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
class CaptionerTrainConfig(common.TrainingSettings):
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
            `"small_cnn"`, a `keras.applications` backbone, or `"keras_hub:PRESET_OR_DIR"`
            (a KerasHub image backbone preset, weights included).
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
        tower_learning_rate_scale, tower_frozen_epochs: the pretrained towers' share of
            the learning rate and their frozen first epochs (`tower_fine_tuning`).
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

    data: str | tuple[str, ...] = setting(
        SHAPES,
        "shapes, or caption data: Flickr8k folder, Karpathy/COCO JSON (several allowed), "
        "CSV, a TFRecord folder",
    )
    format: str = setting(
        "auto", "reader for --data paths: auto (detect), flickr8k, karpathy, coco, csv"
    )
    decoder: str = setting(
        "transformer",
        "gru (Show, Attend and Tell), lstm (Show and Tell) or transformer",
        choices=DECODERS,
    )
    encoder: str = setting(
        "residual_cnn",
        "residual_cnn (a small ResNet with batch norm), small_cnn, mobilenet_v3_small, "
        "mobilenet_v3_large, efficientnet_v2_b0, resnet50, inception_v3, or "
        "keras_hub:PRESET_OR_DIR (a KerasHub image backbone preset)",
        aliases=("--image-encoder",),
    )
    weights: str | None = setting(
        None, "encoder weights: imagenet or a weights file (default: none)"
    )
    trainable_blocks: int | None = common.trainable_blocks_setting()
    encoder_hidden_dim: int | None = setting(
        None, "last-stage channels of residual_cnn / small_cnn (default: 128 / 64)"
    )
    encoder_num_layers: int | None = common.encoder_num_layers_setting()
    image_size: int = setting(64, "square image side the model reads")
    sequence_length: int | None = setting(
        None,
        "decoder length, caption tokens + 1 (default: 22 for shapes, else the length that "
        "holds 99%% of the train captions whole)",
    )
    min_count: int = common.min_count_setting("captions")
    max_vocabulary_size: int | None = common.max_vocabulary_size_setting()
    embedding_dim: int = setting(256, "GRU / LSTM word embedding size")
    hidden_dim: int = setting(256, "decoder width")
    intermediate_dim: int | None = setting(
        None, "Transformer feed-forward width (default: 4 x --hidden-dim)"
    )
    num_layers: int = setting(2, "Transformer decoder blocks")
    num_heads: int = setting(4, "Transformer attention heads")
    attention_dim: int | None = setting(None, "GRU additive attention size (default: --hidden-dim)")
    attention_regularization: float = setting(
        0.0, "GRU doubly stochastic attention penalty (Show, Attend and Tell's lambda)"
    )
    dropout: float = setting(0.1, "dropout rate")
    epochs: int = setting(10, "epochs; rerun with more to extend a finished run")
    batch_size: int = setting(64, "batch per replica; the global batch is this x replicas")
    learning_rate: float = setting(2e-3, "peak learning rate of warm-up + cosine decay")
    tower_learning_rate_scale: float = tower_learning_rate_scale_setting()
    tower_frozen_epochs: int = tower_frozen_epochs_setting()
    warmup_steps: int | None = setting(
        None, "linear warm-up steps (default: 5%% of the train steps)"
    )
    label_smoothing: float = setting(0.1, "label smoothing of the caption loss")
    weight_decay: float = setting(1e-4, "AdamW weight decay")
    scale_learning_rate: bool = setting(False, "multiply --learning-rate by the number of replicas")
    seed: int = common.seed_setting()
    strategy: str = common.strategy_setting()
    precision: str = common.precision_setting()
    jit_compile: bool = common.jit_compile_setting()
    val_metrics_every: int = setting(1, "val BLEU-4 / CIDEr every N epochs, 0 = off")
    val_metrics_images: int = setting(100, "val images those metrics caption")
    shapes_num_images: int = common.shapes_num_images_setting(SHAPES, 5000)
    shapes_image_size: int = common.shapes_image_size_setting(SHAPES)
    shapes_seed: int = common.shapes_seed_setting(SHAPES)
    allow_outside_root: bool = common.allow_outside_root_setting()

    def __post_init__(self):
        if self.decoder not in DECODERS:
            raise ValueError(f"`decoder` must be one of {DECODERS}. Received: {self.decoder=!r}")
        self.check_training(
            positive_ints=("epochs", "batch_size", "image_size", "hidden_dim", "num_layers"),
            min_sequence_length=2,
        )
        if not isinstance(self.val_metrics_every, int) or self.val_metrics_every < 0:
            raise ValueError(
                f"`val_metrics_every` must be an int >= 0. Received: {self.val_metrics_every=!r}"
            )

    @property
    def pretrained_towers(self) -> tuple[str, ...]:
        """The model's tower layers whose weights are loaded (`tower_fine_tuning`)."""
        return pretrained_towers(encoder=self.encoder, weights=self.weights)

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
        return dataclasses.replace(
            self,
            sequence_length=sequence_length,
            data=self.absolute_data(SHAPES),
            precision=resolve_precision(self.precision),
            encoder=absolute_preset(self.encoder),
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
