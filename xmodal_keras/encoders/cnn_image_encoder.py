"""Image encoders by name: a from-scratch CNN, a `keras.applications` or a KerasHub backbone.

Every encoder takes RGB images in [0, 255] (uint8 or float) under the input
`"images"` and returns `{"grid": [batch, regions, channels], "pooled":
[batch, channels]}`: the last feature map flattened row by row (the regions
attention looks at) and its global average.
"""

import dataclasses
import os
import re
from collections.abc import Callable

import keras
import keras_hub

from xmodal_keras.argument_checks import check_positive_int
from xmodal_keras.encoders.keras_hub_image_encoder import build_keras_hub_image_encoder
from xmodal_keras.encoders.keras_hub_presets import KERAS_HUB_PREFIX, is_keras_hub_preset
from xmodal_keras.encoders.residual_cnn import build_residual_cnn
from xmodal_keras.layers.backbone_preprocessing import BackbonePreprocessing


@dataclasses.dataclass(frozen=True)
class ImageBackbone:
    """How to build one `keras.applications` backbone.

    Attributes:
        constructor: the application, called with `include_top=False`.
        preprocessing: `BackbonePreprocessing` mode placed before the backbone, or
            `None` when the application preprocesses itself
            (`include_preprocessing=True`).
        min_size: smallest image height/width the application accepts.
        block_pattern: regex whose group 1 names a layer's block.
        marker_ends_block: `True` when a matching layer closes its block
            (unmatched layers join the *next* block); `False` when it opens or
            belongs to it (unmatched layers join the *previous* block).
        blocks: what one block is, in words (for docs and error messages).
    """

    constructor: Callable[..., keras.Model]
    preprocessing: str | None
    min_size: int
    block_pattern: str
    marker_ends_block: bool
    blocks: str


IMAGE_BACKBONES: dict[str, ImageBackbone] = {
    "mobilenet_v3_small": ImageBackbone(
        constructor=lambda **kw: keras.applications.MobileNetV3Small(
            include_preprocessing=True, **kw
        ),
        preprocessing=None,
        min_size=32,
        block_pattern=r"^(expanded_conv(?:_\d+)?|conv(?:_1)?)(?:_|$)",
        marker_ends_block=False,
        blocks="stem conv, 11 inverted-residual blocks `expanded_conv*`, last conv `conv_1`",
    ),
    "mobilenet_v3_large": ImageBackbone(
        constructor=lambda **kw: keras.applications.MobileNetV3Large(
            include_preprocessing=True, **kw
        ),
        preprocessing=None,
        min_size=32,
        block_pattern=r"^(expanded_conv(?:_\d+)?|conv(?:_1)?)(?:_|$)",
        marker_ends_block=False,
        blocks="stem conv, 15 inverted-residual blocks `expanded_conv*`, last conv `conv_1`",
    ),
    "efficientnet_v2_b0": ImageBackbone(
        constructor=lambda **kw: keras.applications.EfficientNetV2B0(
            include_preprocessing=True, **kw
        ),
        preprocessing=None,
        min_size=32,
        block_pattern=r"^(stem|block\d+[a-z]|top)_",
        marker_ends_block=False,
        blocks="stem, MBConv blocks `block1a` ... `block6h`, top conv",
    ),
    "resnet50": ImageBackbone(
        constructor=keras.applications.ResNet50,
        preprocessing="caffe",
        min_size=32,
        block_pattern=r"^(conv1|conv\d_block\d+)_",
        marker_ends_block=False,
        blocks="stem `conv1`, 16 bottleneck blocks `conv2_block1` ... `conv5_block3`",
    ),
    "inception_v3": ImageBackbone(
        constructor=keras.applications.InceptionV3,
        preprocessing="tf",
        min_size=75,
        block_pattern=r"^(mixed\d+)$",
        marker_ends_block=True,
        blocks="stem + `mixed0`, then Inception modules `mixed1` ... `mixed10`",
    ),
}
"""The `keras.applications` backbones `build_image_encoder` knows, by name."""

FROM_SCRATCH_ENCODERS: tuple[str, ...] = ("residual_cnn", "small_cnn")
"""Encoders without pretrained weights; `hidden_dim` and `num_layers` size them."""
IMAGE_ENCODER_NAMES: tuple[str, ...] = (*FROM_SCRATCH_ENCODERS, *IMAGE_BACKBONES)
DEFAULT_IMAGE_ENCODER = "residual_cnn"


def build_image_encoder(
    name: str = "small_cnn",
    *,
    image_shape: tuple[int, int, int] = (64, 64, 3),
    weights: str | None = None,
    trainable_blocks: int | None = None,
    hidden_dim: int | None = None,
    num_layers: int | None = None,
) -> keras.Model:
    """Builds an image encoder returning region features and a pooled vector.

    The backbone's own input preprocessing is inside the model, so callers pass
    raw RGB in [0, 255] (uint8 or float). The backbone is a nested model named
    `"backbone"`; `encoder.get_layer("backbone").save_weights("x.weights.h5")`
    writes a file that `weights="x.weights.h5"` loads back.

    Trainable blocks: a "block" is one residual / inverted-residual / Inception
    module (plus the stem and top conv as blocks of their own; see
    `IMAGE_BACKBONES[name].blocks`); for `"residual_cnn"` it is one stage,
    for `"small_cnn"` one conv + pool stage. `trainable_blocks=N` freezes
    everything but the last N blocks; frozen BatchNormalization layers run in
    inference mode.

    Args:
        name: one of `IMAGE_ENCODER_NAMES`: `"residual_cnn"` (a small ResNet with
            batch normalisation and a learned grid-position embedding: the
            from-scratch default, see `build_residual_cnn`), `"small_cnn"` (plain
            conv + max-pool stages, no normalisation: tests and older runs),
            `"mobilenet_v3_small"`, `"mobilenet_v3_large"`, `"efficientnet_v2_b0"`,
            `"resnet50"`, `"inception_v3"`; or `"keras_hub:PRESET_OR_DIR"`: a KerasHub
            image backbone from `keras_hub.models.Backbone.from_preset(PRESET_OR_DIR)`
            with its image converter's scale / offset inside (see
            `build_keras_hub_image_encoder`). Defaults to `"small_cnn"`.
        image_shape: `(height, width, 3)`. Defaults to `(64, 64, 3)`.
        weights: `"imagenet"` (applications only; downloads once), `None`
            (random), or a path to a `.weights.h5` file of the backbone.
            `None` for a KerasHub preset (its weights come with it). Defaults to
            `None`.
        trainable_blocks: how many of the last blocks stay trainable. Defaults
            to `None`: everything trainable when `weights` is `None`, everything
            frozen otherwise (and for a KerasHub preset).
        hidden_dim: channels of the last stage of a from-scratch encoder (earlier
            stages halve it). Defaults to 64 for `"small_cnn"`, 128 for
            `"residual_cnn"`.
        num_layers: stages of a from-scratch encoder, each halving the resolution
            (the grid side is the image side / 2**num_layers). Defaults to 3.

    Returns:
        A `keras.Model` with input `"images"` `[batch, *image_shape]` and outputs
        `{"grid": [batch, regions, channels], "pooled": [batch, channels]}`.

    Example:

    >>> import numpy as np
    >>> encoder = build_image_encoder("small_cnn", image_shape=(32, 32, 3), hidden_dim=8)
    >>> out = encoder(np.zeros((2, 32, 32, 3), "uint8"))
    >>> tuple(out["grid"].shape), tuple(out["pooled"].shape)
    ((2, 16, 8), (2, 8))
    >>> encoder = build_image_encoder("residual_cnn", image_shape=(32, 32, 3), hidden_dim=16)
    >>> tuple(encoder(np.zeros((2, 32, 32, 3), "uint8"))["grid"].shape)
    (2, 16, 16)
    """
    if name not in IMAGE_ENCODER_NAMES and not is_keras_hub_preset(name):
        raise ValueError(
            f"Unknown image encoder. Expected one of {IMAGE_ENCODER_NAMES} or "
            f"'{KERAS_HUB_PREFIX}PRESET_OR_DIR'. Received: name={name!r}"
        )
    image_shape = _check_image_shape(image_shape, name)
    if is_keras_hub_preset(name) and weights is not None:
        raise ValueError(
            f"A KerasHub preset brings its own weights; `weights` must be None with "
            f"name={name!r}. Received: weights={weights!r}"
        )
    _check_weights(weights, name)
    if trainable_blocks is not None and (
        not isinstance(trainable_blocks, int)
        or isinstance(trainable_blocks, bool)
        or trainable_blocks < 0
    ):
        raise ValueError(
            "`trainable_blocks` must be None or an int >= 0. "
            f"Received: trainable_blocks={trainable_blocks!r}"
        )
    if name not in FROM_SCRATCH_ENCODERS and (hidden_dim is not None or num_layers is not None):
        raise ValueError(
            f"`hidden_dim` and `num_layers` only apply to {FROM_SCRATCH_ENCODERS}. "
            f"Received: name={name!r}, hidden_dim={hidden_dim!r}, num_layers={num_layers!r}"
        )
    if is_keras_hub_preset(name):
        return build_keras_hub_image_encoder(
            name[len(KERAS_HUB_PREFIX) :],
            image_shape=image_shape,
            trainable_blocks=trainable_blocks,
        )

    images = keras.Input(shape=image_shape, name="images")
    if name in FROM_SCRATCH_ENCODERS:
        if name == "small_cnn":
            backbone = _build_small_cnn(image_shape, hidden_dim=hidden_dim, num_layers=num_layers)
        else:
            backbone = build_residual_cnn(
                image_shape,
                hidden_dim=128 if hidden_dim is None else hidden_dim,
                num_layers=3 if num_layers is None else num_layers,
            )
        features = backbone(keras.layers.Rescaling(1.0 / 255, name="rescaling")(images))
        block_ids = [_from_scratch_block(layer.name) for layer in backbone.layers]
    else:
        spec = IMAGE_BACKBONES[name]
        backbone = spec.constructor(
            include_top=False,
            weights="imagenet" if weights == "imagenet" else None,
            input_shape=image_shape,
        )
        backbone.name = "backbone"
        x = images
        if spec.preprocessing is not None:
            x = BackbonePreprocessing(mode=spec.preprocessing, name="preprocessing")(x)
        features = backbone(x)
        block_ids = _assign_blocks(backbone.layers, spec.block_pattern, spec.marker_ends_block)
    if weights is not None and weights != "imagenet":
        backbone.load_weights(weights)

    if trainable_blocks is None:
        trainable_blocks = 0 if weights is not None else None
    if trainable_blocks is not None:
        _freeze_all_but_last_blocks(backbone, block_ids, trainable_blocks, name)

    height, width, channels = features.shape[1:]
    grid = keras.layers.Reshape((height * width, channels), name="grid")(features)
    if name == "residual_cnn":
        # Convolutions are translation-equivariant; captions say where things are.
        positions = keras_hub.layers.PositionEmbedding(
            sequence_length=height * width, name="grid_position_embedding"
        )(grid)
        grid = keras.layers.Add(name="grid_with_positions")([grid, positions])
    pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(features)
    return keras.Model(images, {"grid": grid, "pooled": pooled}, name=f"{name}_image_encoder")


def _check_image_shape(image_shape, name: str) -> tuple[int, int, int]:
    ok = (
        isinstance(image_shape, tuple | list)
        and len(image_shape) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) for d in image_shape)
        and image_shape[2] == 3
    )
    min_size = IMAGE_BACKBONES[name].min_size if name in IMAGE_BACKBONES else 1
    if not ok or min(image_shape[:2]) < min_size:
        raise ValueError(
            f"`image_shape` must be (height, width, 3) ints with height, width >= {min_size} "
            f"for {name!r}. Received: image_shape={image_shape!r}"
        )
    return tuple(image_shape)


def _check_weights(weights, name: str) -> None:
    if weights is None:
        return
    if weights == "imagenet":
        if name in FROM_SCRATCH_ENCODERS:
            raise ValueError(
                f"name={name!r} has no ImageNet weights; use None or a weights file. "
                f"Received: weights={weights!r}"
            )
        return
    if not isinstance(weights, str | os.PathLike) or not os.path.isfile(weights):
        raise ValueError(
            "`weights` must be 'imagenet', None or the path of an existing weights file. "
            f"Received: weights={weights!r}"
        )


def _build_small_cnn(image_shape, *, hidden_dim: int | None, num_layers: int | None):
    hidden_dim = 64 if hidden_dim is None else hidden_dim
    num_layers = 3 if num_layers is None else num_layers
    check_positive_int("hidden_dim", hidden_dim)
    check_positive_int("num_layers", num_layers)
    if min(image_shape[:2]) < 2**num_layers:
        raise ValueError(
            f"`image_shape` is too small for {num_layers} 2x2 poolings. "
            f"Received: image_shape={image_shape!r}, num_layers={num_layers}"
        )
    inputs = keras.Input(shape=image_shape, name="scaled_images")
    x = inputs
    for i in range(num_layers):
        width = min(hidden_dim, max(8, hidden_dim // 2 ** (num_layers - 1 - i)))
        x = keras.layers.Conv2D(
            width, 3, padding="same", activation="relu", name=f"block{i + 1}_conv"
        )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
    return keras.Model(inputs, x, name="backbone")


def _from_scratch_block(layer_name: str) -> str | None:
    match = re.match(r"^(block\d+|stage\d+)_", layer_name)
    return match.group(1) if match else None


def _assign_blocks(layers, pattern: str, marker_ends_block: bool) -> list[str | None]:
    """The block id of every layer; unmatched layers join a neighbouring block."""
    ids = [m.group(1) if (m := re.match(pattern, layer.name)) else None for layer in layers]
    forward = range(len(ids))
    backward = range(len(ids) - 1, -1, -1)
    # Second pass: the input layer before the first block joins that block.
    for order in (backward, forward) if marker_ends_block else (forward, backward):
        current = None
        for i in order:
            if ids[i] is None:
                ids[i] = current
            else:
                current = ids[i]
    return ids


def _freeze_all_but_last_blocks(backbone, block_ids, trainable_blocks: int, name: str) -> None:
    blocks = list(dict.fromkeys(b for b in block_ids if b is not None))
    if trainable_blocks > len(blocks):
        raise ValueError(
            f"{name!r} has {len(blocks)} blocks. Received: trainable_blocks={trainable_blocks}"
        )
    if trainable_blocks == 0:
        backbone.trainable = False
        return
    keep = set(blocks[len(blocks) - trainable_blocks :])
    backbone.trainable = True
    for layer, block in zip(backbone.layers, block_ids, strict=True):
        layer.trainable = block in keep
